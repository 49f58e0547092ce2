//! [`EtcdStore`]: the [`Store`] on a real etcd cluster, through the `etcd-client` crate.
//!
//! Constructing it does no I/O: each endpoint's connection is made by the first call sent to
//! it (and made again by a later call if it failed). Every call clones the cheap
//! `etcd_client::Client` handle of the endpoint it goes to, so concurrent calls run
//! concurrently on the HTTP/2 connections; nothing serialises them. Every call runs under the
//! request timeout. Which endpoint a call goes to, and what happens when one stops
//! answering: [`endpoints`]; when a call is tried again or hedged: [`policy`]. The files:
//! `config` (how to reach etcd), `policy` (the request policy), `endpoints` (one connection
//! per member and its health), `leaderless` (a member without a leader leaves the rotation),
//! `breaker` (failing fast), `errors` (what etcd's errors mean).

mod breaker;
mod config;
mod endpoints;
mod errors;
mod leaderless;
mod members;
mod nospace;
mod policy;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use self::breaker::Breaker;
pub use self::config::{EtcdConfig, TlsConfig, KEEP_ALIVE_INTERVAL};
use self::endpoints::{classify, Endpoints, Watching};
use self::errors::map_error;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::fence::{self, Fence};
use crate::store::{
    prefix_end, EndpointSnapshot, EventKind, KeyValue, ProgressRequester, RangeRequest, RangeResponse, Store,
    WatchBatch, WatchEvent, WatchStream,
};

/// The largest response this client accepts: etcd's own limit on what it sends (gRPC's
/// `math.MaxInt32`). tonic's default, 4 MiB, failed a listing as soon as a 500-key chunk of
/// documents averaged 8 KiB, and a watch response carrying a large transaction.
const MAX_RESPONSE: usize = i32::MAX as usize;

/// The store on an etcd cluster.
pub struct EtcdStore {
    config: EtcdConfig,
    /// The endpoints as given (named in `Unavailable` errors).
    urls: Vec<String>,
    /// One connection per member, with its health (see `endpoints`).
    endpoints: Arc<Endpoints>,
    /// Whether any request has been answered: a timeout before that means etcd is
    /// unreachable (`Unavailable`), after it that one request was slow (`Timeout`).
    answered: AtomicBool,
    /// Cancelled when the client closes: calls in flight end with `Closed`.
    closed: CancellationToken,
    breaker: Breaker,
    metrics: Metrics,
    /// Whether every member orders requested progress notifications, once learnt.
    progress: Arc<ProgressOrder>,
}

/// What the store learnt of its members' progress notifications (see `progress_ordered`).
#[derive(Default)]
struct ProgressOrder {
    ordered: std::sync::OnceLock<bool>,
    /// A task is asking the members now.
    learning: AtomicBool,
}

impl EtcdStore {
    /// A store for the cluster at `urls` (`host:port` or `http(s)://host:port`, one per
    /// member), reached as `config` says; connects on first use.
    pub fn new(urls: Vec<String>, config: EtcdConfig, closed: CancellationToken) -> Self {
        let breaker = Breaker::new(config.breaker_threshold, config.breaker_reset);
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.timeout)
            .with_keep_alive(KEEP_ALIVE_INTERVAL, config.timeout)
            .with_keep_alive_while_idle(false)
            .with_require_leader(true);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls.options());
        }
        if let Some((user, password)) = &config.credentials {
            // Expired auth tokens are refreshed (and the call retried) transparently.
            options = options.with_user(user.clone(), password.clone()).with_auto_token_refresh(true);
        }
        let endpoints = Endpoints::new(
            &urls,
            options,
            config.connect_timeout,
            config.timeout,
            config.election_timeout,
            closed.clone(),
        );
        EtcdStore {
            config,
            urls,
            endpoints,
            answered: AtomicBool::new(false),
            closed,
            breaker,
            metrics: Metrics::default(),
            progress: Arc::default(),
        }
    }

    /// The key's mod_revision from the `else` branch of a failed transaction.
    /// One transaction, with the store's retries and deadline.
    async fn txn(&self, operation: &'static str, txn: Txn) -> Result<etcd_client::TxnResponse> {
        self.call(operation, |mut c| {
            let txn = txn.clone();
            async move { c.txn(txn).await }
        })
        .await
    }

    fn actual_revision(responses: Vec<TxnOpResponse>) -> Option<i64> {
        responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            TxnOpResponse::Put(_) | TxnOpResponse::Delete(_) | TxnOpResponse::Txn(_) => None,
        })
    }
}

