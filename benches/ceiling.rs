//! The ceiling: the benchmark workload on a plain Rust etcd-client program, for the ratios in
//! `benches/ceiling.py`. Prints one JSON object of median seconds per operation.
//!
//!     cargo bench --bench ceiling -- http://127.0.0.1:2379 /prefix/ document.json

use std::time::Instant;

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

const N: usize = 500;
const LIST: usize = 3000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn run(endpoint: &str, prefix: &str, doc: Vec<u8>) -> Result<(), etcd_client::Error> {
    let client = Client::connect([endpoint], None).await?;
    let mut c = client.clone();
    let mut rows: Vec<(&str, f64)> = Vec::new();

    // Sequential create (a transaction on create_revision == 0, as the package does).
    let mut times = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("{prefix}w{i:05}");
        let started = Instant::now();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, doc.clone(), None)]);
        c.txn(txn).await?;
        times.push(started.elapsed().as_secs_f64());
    }
    rows.push(("create", median(times)));

    let mut times = Vec::with_capacity(N);
    for i in 0..N {
        let started = Instant::now();
        let resp = c.get(format!("{prefix}w{i:05}"), None).await?;
        let value: serde_json::Value = serde_json::from_slice(resp.kvs()[0].value()).unwrap_or_default();
        std::hint::black_box(value);
        times.push(started.elapsed().as_secs_f64());
    }
    rows.push(("get", median(times)));

    let mut times = Vec::with_capacity(N);
    for i in 0..N {
        let key = format!("{prefix}w{i:05}");
        let started = Instant::now();
        let rev = c.get(key.clone(), None).await?.kvs()[0].mod_revision();
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key, doc.clone(), None)]);
        c.txn(txn).await?;
        times.push(started.elapsed().as_secs_f64());
    }
    rows.push(("get + compare_and_swap", median(times)));

    let mut times = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let gets = (0..32).map(|i| {
            let mut c = client.clone();
            let key = format!("{prefix}w{i:05}");
            async move { c.get(key, None).await }
        });
        for r in futures::future::join_all(gets).await {
            r?;
        }
        times.push(started.elapsed().as_secs_f64());
    }
    rows.push(("32 concurrent gets", median(times)));

    for i in N..LIST {
        c.put(format!("{prefix}w{i:05}"), doc.clone(), None).await?;
    }
    // One request for all 3,000 (6 MB): raise tonic's 4 MB default for responses.
    let mut kv = client.kv_client().max_decoding_message_size(64 << 20);
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let end = format!("{}0", prefix.trim_end_matches('/'));
        let resp = kv.get(prefix, Some(GetOptions::new().with_range(end))).await?;
        let docs: Vec<serde_json::Value> =
            resp.kvs().iter().map(|kv| serde_json::from_slice(kv.value()).unwrap_or_default()).collect();
        assert_eq!(docs.len(), LIST);
        times.push(started.elapsed().as_secs_f64());
    }
    rows.push(("list 3000 + parse", median(times)));

    let body: Vec<String> = rows.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
    println!("{{{}}}", body.join(", "));
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(endpoint), Some(prefix), Some(path)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: ceiling ENDPOINT PREFIX DOCUMENT.json");
        std::process::exit(2);
    };
    let doc = match std::fs::read(path) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(endpoint, prefix, doc)) {
        eprintln!("etcd: {e}");
        std::process::exit(1);
    }
}
