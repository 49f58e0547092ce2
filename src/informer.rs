//! The informer cache: every document under a prefix held in memory, kept current by a
//! watch, with indexes, so that queries cost microseconds instead of a read of every document.
//!
//! - One informer per (client, prefix, indexed fields), shared by every repository that asks
//!   for it (the scoped repositories of many requests share one); it stops when the last
//!   handle is dropped or the client closes.
//! - It lists the prefix at one revision, then watches from the next one (a [`ChangeStream`],
//!   which resumes after failures); if etcd compacted past it, it lists again.
//! - Every label is indexed, and the configured field paths (`status.phase`): by value for
//!   equality and set requirements, and, where the value is a number, in numeric order for `>`
//!   and `<` (`status.active_lab_count<20` walks the counts below 20, not every document).
//!   An indexed requirement narrows the candidates before the full query runs; a query made
//!   only of indexed requirements needs no other test.
//! - Reads see this client's own work by default ([`Consistency::Session`]): the repositories
//!   tell the informers of their client the revision of every write and read under their
//!   prefix ([`note`]), and a read waits until the cache has applied it (the watch brings that
//!   change soon after; usually it is in already, and the read costs no round trip).
//!   [`Consistency::Linearizable`] ([`Informer::wait_fresh`]) learns etcd's current revision
//!   and waits until the cache has applied it (asking the watch for a progress report, since
//!   the last write may have been under another prefix): it also sees every other client's
//!   writes acknowledged before the read began, for one round trip.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::document;
use crate::error::{Error, Result};
use crate::listing::{self, CHUNK};
use crate::selector::{lookup, Num, Op, Query};
use crate::store::{prefix_end, ProgressRequester};
use crate::watch::{ChangeStream, ChangeType};

/// How fresh a read from the cache must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Whatever the cache holds now.
    Stale,
    /// At least every change this client wrote or read under the prefix (read-your-writes,
    /// monotonic reads); no round trip.
    Session,
    /// At least etcd's current revision when the read began (one round trip).
    Linearizable,
}

impl Consistency {
    /// From Python's `consistent=`: `True`, `False`, or `None` for the default (session).
    pub fn from_flag(consistent: Option<bool>) -> Self {
        match consistent {
            Some(true) => Consistency::Linearizable,
            Some(false) => Consistency::Stale,
            None => Consistency::Session,
        }
    }
}

/// How long a consistent read waits for one progress report before asking again.
const PROGRESS_RETRY: Duration = Duration::from_millis(100);

/// Per label name or field path, the keys of the documents by value: by text for equality and
/// sets, by number (in order) for `>` and `<`.
type Index<V> = HashMap<String, BTreeMap<V, BTreeSet<String>>>;

#[derive(Default)]
struct Indexes {
    /// Every value, as the selectors compare it (`scalar`).
    text: Index<String>,
    /// The values that are numbers, as `>` and `<` read them (labels: integers).
    numbers: Index<Num>,
}

#[derive(Default)]
struct State {
    docs: BTreeMap<String, Arc<Value>>,
    labels: Indexes,
    fields: Indexes,
}

fn scalar(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        // Absent, null, objects: the empty string, as field selectors compare them.
        _ => String::new(),
    }
}

/// Add `key` under `value` of `name`, or take it out.
fn apply<V: Ord>(index: &mut Index<V>, name: &str, value: V, key: &str, add: bool) {
    if add {
        let by_value = index.entry(name.to_owned()).or_default();
        by_value.entry(value).or_default().insert(key.to_owned());
    } else if let Some(by_value) = index.get_mut(name) {
        if let Some(keys) = by_value.get_mut(&value) {
            keys.remove(key);
            if keys.is_empty() {
                by_value.remove(&value);
            }
        }
        if by_value.is_empty() {
            index.remove(name);
        }
    }
}

/// The keys under the numbers a `>` or `<` allows.
fn in_range<'a>(
    by_number: Option<&'a BTreeMap<Num, BTreeSet<String>>>,
    op: &Op,
) -> impl Iterator<Item = &'a BTreeSet<String>> {
    let range = match op {
        Op::GreaterThan(n) => Some((Bound::Excluded(*n), Bound::Unbounded)),
        Op::LessThan(n) => Some((Bound::Unbounded, Bound::Excluded(*n))),
        _ => None,
    };
    by_number.zip(range).into_iter().flat_map(|(m, r)| m.range(r).map(|(_, keys)| keys))
}

