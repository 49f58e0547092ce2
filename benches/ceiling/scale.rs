//! The ceiling's jobs for `benches/scale.py` and `benches/bench_check.py` (a CONFIG.json with
//! a `"mode"`): load a prefix fast, drop it again, and serve single operations on request so
//! that each sample of the Rust program can be paired with a sample of the package taken right
//! before or after it (a burst of load on a shared machine then hits both alike).
//!
//! - `load`: key TAB value lines on stdin (the documents `benches/scale.py` makes with the
//!   benches' generator), put in transactions of `batch` puts, `in_flight` at once.
//! - `drop`: delete the prefix, then compact etcd's history up to now (so the next load does
//!   not pile onto the last one's).
//! - `serve`: one JSON command a line on stdin, one JSON line back with the `seconds` of each
//!   of its `repeat` runs (or an `error`). The reads: `range` (one range of a prefix, values
//!   left as bytes: the plain range read the cache's initial sync is compared with), `list`
//!   (that range with every value parsed into a `serde_json::Value`, as `benches/ceiling.rs`
//!   lists), `find` and `count` (list, then `status.phase` compared), `label` (list, then a
//!   label compared). The key operations, as `benches/ceiling.rs` does them: `get`, `get_many`
//!   (at once), `create`, `create_many` (at once), `cas` (get, parse, change, put if the
//!   mod_revision is still the one read).

use std::io::{BufRead, Read, Write};
use std::time::Instant;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, KvClient, Txn, TxnOp,
};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{create, get, Result};

#[derive(Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Job {
    Load {
        endpoint: String,
        batch: usize,
        in_flight: usize,
    },
    Drop {
        endpoint: String,
        prefix: String,
    },
    /// `template`: the document `create` writes (under the name it is given).
    Serve {
        endpoint: String,
        template: Value,
    },
}

/// One command of `serve`.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Range { prefix: String, n: usize },
    List { prefix: String, n: usize },
    Find { prefix: String, phase: String, n: usize },
    Count { prefix: String, phase: String, n: usize },
    Label { prefix: String, key: String, value: String, n: usize },
    Get { key: String },
    GetMany { keys: Vec<String> },
    Create { prefix: String, names: Vec<String> },
    CreateMany { prefix: String, names: Vec<String> },
    Cas { key: String },
}

#[derive(Deserialize)]
struct Command {
    #[serde(flatten)]
    op: Op,
    /// Runs of the operation (for `create`, one per name).
    #[serde(default = "one")]
    repeat: usize,
}

fn one() -> usize {
    1
}

pub async fn run(job: Job) -> Result<Map<String, Value>> {
    match job {
        Job::Load { endpoint, batch, in_flight } => load(&endpoint, batch, in_flight).await,
        Job::Drop { endpoint, prefix } => drop_prefix(&endpoint, &prefix).await,
        Job::Serve { endpoint, template } => serve(&endpoint, &template).await,
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

fn named(template: &Value, name: &str) -> Value {
    let mut doc = template.clone();
    doc["metadata"]["name"] = Value::from(name);
    doc
}

/// One run of `op` (the `i`-th, for the operations that take a name per run).
async fn once(client: &Client, kv: &mut KvClient, template: &Value, op: &Op, i: usize) -> Result<()> {
    let filtered = |docs: Vec<Value>, keep: &dyn Fn(&Value) -> bool| -> Vec<Value> {
        docs.into_iter().filter(|d| keep(d)).collect()
    };
    match op {
        Op::Range { prefix, n } => check("range", std::hint::black_box(range(kv, prefix).await?).len(), *n),
        Op::List { prefix, n } => check("list", std::hint::black_box(list(kv, prefix).await?).len(), *n),
        Op::Find { prefix, phase, n } => {
            let docs = filtered(list(kv, prefix).await?, &|d| phase_is(d, phase));
            check("find", std::hint::black_box(docs).len(), *n)
        }
        Op::Count { prefix, phase, n } => {
            let count = list(kv, prefix).await?.iter().filter(|d| phase_is(d, phase)).count();
            check("count", count, *n)
        }
        Op::Label { prefix, key, value, n } => {
            let docs = filtered(list(kv, prefix).await?, &|d| d["metadata"]["labels"][key] == value.as_str());
            check("label", std::hint::black_box(docs).len(), *n)
        }
        Op::Get { key } => get(client.clone(), key.clone()).await.map(drop),
        Op::GetMany { keys } => {
            let gets = keys.iter().map(|key| get(client.clone(), key.clone()));
            futures::future::try_join_all(gets).await.map(drop)
        }
        Op::Create { prefix, names } => {
            let name = names.get(i).ok_or("create: fewer names than runs")?;
            create(client.clone(), format!("{prefix}{name}"), named(template, name)).await
        }
        Op::CreateMany { prefix, names } => {
            let creates = names
                .iter()
                .map(|name| create(client.clone(), format!("{prefix}{name}-{i}"), named(template, name)));
            futures::future::try_join_all(creates).await.map(drop)
        }
        Op::Cas { key } => {
            let resp = kv.get(key.clone(), None).await?;
            let got = resp.kvs().first().ok_or("cas: no such key")?;
            let mut doc: Value = serde_json::from_slice(got.value())?;
            let errors = doc["status"]["error_count"].as_i64().unwrap_or(0);
            doc["status"]["error_count"] = Value::from(errors + 1);
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, got.mod_revision())])
                .and_then([TxnOp::put(key.clone(), serde_json::to_vec(&doc)?, None)]);
            if !kv.txn(txn).await?.succeeded() {
                return Err("cas: conflict".into());
            }
            Ok(())
        }
    }
}

/// Commands on stdin until it closes; a line of samples (or the error) back for each.
async fn serve(endpoint: &str, template: &Value) -> Result<Map<String, Value>> {
    let client = Client::connect([endpoint], None).await?;
    // 100,000 documents of 2 KB are ~210 MB in one response: far above tonic's 4 MB default.
    let mut kv = client.kv_client().max_decoding_message_size(1 << 30);
    let mut served = 0usize;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<Command>(&line) {
            Ok(command) => {
                let mut seconds = Vec::with_capacity(command.repeat);
                let mut failed = None;
                for i in 0..command.repeat {
                    let started = Instant::now();
                    if let Err(e) = once(&client, &mut kv, template, &command.op, i).await {
                        failed = Some(e.to_string());
                        break;
                    }
                    seconds.push(started.elapsed().as_secs_f64());
                }
                match failed {
                    None => serde_json::json!({ "seconds": seconds }),
                    Some(e) => serde_json::json!({ "error": e }),
                }
            }
            Err(e) => serde_json::json!({ "error": format!("bad command: {e}") }),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{answer}")?;
        out.flush()?;
        served += 1;
    }
    let mut out = Map::new();
    out.insert("served".into(), Value::from(served));
    Ok(out)
}
