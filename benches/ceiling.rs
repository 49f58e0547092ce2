//! The ceiling: the workload of `benches/compare.py` on a plain Rust etcd-client program, the
//! same way the Python contenders do it (documents are `serde_json::Value`s). Prints ONE JSON
//! line of samples in seconds per operation, like `benches/contenders/*.py`.
//!
//!     cargo bench -q --no-default-features --bench ceiling -- CONFIG.json
//!
//! A CONFIG.json with a `"mode"` is a job of `benches/scale.py` instead (`ceiling/scale.rs`:
//! load, drop or read a large prefix).

use std::future::Future;
use std::time::Instant;

use etcd_client::{Client, Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, WatchOptions};
use serde::Deserialize;
use serde_json::{Map, Value};

/// CONFIG.json, written by `benches/compare.py` (see `benches/contenders/_workload.py`).
#[derive(Deserialize)]
struct Config {
    endpoint: String,
    prefix: String,
    prefix_a: String,
    n_a: usize,
    prefix_b: String,
    n_b: usize,
    prefix_watch: String,
    n_watch: usize,
    watch_start: i64,
    n_seq: usize,
    n_batches: usize,
    batch: usize,
    n_list: usize,
    n_watch_samples: usize,
    /// A LabWorker document (`benches/common.py`); each create gets its own name.
    template: Value,
}

#[path = "ceiling/scale.rs"]
mod scale;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

const PHASES: usize = 8; // benches/common.py PHASES; "Ready" is the second

impl Config {
    fn name(&self, i: usize) -> String {
        format!("worker-{i:05}")
    }

    fn key(&self, i: usize) -> String {
        format!("{}{}", self.prefix, self.name(i))
    }

    fn doc(&self, i: usize) -> Value {
        let mut doc = self.template.clone();
        doc["metadata"]["name"] = Value::from(self.name(i));
        doc
    }

    fn ready(n: usize) -> usize {
        (0..n).filter(|i| i % PHASES == 1).count()
    }
}

/// `n` samples of `op(i)`, in seconds.
async fn each<F, Fut>(n: usize, mut op: F) -> Result<Vec<f64>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        op(i).await?;
        samples.push(started.elapsed().as_secs_f64());
    }
    Ok(samples)
}

async fn create(mut client: Client, key: String, doc: Value) -> Result<()> {
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, serde_json::to_vec(&doc)?, None)]);
    if !client.txn(txn).await?.succeeded() {
        return Err("create: the key exists".into());
    }
    Ok(())
}

async fn get(mut client: Client, key: String) -> Result<Value> {
    let resp = client.get(key, None).await?;
    let kv = resp.kvs().first().ok_or("get: no such key")?;
    Ok(serde_json::from_slice(kv.value())?)
}

/// Every document under `prefix`: ONE range request, every value parsed.
async fn list(kv: &mut KvClient, prefix: &str) -> Result<Vec<Value>> {
    let resp = kv.get(prefix, Some(GetOptions::new().with_prefix())).await?;
    resp.kvs().iter().map(|kv| Ok(serde_json::from_slice(kv.value())?)).collect()
}

fn is_ready(doc: &Value) -> bool {
    doc["status"]["phase"] == "Ready"
}