/// The compare of a fenced write: the holder's record is still on its lease.
fn fenced(fence: &Fence) -> Compare {
    Compare::lease(fence.key.clone(), CompareOp::Equal, fence.lease)
}

/// What a failed fenced write reads, to tell a lost fence from a conflict.
fn fence_read(fence: &Fence) -> TxnOp {
    TxnOp::get(fence.key.clone(), Some(GetOptions::new().with_keys_only()))
}

fn fence_held(read: Option<&TxnOpResponse>, fence: &Fence) -> bool {
    match read {
        Some(TxnOpResponse::Get(g)) => g.kvs().first().is_some_and(|kv| kv.lease() == fence.lease),
        _ => false,
    }
}

fn key_string(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

fn to_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key().to_vec(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

fn put_options(lease: i64) -> Option<PutOptions> {
    (lease != 0).then(|| PutOptions::new().with_lease(lease))
}

fn stream_closed() -> Error {
    Error::Unavailable { message: "the watch stream was closed by etcd".into(), code: None }
}

/// What one watch response means: a batch of events (none: a progress notification, every
/// change up to its revision sent), an error when etcd canceled the watch, or nothing (the
/// acknowledgement of the create request).
fn watch_batch(resp: &etcd_client::WatchResponse, start_revision: i64) -> Option<Result<WatchBatch>> {
    if resp.canceled() {
        let reason = resp.cancel_reason();
        let err = if resp.compact_revision() > 0 {
            Error::Expired { requested: start_revision, compacted: resp.compact_revision() }
        } else if reason.contains("permission denied") {
            // A range the user's role does not cover: final, never retried.
            Error::PermissionDenied { message: reason.to_owned(), code: Some("PermissionDenied".into()) }
        } else {
            // "no leader", or the server shutting down: resumable.
            Error::Unavailable { message: format!("watch canceled by etcd: {reason}"), code: None }
        };
        return Some(Err(err));
    }
    if resp.created() && resp.events().is_empty() {
        return None;
    }
    let revision = resp.header().map_or(0, |h| h.revision());
    let events: Vec<WatchEvent> = resp
        .events()
        .iter()
        .filter_map(|e| {
            let kind = match e.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => EventKind::Delete,
            };
            Some(WatchEvent { kind, kv: to_kv(e.kv()?), prev: e.prev_kv().map(to_kv) })
        })
        .collect();
    // A progress notification asked for: etcd answers it for every watch of the stream (-1).
    let requested = events.is_empty() && resp.watch_id() == -1;
    Some(Ok(WatchBatch { events, revision, requested }))
}

/// Where a watch stream is open: counted on its endpoint, and ended if it is ejected.
struct WatchOn {
    watching: Watching,
    ejected: CancellationToken,
}

/// Progress requests go on the watch's own request stream.
struct EtcdProgress {
    sender: tokio::sync::Mutex<etcd_client::WatchRequestSender>,
}

#[async_trait]
impl ProgressRequester for EtcdProgress {
    async fn request_progress(&self) -> Result<()> {
        self.sender.lock().await.request_progress().await.map_err(map_error)
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let mut options = GetOptions::new();
        if !req.range_end.is_empty() {
            options = options.with_range(req.range_end.clone());
        }
        if req.limit > 0 {
            options = options.with_limit(req.limit);
        }
        if req.revision > 0 {
            options = options.with_revision(req.revision);
        }
        if req.keys_only {
            options = options.with_keys_only();
        }
        if req.count_only {
            options = options.with_count_only();
        }
        if req.min_mod_revision > 0 {
            options = options.with_min_mod_revision(req.min_mod_revision);
        }
        let key = req.key.clone();
        let read = |c: Client| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.kv_client().max_decoding_message_size(MAX_RESPONSE).get(key, Some(options)).await }
        };
        let resp = self.read("range", read).await.map_err(|e| match e {
            Error::Expired { compacted, .. } => Error::Expired { requested: req.revision, compacted },
            other => other,
        })?;
        Ok(RangeResponse {
            kvs: resp.kvs().iter().map(to_kv).collect(),
            count: resp.count(),
            more: resp.more(),
            revision: resp.header().map_or(0, |h| h.revision()),
        })
    }

    async fn put(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        if let Some(fence) = fence::current() {
            let txn = Txn::new().when([fenced(&fence)]).and_then([TxnOp::put(
                key.clone(),
                value,
                put_options(lease),
            )]);
            let resp = self.txn("put", txn).await?;
            if !resp.succeeded() {
                return Err(fence.refused(&key));
            }
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let resp = self
            .call("put", |mut c| {
                let (key, value) = (key.clone(), value.clone());
                async move { c.put(key, value, put_options(lease)).await }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn create(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        let fence = fence::current();
        let mut compares = vec![Compare::create_revision(key.clone(), CompareOp::Equal, 0)];
        compares.extend(fence.as_ref().map(fenced));
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::put(key.clone(), value, put_options(lease))])
            .or_else(fence.as_ref().map(fence_read).into_iter().collect::<Vec<_>>());
        let resp = self.txn("create", txn).await?;
        if !resp.succeeded() {
            if let Some(fence) = fence.filter(|f| !fence_held(resp.op_responses().first(), f)) {
                return Err(fence.refused(&key));
            }
            return Err(Error::AlreadyExists { key: key_string(&key) });
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn compare_and_swap(&self, key: Vec<u8>, expected: i64, value: Vec<u8>, lease: i64) -> Result<i64> {
        let fence = fence::current();
        let mut compares = vec![Compare::mod_revision(key.clone(), CompareOp::Equal, expected)];
        compares.extend(fence.as_ref().map(fenced));
        let mut otherwise = vec![TxnOp::get(key.clone(), Some(GetOptions::new().with_keys_only()))];
        otherwise.extend(fence.as_ref().map(fence_read));
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::put(key.clone(), value, put_options(lease))])
            .or_else(otherwise);
        let resp = self.txn("compare_and_swap", txn).await?;
        if !resp.succeeded() {
            let responses = resp.op_responses();
            if let Some(fence) = fence.filter(|f| !fence_held(responses.get(1), f)) {
                return Err(fence.refused(&key));
            }
            let actual = Self::actual_revision(responses);
            return Err(Error::Conflict { key: key_string(&key), expected, actual });
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn delete(&self, key: Vec<u8>, expected: Option<i64>) -> Result<Option<i64>> {
        let fence = fence::current();
        let mut compares: Vec<Compare> =
            expected.map(|e| Compare::mod_revision(key.clone(), CompareOp::Equal, e)).into_iter().collect();
        compares.extend(fence.as_ref().map(fenced));
        let mut otherwise = vec![TxnOp::get(key.clone(), Some(GetOptions::new().with_keys_only()))];
        otherwise.extend(fence.as_ref().map(fence_read));
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(key.clone(), None::<DeleteOptions>)])
            .or_else(otherwise);
        let resp = match self.txn("delete", txn).await {
            // etcd before 3.5.7 refuses every transaction while its database is full, even
            // one that only deletes: see `nospace` (which cannot fence: a fenced delete fails).
            Err(Error::QuotaExceeded { .. }) if fence.is_none() => {
                return nospace::delete(self, key, expected).await
            }
            other => other?,
        };
        let revision = resp.header().map_or(0, |h| h.revision());
        let responses = resp.op_responses();
        if !resp.succeeded() {
            if let Some(fence) = fence.filter(|f| !fence_held(responses.get(1), f)) {
                return Err(fence.refused(&key));
            }
            let actual = Self::actual_revision(responses);
            let expected = expected.unwrap_or_default();
            return Err(Error::Conflict { key: key_string(&key), expected, actual });
        }
        let deleted = responses.iter().any(|r| match r {
            TxnOpResponse::Delete(d) => d.deleted() > 0,
            TxnOpResponse::Put(_) | TxnOpResponse::Get(_) | TxnOpResponse::Txn(_) => false,
        });
        Ok(deleted.then_some(revision))
    }

    async fn watch(&self, prefix: Vec<u8>, start_revision: i64) -> Result<WatchStream> {
        let mut options =
            WatchOptions::new().with_range(prefix_end(&prefix)).with_prev_key().with_progress_notify();
        if start_revision > 0 {
            options = options.with_start_revision(start_revision);
        }
        // Wait for etcd's answer to the create request, so that a watch it refuses (a range
        // the user may not read) fails here, at once, rather than as a broken stream. Opening
        // a watch changes nothing, so it is retried elsewhere as a read is.
        let ((stream, first), route) = self
            .read_routed("watch", |c| {
                let (prefix, options) = (prefix.clone(), options.clone());
                async move {
                    let mut watch = c.watch_client().max_decoding_message_size(MAX_RESPONSE);
                    let mut stream = watch.watch(prefix, Some(options)).await?;
                    let first = stream.message().await?;
                    Ok((stream, first))
                }
            })
            .await?;
        let pending = match first.as_ref().map(|resp| watch_batch(resp, start_revision)) {
            None => return Err(stream_closed()),
            Some(Some(Err(e))) => return Err(e),
            Some(Some(Ok(batch))) => Some(batch),
            Some(None) => None,
        };
        let (sender, responses) = stream.split();
        let progress = Arc::new(EtcdProgress { sender: tokio::sync::Mutex::new(sender) });
        // The stream ends when its endpoint is ejected (the watcher reopens it elsewhere from
        // the next revision), and a connection failure under it ejects the endpoint.
        let on = WatchOn { watching: self.endpoints.watching(route.index), ejected: route.ejected };
        let events = futures::stream::unfold(Some((responses, pending, on)), move |state| async move {
            let (mut stream, pending, on) = state?;
            if let Some(batch) = pending {
                return Some((Ok(batch), Some((stream, None, on))));
            }
            loop {
                let message = tokio::select! {
                    _ = on.ejected.cancelled() => {
                        let message = format!("watch moved: {} stopped answering (ejected)", on.watching.url());
                        return Some((Err(Error::Unavailable { message, code: None }), None));
                    }
                    message = stream.message() => message,
                };
                match message {
                    Ok(Some(resp)) => match watch_batch(&resp, start_revision) {
                        None => continue,
                        Some(Ok(batch)) => return Some((Ok(batch), Some((stream, None, on)))),
                        Some(Err(e)) => return Some((Err(e), None)),
                    },
                    Ok(None) => return Some((Err(stream_closed()), None)),
                    Err(e) => {
                        on.watching.record(classify(&e));
                        return Some((Err(map_error(e)), None));
                    }
                }
            }
        });
        Ok(WatchStream { batches: events.boxed(), progress })
    }

    async fn lease_grant(&self, ttl: i64) -> Result<i64> {
        let resp = self.call("lease_grant", |mut c| async move { c.lease_grant(ttl, None).await }).await?;
        Ok(resp.id())
    }

    async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        let resp = self
            .call("lease_keep_alive", |mut c| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
                keeper.keep_alive().await?;
                stream.message().await
            })
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::NotFound { key: format!("lease {id:x}") },
                other => other,
            })?;
        match resp {
            Some(r) if r.ttl() > 0 => Ok(r.ttl()),
            _ => Err(Error::NotFound { key: format!("lease {id:x}") }),
        }
    }

    async fn lease_revoke(&self, id: i64) -> Result<()> {
        self.call("lease_revoke", |mut c| async move { c.lease_revoke(id).await }).await?;
        Ok(())
    }

    async fn current_revision(&self, within: &[u8]) -> Result<i64> {
        // A count-only read of one key is the cheapest request that returns a header (its
        // revision is the store's, not the key's), and reading the key `within` needs nothing
        // but read permission on it: the prefix the caller works under is inside its role.
        let key = if within.is_empty() { vec![0u8] } else { within.to_vec() };
        let resp = self
            .read("current_revision", |mut c| {
                let key = key.clone();
                async move { c.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.call("compact", |mut c| async move { c.compact(revision, None).await }).await?;
        Ok(())
    }

    async fn progress_ordered(&self) -> bool {
        if let Some(known) = self.progress.ordered.get() {
            return *known;
        }
        // Learnt on a task of its own, never on the watch's path (a member that does not
        // answer would hold the watch up to the request timeout); until then, not trusted.
        // Every member must be a version that orders it: a watch may be served by any. A
        // member that does not answer leaves it unknown, asked again at the next notification.
        if !self.progress.learning.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let (endpoints, timeout, progress) =
                (self.endpoints.clone(), self.config.timeout, self.progress.clone());
            tokio::spawn(async move {
                let versions = members::versions(&endpoints, timeout).await;
                if let Some(versions) = versions.into_iter().collect::<Option<Vec<String>>>() {
                    let _ = progress.ordered.set(versions.iter().all(|v| members::orders_progress(v)));
                }
                progress.learning.store(false, std::sync::atomic::Ordering::Release);
            });
        }
        false
    }

    fn metrics(&self) -> Option<Metrics> {
        Some(self.metrics.clone())
    }

    fn endpoints(&self) -> Vec<EndpointSnapshot> {
        self.endpoints.snapshot()
    }

    async fn members(&self) -> Result<Vec<crate::store::maintenance::MemberStatus>> {
        Ok(members::members(&self.endpoints, self.config.timeout).await)
    }
}
