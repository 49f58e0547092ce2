//! The ceiling's jobs for `benches/scale.py` (a CONFIG.json with a `"mode"`): load a prefix
//! fast, drop it again, and read it the way a plain Rust program would, for the ratios of the
//! rows at 10k and 100k documents.
//!
//! - `load`: key TAB value lines on stdin (the documents `benches/scale.py` makes with the
//!   benches' generator), put in transactions of `batch` puts, `in_flight` at once.
//! - `drop`: delete the prefix, then compact etcd's history up to now (so the next load does
//!   not pile onto the last one's).
//! - `read`: samples of one range of the prefix (bytes only: the plain range read the cache's
//!   initial sync is compared with) and of list, find (two phases), count and a label filter,
//!   each of them that range with every value parsed into a `serde_json::Value`, as
//!   `benches/ceiling.rs` lists. One range to warm up, then `samples` rounds, the operations
//!   interleaved within a round so a burst of load on the machine hits them all alike.

use std::io::Read;
use std::time::Instant;

use etcd_client::{Client, CompactionOptions, DeleteOptions, GetOptions, KvClient, Txn, TxnOp};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Result;

#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Job {
    Load { endpoint: String, batch: usize, in_flight: usize },
    Drop { endpoint: String, prefix: String },
    Read(Box<Reads>),
}

#[derive(Deserialize)]
pub struct Reads {
    endpoint: String,
    prefix: String,
    n: usize,
    samples: usize,
    /// `status.phase` of the large find (1/8 of the fleet) and of the small one.
    many_phase: String,
    many: usize,
    few_phase: String,
    few: usize,
    /// A label and its value, and how many carry it.
    label_key: String,
    label_value: String,
    labelled: usize,
}

pub async fn run(job: Job) -> Result<Map<String, Value>> {
    match job {
        Job::Load { endpoint, batch, in_flight } => load(&endpoint, batch, in_flight).await,
        Job::Drop { endpoint, prefix } => drop_prefix(&endpoint, &prefix).await,
        Job::Read(reads) => read(&reads).await,
    }
}

async fn load(endpoint: &str, batch: usize, in_flight: usize) -> Result<Map<String, Value>> {
    let mut input = Vec::new();
    std::io::stdin().lock().read_to_end(&mut input)?;
    let started = Instant::now();
    let mut puts = Vec::new();
    let mut bytes = 0usize;
    for line in input.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
        let tab = line.iter().position(|b| *b == b'\t').ok_or("load: a line without a tab")?;
        let (key, value) = (&line[..tab], &line[tab + 1..]);
        bytes += value.len();
        puts.push(TxnOp::put(key, value, None));
    }
    let count = puts.len();
    let mut batches = Vec::new();
    let mut puts = puts.into_iter().peekable();
    while puts.peek().is_some() {
        batches.push(Txn::new().and_then(puts.by_ref().take(batch.max(1)).collect::<Vec<_>>()));
    }
    let client = Client::connect([endpoint], None).await?;
    let revisions: Vec<i64> = stream::iter(batches)
        .map(|txn| {
            let mut kv = client.kv_client();
            async move { Ok::<_, crate::Error>(kv.txn(txn).await?.header().map_or(0, |h| h.revision())) }
        })
        .buffer_unordered(in_flight.max(1))
        .try_collect()
        .await?;
    let mut out = Map::new();
    out.insert("loaded".into(), Value::from(count));
    out.insert("bytes".into(), Value::from(bytes));
    out.insert("seconds".into(), Value::from(started.elapsed().as_secs_f64()));
    out.insert("revision".into(), Value::from(revisions.into_iter().max().unwrap_or(0)));
    Ok(out)
}

async fn drop_prefix(endpoint: &str, prefix: &str) -> Result<Map<String, Value>> {
    let mut client = Client::connect([endpoint], None).await?;
    let deleted = client.delete(prefix, Some(DeleteOptions::new().with_prefix())).await?;
    let revision = deleted.header().map_or(0, |h| h.revision());
    client.compact(revision, Some(CompactionOptions::new().with_physical())).await?;
    let mut out = Map::new();
    out.insert("deleted".into(), Value::from(deleted.deleted()));
    out.insert("compacted".into(), Value::from(revision));
    Ok(out)
}

/// One range of the whole prefix: the values as etcd sent them.
async fn range(kv: &mut KvClient, prefix: &str) -> Result<Vec<Vec<u8>>> {
    let mut resp = kv.get(prefix, Some(GetOptions::new().with_prefix())).await?;
    Ok(resp.take_kvs().into_iter().map(|kv| kv.into_key_value().1).collect())
}

async fn list(kv: &mut KvClient, prefix: &str) -> Result<Vec<Value>> {
    range(kv, prefix).await?.iter().map(|v| Ok(serde_json::from_slice(v)?)).collect()
}

fn phase_is(doc: &Value, phase: &str) -> bool {
    doc["status"]["phase"] == phase
}

fn check(what: &str, got: usize, wanted: usize) -> Result<()> {
    if got != wanted {
        return Err(format!("{what}: {got} documents, expected {wanted}").into());
    }
    Ok(())
}

async fn read(c: &Reads) -> Result<Map<String, Value>> {
    let client = Client::connect([c.endpoint.as_str()], None).await?;
    // 100,000 documents of 2 KB are ~210 MB in one response: far above tonic's 4 MB default.
    let mut kv = client.kv_client().max_decoding_message_size(1 << 30);
    let ops = ["range", "list", "find many", "find few", "count", "label"];
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(c.samples); ops.len()];
    // Warm-up: one range (connects, and etcd reads its pages once).
    check("range", range(&mut kv, &c.prefix).await?.len(), c.n)?;
    for _ in 0..c.samples {
        for (op, times) in ops.iter().zip(samples.iter_mut()) {
            let started = Instant::now();
            match *op {
                "range" => check(op, std::hint::black_box(range(&mut kv, &c.prefix).await?).len(), c.n)?,
                "list" => check(op, std::hint::black_box(list(&mut kv, &c.prefix).await?).len(), c.n)?,
                "find many" => {
                    let docs: Vec<Value> = list(&mut kv, &c.prefix)
                        .await?
                        .into_iter()
                        .filter(|d| phase_is(d, &c.many_phase))
                        .collect();
                    check(op, std::hint::black_box(docs).len(), c.many)?
                }
                "find few" => {
                    let docs: Vec<Value> = list(&mut kv, &c.prefix)
                        .await?
                        .into_iter()
                        .filter(|d| phase_is(d, &c.few_phase))
                        .collect();
                    check(op, std::hint::black_box(docs).len(), c.few)?
                }
                "count" => {
                    let count =
                        list(&mut kv, &c.prefix).await?.iter().filter(|d| phase_is(d, &c.many_phase)).count();
                    check(op, count, c.many)?
                }
                _ => {
                    let docs: Vec<Value> = list(&mut kv, &c.prefix)
                        .await?
                        .into_iter()
                        .filter(|d| d["metadata"]["labels"][&c.label_key] == c.label_value.as_str())
                        .collect();
                    check(op, std::hint::black_box(docs).len(), c.labelled)?
                }
            }
            times.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(ops.iter().zip(samples).map(|(op, times)| (op.to_string(), Value::from(times))).collect())
}