impl Indexes {
    /// Keys an indexed requirement allows (`None`: the operator is not indexed).
    fn allowed(&self, name: &str, op: &Op) -> Option<BTreeSet<&String>> {
        let by_value = self.text.get(name);
        let keys_of = |v: &String| by_value.and_then(|m| m.get(v)).into_iter().flatten();
        match op {
            Op::Equals(v) => Some(keys_of(v).collect()),
            Op::In(vs) => Some(vs.iter().flat_map(keys_of).collect()),
            Op::GreaterThan(_) | Op::LessThan(_) => {
                Some(in_range(self.numbers.get(name), op).flatten().collect())
            }
            Op::NotEquals(_) | Op::NotIn(_) | Op::Exists | Op::NotExists => None,
        }
    }

    /// How many keys one indexed equality or comparison allows, without building a set
    /// (`None` for other operators). A document has one value per name, so the sets of
    /// different values are disjoint.
    fn count(&self, name: &str, op: &Op) -> Option<usize> {
        match op {
            Op::Equals(v) => Some(self.text.get(name).and_then(|m| m.get(v)).map_or(0, BTreeSet::len)),
            Op::GreaterThan(_) | Op::LessThan(_) => {
                Some(in_range(self.numbers.get(name), op).map(BTreeSet::len).sum())
            }
            Op::NotEquals(_) | Op::In(_) | Op::NotIn(_) | Op::Exists | Op::NotExists => None,
        }
    }
}

/// Whether the indexes answer `op` exactly.
fn indexed_op(op: &Op) -> bool {
    matches!(op, Op::Equals(_) | Op::In(_) | Op::GreaterThan(_) | Op::LessThan(_))
}

impl State {
    fn index(&mut self, key: &str, doc: &Value, paths: &[String], add: bool) {
        if let Some(labels) = document::labels(doc) {
            for (name, value) in labels {
                let text = scalar(Some(value));
                if let Some(n) = Num::of_label(&text) {
                    apply(&mut self.labels.numbers, name, n, key, add);
                }
                apply(&mut self.labels.text, name, text, key, add);
            }
        }
        for path in paths {
            let value = lookup(doc, path);
            if let Some(n) = value.and_then(Num::of_json) {
                apply(&mut self.fields.numbers, path, n, key, add);
            }
            apply(&mut self.fields.text, path, scalar(value), key, add);
        }
    }

    fn put(&mut self, key: String, doc: Value, paths: &[String]) {
        if let Some(old) = self.docs.remove(&key) {
            self.index(&key, &old, paths, false);
        }
        self.index(&key, &doc, paths, true);
        self.docs.insert(key, Arc::new(doc));
    }

    fn delete(&mut self, key: &str, paths: &[String]) {
        if let Some(old) = self.docs.remove(key) {
            self.index(key, &old, paths, false);
        }
    }

    /// The keys the indexes allow for `query` (`None`: no indexed requirement, all keys).
    fn candidates<'a>(&'a self, query: &Query, paths: &[String]) -> Option<BTreeSet<&'a String>> {
        let labels = query.labels.requirements.iter().filter_map(|r| self.labels.allowed(&r.key, &r.op));
        let fields = query
            .fields
            .requirements
            .iter()
            .filter(|r| paths.contains(&r.key))
            .filter_map(|r| self.fields.allowed(&r.key, &r.op));
        labels.chain(fields).reduce(|a, b| a.intersection(&b).copied().collect())
    }

    /// The size of the one indexed equality or comparison a query is made of, without
    /// building a set.
    fn single_indexed(&self, query: &Query, paths: &[String]) -> Option<usize> {
        match (&query.labels.requirements[..], &query.fields.requirements[..]) {
            ([r], []) => self.labels.count(&r.key, &r.op),
            ([], [r]) if paths.contains(&r.key) => self.fields.count(&r.key, &r.op),
            _ => None,
        }
    }
}

struct Shared {
    client: Client,
    prefix: String,
    paths: Vec<String>,
    state: RwLock<State>,
    /// The revision the cache reflects (0 until the first list is in).
    applied: watch::Sender<i64>,
    /// The newest revision this client wrote or read under the prefix (see [`note`]).
    seen: AtomicI64,
    /// Why the cache stopped, if it did.
    failure: Mutex<Option<Error>>,
    progress: Mutex<Option<Arc<dyn ProgressRequester>>>,
    stop: CancellationToken,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A handle on a shared informer cache.
#[derive(Clone)]
pub struct Informer {
    shared: Arc<Shared>,
}

/// Informers alive, by (client, prefix, paths).
type Registry = Mutex<HashMap<(usize, String, Vec<String>), Weak<Shared>>>;
static REGISTRY: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::default);

