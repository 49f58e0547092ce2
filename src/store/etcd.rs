//! [`EtcdStore`]: the [`Store`] on a real etcd cluster, through the `etcd-client` crate.
//!
//! Constructing it does no I/O: each endpoint's connection is made by the first call sent to
//! it (and made again by a later call if it failed). Every call clones the cheap
//! `etcd_client::Client` handle of the endpoint it goes to, so concurrent calls run
//! concurrently on the HTTP/2 connections; nothing serialises them. Every call runs under the
//! request timeout. Which endpoint a call goes to, and what happens when one stops
//! answering: [`super::endpoints`].

use std::error::Error as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::breaker::{self, Breaker};
use super::endpoints::{classify, EndpointSnapshot, Endpoints, Outcome, Watching};
use super::WatchStream;
use super::{
    prefix_end, EventKind, KeyValue, ProgressRequester, RangeRequest, RangeResponse, Store, WatchBatch,
    WatchEvent,
};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// The largest response this client accepts: etcd's own limit on what it sends (gRPC's
/// `math.MaxInt32`). tonic's default, 4 MiB, failed a listing as soon as a 500-key chunk of
/// documents averaged 8 KiB, and a watch response carrying a large transaction.
const MAX_RESPONSE: usize = i32::MAX as usize;

/// How to reach etcd.
#[derive(Clone)]
pub struct EtcdConfig {
    /// `host:port` or `http(s)://host:port`, one per cluster member.
    pub endpoints: Vec<String>,
    /// Deadline of each request.
    pub timeout: Duration,
    /// Deadline of establishing the connection.
    pub connect_timeout: Duration,
    /// Username and password for etcd's auth.
    pub credentials: Option<(String, String)>,
    /// TLS: the CA that signed etcd's certificate, and a client certificate and key (PEM).
    pub tls: Option<TlsConfig>,
    /// Extra attempts of a read that could not reach etcd (within the request timeout).
    pub retries: u32,
    /// Calls in a row that fail to reach etcd before calls fail fast (0: never).
    pub breaker_threshold: u32,
    /// How long calls fail fast before one probes etcd again.
    pub breaker_reset: Duration,
}

impl std::fmt::Debug for EtcdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// PEM material for TLS to etcd.
#[derive(Clone, Default)]
pub struct TlsConfig {
    pub ca: Option<Vec<u8>>,
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Vec<u8>>,
    /// The name to check etcd's certificate against (default: the endpoint's host).
    pub domain: Option<String>,
}

impl TlsConfig {
    fn options(&self) -> etcd_client::TlsOptions {
        let mut tls = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            tls = tls.identity(etcd_client::Identity::from_pem(cert, key));
        }
        if let Some(domain) = &self.domain {
            tls = tls.domain_name(domain.clone());
        }
        tls
    }
}

/// HTTP/2 keep-alive ping interval: a connection with requests or watches open that has read
/// nothing for this long is pinged, and closed if the ping is not answered within the request
/// timeout (a watch on a silent member then ends and reopens elsewhere, even with no request
/// to notice). etcd counts a ping less than `--grpc-keepalive-min-time` (5 s by default) after
/// the previous one as abuse and closes the connection (GOAWAY `too_many_pings`): hyper pings
/// only after the interval without reading anything, so pings are at least this far apart.
/// Idle connections are not pinged: etcd does not permit pings without a stream open.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// The store on an etcd cluster.
pub struct EtcdStore {
    config: EtcdConfig,
    /// One connection per member, with its health (see `endpoints`).
    endpoints: Arc<Endpoints>,
    /// Whether any request has been answered: a timeout before that means etcd is
    /// unreachable (`Unavailable`), after it that one request was slow (`Timeout`).
    answered: AtomicBool,
    /// Cancelled when the client closes: calls in flight end with `Closed`.
    closed: CancellationToken,
    breaker: Breaker,
    metrics: Metrics,
}

/// Where an attempt went: the endpoint, and the token cancelled if it is ejected.
struct Route {
    index: usize,
    ejected: CancellationToken,
}