async fn run(c: &Config) -> Result<Map<String, Value>> {
    let client = Client::connect([c.endpoint.as_str()], None).await?;
    // One range of 10,000 documents is ~21 MB: raise tonic's 4 MB default for responses.
    let mut kv = client.kv_client().max_decoding_message_size(256 << 20);
    let mut rows = Map::new();
    let mut add = |op: &str, samples: Vec<f64>| {
        rows.insert(op.to_owned(), Value::from(samples));
    };
    get(client.clone(), format!("{}{}", c.prefix_a, c.name(0))).await?; // connect

    let docs: Vec<Value> = (0..c.n_seq).map(|i| c.doc(i)).collect();
    add("create", each(c.n_seq, |i| create(client.clone(), c.key(i), docs[i].clone())).await?);

    let batches: Vec<Vec<Value>> =
        (0..c.n_batches).map(|b| (0..c.batch).map(|j| c.doc(c.n_seq + b * c.batch + j)).collect()).collect();
    let samples = each(c.n_batches, |b| {
        let creates: Vec<_> = batches[b]
            .iter()
            .map(|doc| {
                let name = doc["metadata"]["name"].as_str().unwrap_or_default();
                create(client.clone(), format!("{}{name}", c.prefix), doc.clone())
            })
            .collect();
        async move { futures::future::join_all(creates).await.into_iter().collect() }
    })
    .await?;
    add(&format!("create x{}", c.batch), samples);

    let samples = each(c.n_seq, |i| {
        let got = get(client.clone(), c.key(i));
        async move { got.await.map(drop) }
    })
    .await?;
    add("get", samples);

    let samples = each(c.n_batches, |b| {
        let gets: Vec<_> =
            (0..c.batch).map(|j| get(client.clone(), c.key((b * c.batch + j) % c.n_seq))).collect();
        async move {
            for got in futures::future::join_all(gets).await {
                got?;
            }
            Ok(())
        }
    })
    .await?;
    add(&format!("get x{}", c.batch), samples);

    // Read (keep mod_revision), parse, change, then put if mod_revision is still the one read.
    let samples = each(c.n_seq, |i| {
        let mut client = client.clone();
        async move {
            let key = c.key(i);
            let resp = client.get(key.clone(), None).await?;
            let kv = resp.kvs().first().ok_or("compare_and_swap: no such key")?;
            let mut doc: Value = serde_json::from_slice(kv.value())?;
            let errors = doc["status"]["error_count"].as_i64().unwrap_or(0);
            doc["status"]["error_count"] = Value::from(errors + 1);
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision())])
                .and_then([TxnOp::put(key, serde_json::to_vec(&doc)?, None)]);
            if !client.txn(txn).await?.succeeded() {
                return Err("compare_and_swap: conflict".into());
            }
            Ok(())
        }
    })
    .await?;
    add("compare_and_swap", samples);

    for (prefix, n) in [(&c.prefix_a, c.n_a), (&c.prefix_b, c.n_b)] {
        let mut samples = Vec::with_capacity(c.n_list);
        for _ in 0..c.n_list {
            let started = Instant::now();
            let docs = list(&mut kv, prefix).await?;
            assert_eq!(docs.len(), n);
            samples.push(started.elapsed().as_secs_f64());
        }
        add(&format!("list {n}"), samples);
        let mut samples = Vec::with_capacity(c.n_list);
        for _ in 0..c.n_list {
            let started = Instant::now();
            let ready: Vec<Value> = list(&mut kv, prefix).await?.into_iter().filter(is_ready).collect();
            assert_eq!(ready.len(), Config::ready(n));
            samples.push(started.elapsed().as_secs_f64());
        }
        add(&format!("find_by_phase {n}"), samples);
    }
    let mut samples = Vec::with_capacity(c.n_list);
    for _ in 0..c.n_list {
        let started = Instant::now();
        let ready = list(&mut kv, &c.prefix_b).await?.iter().filter(|d| is_ready(d)).count();
        assert_eq!(ready, Config::ready(c.n_b));
        samples.push(started.elapsed().as_secs_f64());
    }
    add(&format!("count_by_phase {}", c.n_b), samples);

    // From opening the watch until every event of the watch prefix is received and parsed.
    let mut samples = Vec::with_capacity(c.n_watch_samples);
    for _ in 0..c.n_watch_samples {
        let started = Instant::now();
        let options = WatchOptions::new().with_prefix().with_start_revision(c.watch_start + 1);
        let mut stream = client.clone().watch(c.prefix_watch.as_str(), Some(options)).await?;
        let mut seen = 0;
        while seen < c.n_watch {
            let resp = stream.message().await?.ok_or("watch: the stream ended")?;
            for event in resp.events() {
                if let Some(kv) = event.kv() {
                    std::hint::black_box(serde_json::from_slice::<Value>(kv.value())?);
                    seen += 1;
                }
            }
        }
        samples.push(started.elapsed().as_secs_f64());
    }
    add(&format!("watch {}", c.n_watch), samples);
    Ok(rows)
}

enum Job {
    Compare(Box<Config>),
    Scale(scale::Job),
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: ceiling CONFIG.json");
        std::process::exit(2);
    };
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let scale_job = serde_json::from_slice::<Value>(&bytes).ok().is_some_and(|v| v.get("mode").is_some());
    let parsed = if scale_job {
        serde_json::from_slice(&bytes).map(Job::Scale)
    } else {
        serde_json::from_slice(&bytes).map(|config| Job::Compare(Box::new(config)))
    };
    let job = match parsed {
        Ok(job) => job,
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
    let done = match job {
        Job::Compare(config) => runtime.block_on(run(&config)),
        Job::Scale(job) => runtime.block_on(scale::run(job)),
    };
    match done {
        Ok(rows) => println!("{}", Value::Object(rows)),
        Err(e) => {
            eprintln!("etcd: {e}");
            std::process::exit(1);
        }
    }
}