impl Informer {
    /// The informer of `prefix` (normalised to end in `/`) on `client` with `paths` indexed:
    /// the running one, or a new one (which starts listing and watching on the current tokio
    /// runtime).
    pub fn shared(client: &Client, prefix: &str, paths: &[String]) -> Result<Informer> {
        let prefix = crate::names::normalize_prefix(prefix)?;
        let prefix = prefix.as_str();
        let mut paths = paths.to_vec();
        paths.sort();
        paths.dedup();
        let key = (client.id(), prefix.to_owned(), paths.clone());
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|_, weak| weak.strong_count() > 0);
        if let Some(shared) = registry.get(&key).and_then(Weak::upgrade) {
            return Ok(Informer { shared });
        }
        client.store()?; // a closed client starts nothing
        let shared = Arc::new(Shared {
            client: client.clone(),
            prefix: prefix.to_owned(),
            paths,
            state: RwLock::new(State::default()),
            applied: watch::channel(0).0,
            seen: AtomicI64::new(0),
            failure: Mutex::new(None),
            progress: Mutex::new(None),
            stop: CancellationToken::new(),
        });
        registry.insert(key, Arc::downgrade(&shared));
        tokio::spawn(run(Arc::downgrade(&shared), shared.stop.clone()));
        Ok(Informer { shared })
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> i64 {
        *self.shared.applied.borrow()
    }