/// A failed attempt: the caller's error, and what it says of the endpoint.
struct Failed {
    error: Error,
    outcome: Outcome,
}

impl EtcdStore {
    /// A store for `config`; connects on first use.
    pub fn new(config: EtcdConfig, closed: CancellationToken) -> Self {
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
            &config.endpoints,
            options,
            config.connect_timeout,
            config.timeout,
            closed.clone(),
        );
        EtcdStore {
            config,
            endpoints,
            answered: AtomicBool::new(false),
            closed,
            breaker,
            metrics: Metrics::default(),
        }
    }

    /// Run one request with the request timeout. It is sent again (to another endpoint if
    /// there is one) only when the connection for it could not be made: it never left.
    /// Otherwise a write that timed out or whose connection broke may have been applied, and
    /// its error says so.
    async fn call<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.breaker.admit().map_err(|e| self.with_endpoints(e))?;
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut tried = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let index = self.endpoints.pick(&tried);
            tried.push(index);
            match self.attempt(operation, index, left.max(Duration::from_millis(1)), false, &f).await {
                // Once per endpoint, and once more with a single endpoint: tonic hands the
                // first call after a failed reconnection that (stale) connect error.
                Err(Failed { outcome: Outcome::NotSent, .. })
                    if tried.len() < self.endpoints.len().max(2)
                        && tokio::time::Instant::now() < deadline =>
                {
                    continue
                }
                other => break other.map(|(value, _)| value).map_err(|failed| failed.error),
            }
        };
        self.metrics.record(operation, started.elapsed(), result.is_ok());
        self.breaker.record(result.as_ref().map(|_| ()));
        result
    }

    /// A read: tried again when etcd could not be reached, within the request timeout, on
    /// another endpoint when there is one. Reads are hedged: with several endpoints, a read
    /// that has no answer after its share of the timeout (`timeout / (retries + 1)`) is also
    /// sent to another endpoint, the first answer wins and the others are dropped; so a read
    /// sent to a silent member is answered by another in time, while a read that is slow
    /// everywhere still has the whole timeout. An endpoint that let another answer first
    /// after its share of the time is ejected (a probe re-admits it soon if it was only
    /// slow). An attempt also gives up when its endpoint is ejected meanwhile. An attempt
    /// that fails is followed at once by one to an endpoint not tried yet; once every
    /// endpoint was tried, retries wait first, with backoff and jitter. (Writes are not
    /// retried: one that timed out may have been applied.)
    async fn read<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.read_routed(operation, f).await.map(|(value, _)| value)
    }

    async fn read_routed<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<(T, Route)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.breaker.admit().map_err(|e| self.with_endpoints(e))?;
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let hedge = (self.endpoints.len() > 1).then(|| self.config.timeout / (self.config.retries + 1));
        let mut pause = Duration::from_millis(50);
        // Every attempt launched: its endpoint, when it started, whether it ended.
        let mut launched: Vec<(usize, tokio::time::Instant, bool)> = Vec::new();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut next_launch = Some(tokio::time::Instant::now());
        // Whether the next launch is a hedge (beside attempts still running) rather than the
        // first attempt or a retry after a failure.
        let mut hedging = false;
        let mut last_error = None;
        let result = loop {
            let now = tokio::time::Instant::now();
            if let Some(at) = next_launch.filter(|at| *at <= now) {
                let tried: Vec<usize> = launched.iter().map(|a| a.0).collect();
                let index = self.endpoints.pick(&tried);
                next_launch = None;
                // A hedge goes only to a healthy endpoint not tried yet (`pick` prefers one).
                if !hedging || (self.endpoints.is_healthy(index) && !tried.contains(&index)) {
                    let attempt = launched.len();
                    launched.push((index, now, false));
                    let left = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
                    let f = &f;
                    running
                        .push(async move { (attempt, self.attempt(operation, index, left, true, f).await) });
                    let more = launched.len() <= self.config.retries as usize;
                    next_launch = hedge.filter(|_| more).map(|h| at + h).filter(|t| *t < deadline);
                    hedging = true;
                }
            }
            if running.is_empty() && next_launch.is_none() {
                break Err(last_error.unwrap_or_else(|| self.no_answer(operation, self.config.timeout)));
            }
            let wake = next_launch.unwrap_or(deadline);
            let (attempt, outcome) = tokio::select! {
                _ = self.closed.cancelled() => break Err(Error::Closed),
                _ = tokio::time::sleep_until(wake), if next_launch.is_some() => continue,
                Some(done) = running.next() => done,
            };
            launched[attempt].2 = true;
            match outcome {
                Ok(value) => {
                    // Endpoints still silent after their share of the time, while this one
                    // answered: eject them.
                    let now = tokio::time::Instant::now();
                    for (index, at, _) in launched.iter().filter(|a| !a.2) {
                        if hedge.is_some_and(|h| now.duration_since(*at) >= h) {
                            self.endpoints.record(*index, Outcome::Silent);
                        }
                    }
                    break Ok(value);
                }
                Err(Failed { error, .. }) if breaker::unreachable(&error) => {
                    last_error = Some(error);
                    if launched.len() > self.config.retries as usize {
                        continue;
                    }
                    let now = tokio::time::Instant::now();
                    let untried = (0..self.endpoints.len()).any(|i| !launched.iter().any(|a| a.0 == i));
                    let retry_at = if untried {
                        // Another endpoint may answer: at once.
                        now
                    } else {
                        let nanos = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.subsec_nanos());
                        let wait = pause.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0);
                        pause *= 2;
                        now + wait
                    };
                    if retry_at < deadline {
                        // A retry, not a hedge: it may go to an endpoint tried already.
                        next_launch = Some(next_launch.map_or(retry_at, |t| t.min(retry_at)));
                        hedging = false;
                    }
                }
                Err(failed) => break Err(failed.error),
            }
        };
        drop(running);
        // The breaker and the metrics count calls, not attempts.
        self.metrics.record(operation, started.elapsed(), result.is_ok());
        self.breaker.record(result.as_ref().map(|_| ()));
        result
    }

    /// One attempt on endpoint `index`, under `timeout`. A `read` gives up when the endpoint
    /// is ejected meanwhile.
    async fn attempt<T, F, Fut>(
        &self,
        operation: &'static str,
        index: usize,
        timeout: Duration,
        read: bool,
        f: F,
    ) -> std::result::Result<(T, Route), Failed>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let closed = || Failed { error: Error::Closed, outcome: Outcome::Answered };
        if self.endpoints.is_empty() {
            return Err(Failed { error: Error::invalid("no endpoints given"), outcome: Outcome::Answered });
        }
        let (_in_flight, ejected) = self.endpoints.begin(index);
        let work = async {
            let client = self.endpoints.client(index).await.map_err(Err)?;
            f(client).await.map_err(Ok)
        };
        let outcome = tokio::select! {
            _ = self.closed.cancelled() => return Err(closed()),
            _ = ejected.cancelled(), if read => None,
            outcome = tokio::time::timeout(timeout, work) => Some(outcome),
        };
        let failed = match outcome {
            Some(Ok(Ok(value))) => {
                self.answered.store(true, Ordering::Relaxed);
                self.endpoints.record(index, Outcome::Answered);
                return Ok((value, Route { index, ejected }));
            }
            // The connection could not be made.
            Some(Ok(Err(Err(failure)))) => match failure.outcome {
                Outcome::Broken if !self.answered.load(Ordering::Relaxed) => {
                    Failed { error: not_etcd(failure.error), outcome: failure.outcome }
                }
                outcome => Failed { error: failure.error, outcome },
            },
            Some(Ok(Err(Ok(e)))) => match classify(&e) {
                Outcome::Answered => {
                    self.answered.store(true, Ordering::Relaxed);
                    Failed { error: map_error(e), outcome: Outcome::Answered }
                }
                // tonic's own deadline (the same request timeout) fired first.
                Outcome::Silent => {
                    Failed { error: self.no_answer(operation, timeout), outcome: Outcome::Silent }
                }
                Outcome::Broken if !self.answered.load(Ordering::Relaxed) => {
                    Failed { error: not_etcd(map_error(e)), outcome: Outcome::Broken }
                }
                outcome @ (Outcome::Broken | Outcome::NotSent) => Failed { error: map_error(e), outcome },
            },
            Some(Err(_)) => Failed { error: self.no_answer(operation, timeout), outcome: Outcome::Silent },
            // Another request found the endpoint silent: it was ejected (already recorded).
            None => {
                let message = format!(
                    "{} stopped answering (ejected) while the request waited",
                    self.endpoints.url(index)
                );
                return Err(Failed {
                    error: Error::Unavailable { message, code: None },
                    outcome: Outcome::Silent,
                });
            }
        };
        self.endpoints.record(index, failed.outcome);
        Err(Failed { error: self.with_endpoints(failed.error), outcome: failed.outcome })
    }

    /// The error of a request that got no answer in `timeout`.
    fn no_answer(&self, operation: &'static str, timeout: Duration) -> Error {
        if self.answered.load(Ordering::Relaxed) {
            Error::Timeout { operation: operation.to_owned(), seconds: timeout.as_secs_f64() }
        } else {
            Error::Unavailable { message: format!("no answer within {timeout:?}"), code: None }
        }
    }

    /// Name the endpoints in an `Unavailable` error.
    fn with_endpoints(&self, e: Error) -> Error {
        match e {
            Error::Unavailable { message, code } => Error::Unavailable {
                message: format!("{message} (endpoints {:?})", self.config.endpoints),
                code,
            },
            other => other,
        }
    }

    /// The key's mod_revision from the `else` branch of a failed transaction.
    fn actual_revision(responses: Vec<TxnOpResponse>) -> Option<i64> {
        responses.into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            TxnOpResponse::Put(_) | TxnOpResponse::Delete(_) | TxnOpResponse::Txn(_) => None,
        })
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
    let events = resp
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
    Some(Ok(WatchBatch { events, revision }))
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
        let resp = self
            .call("put", |mut c| {
                let (key, value) = (key.clone(), value.clone());
                async move { c.put(key, value, put_options(lease)).await }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn create(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, put_options(lease))]);
        let resp = self
            .call("create", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists { key: key_string(&key) });
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn compare_and_swap(&self, key: Vec<u8>, expected: i64, value: Vec<u8>, lease: i64) -> Result<i64> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, expected)])
            .and_then([TxnOp::put(key.clone(), value, put_options(lease))])
            .or_else([TxnOp::get(key.clone(), Some(GetOptions::new().with_keys_only()))]);
        let resp = self
            .call("compare_and_swap", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        if !resp.succeeded() {
            let actual = Self::actual_revision(resp.op_responses());
            return Err(Error::Conflict { key: key_string(&key), expected, actual });
        }
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn delete(&self, key: Vec<u8>, expected: Option<i64>) -> Result<Option<i64>> {
        let compares: Vec<Compare> =
            expected.map(|e| Compare::mod_revision(key.clone(), CompareOp::Equal, e)).into_iter().collect();
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(key.clone(), None::<DeleteOptions>)])
            .or_else([TxnOp::get(key.clone(), Some(GetOptions::new().with_keys_only()))]);
        let resp = self
            .call("delete", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let responses = resp.op_responses();
        if !resp.succeeded() {
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

    fn metrics(&self) -> Option<Metrics> {
        Some(self.metrics.clone())
    }

    fn endpoints(&self) -> Vec<EndpointSnapshot> {
        self.endpoints.snapshot()
    }
}

/// Map every `etcd_client::Error` to ours. Every variant is named, so a new one fails to
/// compile here rather than being mapped by accident.
pub(crate) fn map_error(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => map_status(&status),
        E::TransportError(t) => transport_error(&t),
        E::IoError(io) => Error::Unavailable { message: format!("i/o error: {io}"), code: None },
        E::InvalidArgs(m) => Error::invalid(m),
        E::InvalidUri(u) => Error::invalid(format!("invalid endpoint: {u}")),
        E::EndpointError(m) => Error::invalid(format!("invalid endpoint: {m}")),
        E::InvalidMetadataValue(m) => Error::invalid(format!("invalid metadata value: {m}")),
        E::Utf8Error(u) => Error::serialization(None, u),
        E::WatchError(m) => Error::Unavailable { message: format!("watch: {m}"), code: None },
        // etcd-client reports a lease etcd no longer knows as "lease not found".
        E::LeaseKeepAliveError(m) if m.contains("not found") => Error::NotFound { key: "lease".into() },
        E::LeaseKeepAliveError(m) => {
            Error::Unavailable { message: format!("lease keep-alive: {m}"), code: None }
        }
        E::ElectError(m) => Error::Etcd { message: format!("election: {m}"), code: None },
        E::EndpointsNotManaged => Error::invalid("endpoints are not managed by this client"),
        E::Internal(m) => Error::Etcd { message: m, code: None },
    }
}