    /// How many documents are cached.
    pub fn len(&self) -> usize {
        self.read().docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> Result<()> {
        match self.shared.failure.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Wait until the cache is as fresh as `consistency` asks, up to the client's request
    /// timeout. A cache still loading is waited for whatever is asked.
    pub async fn wait(&self, consistency: Consistency) -> Result<()> {
        if self.revision() == 0 {
            return self.wait_fresh().await;
        }
        match consistency {
            Consistency::Stale => self.failed(),
            Consistency::Session => self.wait_applied(self.shared.seen.load(Ordering::Acquire)).await,
            Consistency::Linearizable => self.wait_fresh().await,
        }
    }

    /// Wait until the cache has applied `target`, a revision of a change under the prefix
    /// (so the watch brings it without being asked).
    async fn wait_applied(&self, target: i64) -> Result<()> {
        self.failed()?;
        let mut applied = self.shared.applied.subscribe();
        if *applied.borrow_and_update() >= target {
            return Ok(());
        }
        let timeout = self.shared.client.options().timeout;
        let reached = tokio::time::timeout(timeout, applied.wait_for(|r| *r >= target)).await.is_ok();
        if !reached {
            return Err(Error::Timeout {
                operation: "read of the cache after this client's writes".into(),
                seconds: timeout.as_secs_f64(),
            });
        }
        self.failed()
    }

    /// Wait until the cache has applied etcd's current revision (a linearizable read), up to
    /// the client's request timeout.
    pub async fn wait_fresh(&self) -> Result<()> {
        let shared = &self.shared;
        // Asked through the prefix: a user whose role covers only it may ask.
        let target = shared.client.store()?.current_revision(shared.prefix.as_bytes()).await?;
        let timeout = shared.client.options().timeout;
        let deadline = Instant::now() + timeout;
        let mut applied = shared.applied.subscribe();
        loop {
            self.failed()?;
            if *applied.borrow_and_update() >= target {
                return Ok(());
            }
            let requester = shared.progress.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(requester) = requester {
                // A failed request is retried below; the watch may be reconnecting.
                let _ = requester.request_progress().await;
            }
            let wait = PROGRESS_RETRY.min(deadline.saturating_duration_since(Instant::now()));
            let _ = tokio::time::timeout(wait, applied.wait_for(|r| *r >= target)).await;
            if Instant::now() >= deadline && *applied.borrow() < target {
                return Err(Error::Timeout {
                    operation: "consistent read from the cache".into(),
                    seconds: timeout.as_secs_f64(),
                });
            }
        }
    }

    /// The cached documents matching `query`, in key order.
    pub fn list(&self, query: &Query) -> Vec<Arc<Value>> {
        let state = self.read();
        let exact = self.only_indexed(query);
        match state.candidates(query, &self.shared.paths) {
            Some(keys) => keys
                .into_iter()
                .filter_map(|k| state.docs.get(k))
                .filter(|d| exact || query.matches(d))
                .cloned()
                .collect(),
            None => state.docs.values().filter(|d| query.matches(d)).cloned().collect(),
        }
    }

    /// Whether the indexes answer `query` exactly (every requirement an indexed equality, set
    /// or comparison), so candidates need no further test.
    fn only_indexed(&self, query: &Query) -> bool {
        query.namespace.is_none()
            && query.labels.requirements.iter().all(|r| indexed_op(&r.op))
            && query
                .fields
                .requirements
                .iter()
                .all(|r| indexed_op(&r.op) && self.shared.paths.contains(&r.key))
    }

    /// How many cached documents match `query`; an indexed equality alone is one lookup, an
    /// indexed comparison alone a walk over the distinct values in its range.
    pub fn count(&self, query: &Query) -> usize {
        let state = self.read();
        if query.namespace.is_none() {
            if let Some(n) = state.single_indexed(query, &self.shared.paths) {
                return n;
            }
        }
        let only_indexed = self.only_indexed(query);
        match state.candidates(query, &self.shared.paths) {
            Some(keys) if only_indexed => keys.len(),
            Some(keys) => {
                keys.into_iter().filter_map(|k| state.docs.get(k)).filter(|d| query.matches(d)).count()
            }
            None => state.docs.values().filter(|d| query.matches(d)).count(),
        }
    }
}

/// Tell the informers of `client` whose prefix holds `key` that this client wrote or read
/// it at `revision`, so their session reads wait for it.
pub fn note(client: &Client, key: &[u8], revision: i64) {
    let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    for ((id, prefix, _), weak) in registry.iter() {
        if *id == client.id() && key.starts_with(prefix.as_bytes()) {
            if let Some(shared) = weak.upgrade() {
                shared.seen.fetch_max(revision, Ordering::AcqRel);
            }
        }
    }
}

/// List, then watch, applying every change; list again when etcd compacted past the watch.
async fn run(weak: Weak<Shared>, stop: CancellationToken) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        let listed = tokio::select! {
            _ = stop.cancelled() => return,
            listed = list(&shared) => listed,
        };
        let revision = match listed {
            Ok(revision) => revision,
            Err(Error::Closed) => return,
            Err(e) => {
                *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return;
            }
        };
        let client = shared.client.clone();
        let prefix = shared.prefix.clone();
        drop(shared);
        let mut stream = match ChangeStream::open(client, &prefix, revision + 1, None).await {
            Ok(stream) => stream,
            Err(Error::Closed) => return,
            Err(Error::Expired { .. }) => continue,
            Err(e) => {
                if let Some(shared) = weak.upgrade() {
                    *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
                return;
            }
        };
        loop {
            if let Some(shared) = weak.upgrade() {
                *shared.progress.lock().unwrap_or_else(|p| p.into_inner()) = stream.progress_requester();
            }
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.next_batch() => next,
            };
            let changes = match next {
                Ok(Some(changes)) => changes,
                Ok(None) => return,
                Err(Error::Expired { .. }) => break, // list again
                Err(e) => {
                    if let Some(shared) = weak.upgrade() {
                        *shared.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                    return;
                }
            };
            let Some(shared) = weak.upgrade() else { return };
            let mut last = *shared.applied.borrow();
            {
                let mut state = shared.state.write().unwrap_or_else(|p| p.into_inner());
                for change in changes {
                    match (change.kind, change.value) {
                        (ChangeType::Added | ChangeType::Modified, Some(doc)) => {
                            state.put(change.key, doc, &shared.paths)
                        }
                        (ChangeType::Added | ChangeType::Modified, None) | (ChangeType::Deleted, _) => {
                            state.delete(&change.key, &shared.paths)
                        }
                        (ChangeType::Bookmark, _) => {}
                    }
                    last = last.max(change.revision);
                }
            }
            shared.applied.send_replace(last);
        }
    }
}

/// Load every document under the prefix at one revision into a fresh state.
async fn list(shared: &Shared) -> Result<i64> {
    let store = shared.client.store()?;
    let mut state = State::default();
    let end = prefix_end(shared.prefix.as_bytes());
    let done = listing::scan(&**store, shared.prefix.as_bytes(), &end, 0, CHUNK, |kv| {
        let key = String::from_utf8_lossy(&kv.key).into_owned();
        // Unreadable documents are left out of the cache, as lists leave them out.
        if let Ok(doc) = document::read(&key, &kv.value, kv.mod_revision) {
            state.put(key, doc, &shared.paths);
        }
        Ok(true)
    })
    .await?;
    *shared.state.write().unwrap_or_else(|p| p.into_inner()) = state;
    shared.applied.send_replace(done.revision);
    Ok(done.revision)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::client::{ClientOptions, MEMORY_ENDPOINT};
    use crate::repository::{Repository, RepositoryConfig};
    use crate::selector::{FieldSelector, LabelSelector};

    fn worker(name: &str, track: &str, phase: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"lab-track": track}}, "spec": {}, "status": {"phase": phase}})
    }

    #[tokio::test]
    async fn answers_from_indexes_and_reads_its_writes() {
        let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
        let repo = Repository::new(client.clone(), RepositoryConfig::new("/w/")).unwrap();
        for i in 0..20 {
            repo.create(
                worker(
                    &format!("w{i:02}"),
                    if i % 2 == 0 { "a" } else { "b" },
                    if i % 4 == 0 { "Ready" } else { "Pending" },
                ),
                0,
            )
            .await
            .unwrap();
        }
        let paths = vec!["status.phase".to_owned()];
        let informer = Informer::shared(&client, "/w/", &paths).unwrap();
        informer.wait_fresh().await.unwrap();
        assert_eq!(informer.len(), 20);
        let ready =
            Query { fields: FieldSelector::parse("status.phase=Ready").unwrap(), ..Default::default() };
        assert_eq!(informer.count(&ready), 5);
        let both = Query { labels: LabelSelector::parse("lab-track=b").unwrap(), ..ready.clone() };
        assert_eq!(informer.count(&both), 0);

        // A write, then a consistent read: the cache has it.
        let doc = repo.get("w01", None).await.unwrap().unwrap();
        let mut updated = doc.clone();
        updated["status"]["phase"] = json!("Ready");
        repo.update(updated).await.unwrap();
        informer.wait_fresh().await.unwrap();
        assert_eq!(informer.count(&ready), 6);
        assert_eq!(informer.count(&both), 1);
        repo.remove("w00", None).await.unwrap();
        // A write under another prefix moves etcd's revision: progress reports cover it.
        client.store().unwrap().put(b"/elsewhere".to_vec(), b"{}".to_vec(), 0).await.unwrap();
        informer.wait_fresh().await.unwrap();
        assert_eq!(informer.count(&ready), 5);
        assert_eq!(informer.list(&ready).len(), 5);

        // Shared: the same prefix and paths give the same cache.
        let again = Informer::shared(&client, "/w/", &paths).unwrap();
        assert!(Arc::ptr_eq(&again.shared, &informer.shared));
        // "/w" is the same prefix as "/w/".
        let unslashed = Informer::shared(&client, "/w", &paths).unwrap();
        assert!(Arc::ptr_eq(&unslashed.shared, &informer.shared));
    }

    /// A document whose `status.active_lab_count` is a number, a decimal, text, null or
    /// absent, and whose label `slots` is an integer or a word, by `i`.
    fn counted(name: &str, i: i64) -> Value {
        let slots = if i % 4 == 3 { "many".to_owned() } else { (i % 13).to_string() };
        let mut doc =
            json!({"metadata": {"name": name, "labels": {"slots": slots}}, "spec": {}, "status": {}});
        let count = match i % 6 {
            0 => json!(i),
            1 => json!(i as f64 + 0.5),
            2 => json!(i.to_string()),
            3 => Value::Null,
            4 => return doc,
            _ => json!(-i),
        };
        doc["status"]["active_lab_count"] = count;
        doc
    }

    fn query(labels: &str, fields: &str) -> Query {
        Query {
            labels: LabelSelector::parse(labels).unwrap(),
            fields: FieldSelector::parse(fields).unwrap(),
            ..Default::default()
        }
    }

    /// The cache answers like a read of etcd, and comparisons on indexed paths from the
    /// indexes alone.
    async fn same_as_etcd(repo: &Repository, informer: &Informer, paths: &[String]) -> usize {
        informer.wait_fresh().await.unwrap();
        let mut answered = 0;
        for (labels, fields) in [
            ("", "status.active_lab_count<20"),
            ("", "status.active_lab_count>10"),
            ("", "status.active_lab_count>10.5"),
            ("", "status.active_lab_count < -5"),
            ("", "status.active_lab_count>10,status.active_lab_count<20.5"),
            ("slots>5", ""),
            ("slots<3", ""),
            ("slots>5,slots<10", "status.active_lab_count<40"),
            ("slots in (1,2,3)", "status.active_lab_count>0"),
            ("slots>2", "status.phase=Ready"), // status.phase is not indexed
            ("slots!=4", "status.active_lab_count>3"),
        ] {
            let q = query(labels, fields);
            let want: Vec<String> = repo
                .list(&q)
                .await
                .unwrap()
                .items
                .iter()
                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                .collect();
            let got: Vec<String> = informer
                .list(&q)
                .iter()
                .map(|d| format!("/n/{}", d["metadata"]["name"].as_str().unwrap()))
                .collect();
            assert_eq!(got, want, "{labels:?} {fields:?}");
            assert_eq!(informer.count(&q), want.len(), "{labels:?} {fields:?}");
            if informer.only_indexed(&q) {
                // Answered by the indexes: the candidates are exactly the matches.
                let state = informer.read();
                let candidates = state.candidates(&q, paths).unwrap();
                assert_eq!(
                    candidates.into_iter().cloned().collect::<Vec<_>>(),
                    want,
                    "{labels:?} {fields:?}"
                );
                answered += 1;
            }
        }
        answered
    }

    #[tokio::test]
    async fn comparisons_answer_from_ordered_indexes_through_changes() {
        let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
        let repo = Repository::new(client.clone(), RepositoryConfig::new("/n/")).unwrap();
        for i in 0..40 {
            repo.create(counted(&format!("n{i:02}"), i), 0).await.unwrap();
        }
        let paths = vec!["status.active_lab_count".to_owned()];
        let informer = Informer::shared(&client, "/n/", &paths).unwrap();
        assert_eq!(same_as_etcd(&repo, &informer, &paths).await, 9);

        // Updates move documents between numbers, to and from text, null and absent.
        for i in (0..40).step_by(3) {
            let mut doc = repo.get(&format!("n{i:02}"), None).await.unwrap().unwrap();
            let newer = counted("unused", i + 1);
            doc["status"] = newer["status"].clone();
            doc["metadata"]["labels"] = newer["metadata"]["labels"].clone();
            repo.update(doc).await.unwrap();
        }
        same_as_etcd(&repo, &informer, &paths).await;
        for i in (0..40).step_by(2) {
            repo.remove(&format!("n{i:02}"), None).await.unwrap();
        }
        same_as_etcd(&repo, &informer, &paths).await;
        for i in (1..40).step_by(2) {
            repo.remove(&format!("n{i:02}"), None).await.unwrap();
        }
        assert_eq!(same_as_etcd(&repo, &informer, &paths).await, 9);
        let state = informer.read();
        assert!(state.docs.is_empty());
        assert!(state.labels.numbers.is_empty() && state.fields.numbers.is_empty(), "nothing left behind");
        assert!(state.labels.text.is_empty() && state.fields.text.is_empty());
    }

    #[test]
    fn a_comparison_alone_counts_without_a_set() {
        let paths = vec!["status.active_lab_count".to_owned()];
        let mut state = State::default();
        for i in 0..12 {
            state.put(format!("k{i:02}"), counted(&format!("k{i:02}"), i), &paths);
        }
        // Numbers 0, 1.5, -5, 6, 7.5, -11: three below 1.
        assert_eq!(state.single_indexed(&query("", "status.active_lab_count<1"), &paths), Some(3));
        assert_eq!(state.single_indexed(&query("", "status.active_lab_count>1"), &paths), Some(3));
        assert_eq!(state.single_indexed(&query("", "status.active_lab_count>7.5"), &paths), Some(0));
        // Labels 0, 1, 2, 4, 5, 6, 8, 9, 10 (3, 7 and 11 are words): two above 8.
        assert_eq!(state.single_indexed(&query("slots>8", ""), &paths), Some(2));
        assert_eq!(state.single_indexed(&query("", "status.other<1"), &paths), None, "not indexed");
        assert_eq!(state.single_indexed(&query("slots!=1", ""), &paths), None);
    }
}