/// A connection that failed, with the causes tonic's message leaves out.
fn transport_error(t: &tonic::transport::Error) -> Error {
    let message = with_causes(format!("transport error: {t}"), std::error::Error::source(t));
    Error::Unavailable { message, code: None }
}

/// `message` followed by the causes tonic's message leaves out.
fn with_causes(mut message: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(e) = source {
        let cause = e.to_string();
        if !message.ends_with(&cause) {
            message = format!("{message}: {cause}");
        }
        source = e.source();
    }
    message
}

/// A connection made that broke at a client's first request (no request was ever answered):
/// the other end took the connection and not gRPC's HTTP/2, so it is not etcd's client port
/// (a web server, a metrics port, etcd's TLS port asked without TLS).
fn not_etcd(e: Error) -> Error {
    let (message, code) = match e {
        Error::Unavailable { message, code } | Error::Etcd { message, code } => (message, code),
        other => (other.to_string(), None),
    };
    Error::Unavailable { message: format!("{NOT_ETCD}: {message}"), code }
}

/// What a failure says when the endpoint is not etcd's gRPC API.
pub(crate) const NOT_ETCD: &str = "this endpoint does not speak etcd's API (is it etcd's client port, 2379?)";

fn map_status(status: &tonic::Status) -> Error {
    use tonic::Code;
    let message = with_causes(status.message().to_owned(), status.source());
    let code = Some(format!("{:?}", status.code()));
    match status.code() {
        Code::Unavailable | Code::Aborted | Code::ResourceExhausted | Code::Cancelled => {
            Error::Unavailable { message, code }
        }
        Code::DeadlineExceeded => Error::Timeout { operation: message, seconds: 0.0 },
        Code::PermissionDenied | Code::Unauthenticated => Error::PermissionDenied { message, code },
        Code::OutOfRange if message.contains("compacted") => Error::Expired { requested: 0, compacted: 0 },
        // etcd answers these auth failures as InvalidArgument or FailedPrecondition.
        Code::InvalidArgument | Code::FailedPrecondition
            if message.contains("authentication failed")
                || message.contains("user name is empty")
                || message.contains("permission denied")
                || message.contains("invalid auth token") =>
        {
            Error::PermissionDenied { message, code }
        }
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            Error::InvalidArgument { message: format!("etcd refused the request: {message}") }
        }
        Code::NotFound => Error::NotFound { key: message },
        // A broken connection under a stream ("h2 protocol error: error reading a body from
        // connection") comes as Unknown with the transport error as its source.
        Code::Unknown if status.source().is_some() || message.starts_with("h2 protocol error") => {
            Error::Unavailable { message, code }
        }
        Code::Ok
        | Code::Unknown
        | Code::AlreadyExists
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => Error::Etcd { message, code },
    }
}
