//! [`EtcdStore`]: the [`Store`] on a real etcd cluster, through the `etcd-client` crate.
//!
//! Constructing it does no I/O: the connection is made by the first call (and made again by
//! a later call if it failed). Every call clones the cheap `etcd_client::Client` handle, so
//! concurrent calls run concurrently on the one HTTP/2 connection pool; nothing serialises
//! them. Every call runs under the request timeout.

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
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::breaker::{self, Breaker};
use super::WatchStream;
use super::{
    prefix_end, EventKind, KeyValue, ProgressRequester, RangeRequest, RangeResponse, Store, WatchBatch,
    WatchEvent,
};
use crate::error::{Error, Result};
use crate::metrics::Metrics;

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

/// The store on an etcd cluster.
pub struct EtcdStore {
    config: EtcdConfig,
    client: OnceCell<Client>,
    /// Whether any request has been answered: a timeout before that means etcd is
    /// unreachable (`Unavailable`), after it that one request was slow (`Timeout`).
    answered: AtomicBool,
    /// Cancelled when the client closes: calls in flight end with `Closed`.
    closed: CancellationToken,
    breaker: Breaker,
    metrics: Metrics,
}

impl EtcdStore {
    /// A store for `config`; connects on first use.
    pub fn new(config: EtcdConfig, closed: CancellationToken) -> Self {
        let breaker = Breaker::new(config.breaker_threshold, config.breaker_reset);
        EtcdStore {
            config,
            client: OnceCell::new(),
            answered: AtomicBool::new(false),
            closed,
            breaker,
            metrics: Metrics::default(),
        }
    }

    async fn client(&self) -> Result<Client> {
        let client = self
            .client
            .get_or_try_init(|| async {
                let mut options = ConnectOptions::new()
                    .with_connect_timeout(self.config.connect_timeout)
                    .with_timeout(self.config.timeout)
                    .with_keep_alive(Duration::from_secs(10), self.config.timeout)
                    .with_keep_alive_while_idle(true)
                    .with_require_leader(true);
                if let Some(tls) = &self.config.tls {
                    options = options.with_tls(tls.options());
                }
                if let Some((user, password)) = &self.config.credentials {
                    // Expired auth tokens are refreshed (and the call retried) transparently.
                    options = options.with_user(user.clone(), password.clone()).with_auto_token_refresh(true);
                }
                let connect = Client::connect(&self.config.endpoints, Some(options));
                match tokio::time::timeout(self.config.connect_timeout, connect).await {
                    Ok(result) => result.map_err(map_error),
                    Err(_) => Err(Error::Unavailable {
                        message: format!(
                            "could not connect to {:?} within {:?}",
                            self.config.endpoints, self.config.connect_timeout
                        ),
                        code: None,
                    }),
                }
            })
            .await?;
        Ok(client.clone())
    }

    /// Run one request with the request timeout.
    async fn call<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.breaker.admit().map_err(|e| self.with_endpoints(e))?;
        let started = std::time::Instant::now();
        let result = self.attempt(operation, self.config.timeout, f).await;
        self.metrics.record(operation, started.elapsed(), result.is_ok());
        self.breaker.record(result.as_ref().map(|_| ()));
        result
    }

    /// A read: retried with backoff and jitter when etcd could not be reached, within the
    /// request timeout. (Writes are not retried: one that timed out may have been applied.)
    async fn read<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.breaker.admit().map_err(|e| self.with_endpoints(e))?;
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut pause = Duration::from_millis(50);
        let mut attempt = 0;
        let result = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.attempt(operation, left.max(Duration::from_millis(1)), &f).await {
                Err(e) if breaker::unreachable(&e) && attempt < self.config.retries => {
                    attempt += 1;
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos());
                    let wait = pause.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0);
                    if tokio::time::Instant::now() + wait >= deadline {
                        break Err(e);
                    }
                    tokio::select! {
                        _ = self.closed.cancelled() => break Err(Error::Closed),
                        _ = tokio::time::sleep(wait) => {}
                    }
                    pause *= 2;
                }
                other => break other,
            }
        };
        // The breaker and the metrics count calls, not attempts.
        self.metrics.record(operation, started.elapsed(), result.is_ok());
        self.breaker.record(result.as_ref().map(|_| ()));
        result
    }

    /// One attempt, under `timeout`.
    async fn attempt<T, F, Fut>(&self, operation: &'static str, timeout: Duration, f: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let client = tokio::select! {
            _ = self.closed.cancelled() => return Err(Error::Closed),
            client = self.client() => client?,
        };
        let call = tokio::time::timeout(timeout, f(client));
        let outcome = tokio::select! {
            _ = self.closed.cancelled() => return Err(Error::Closed),
            outcome = call => outcome,
        };
        let result = match outcome {
            Ok(Ok(value)) => {
                self.answered.store(true, Ordering::Relaxed);
                return Ok(value);
            }
            Ok(Err(e)) => map_error(e),
            Err(_) if !self.answered.load(Ordering::Relaxed) => Error::Unavailable {
                message: format!("no answer within {:?}", self.config.timeout),
                code: None,
            },
            Err(_) => Error::Timeout { operation: operation.to_owned(), seconds: timeout.as_secs_f64() },
        };
        Err(self.with_endpoints(result))
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
        let read = |mut c: Client| {
            let (key, options) = (key.clone(), options.clone());
            async move { c.get(key, Some(options)).await }
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
        let resp =
            self.call("put", |mut c| async move { c.put(key, value, put_options(lease)).await }).await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn create(&self, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<i64> {
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, put_options(lease))]);
        let resp = self.call("create", |mut c| async move { c.txn(txn).await }).await?;
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
        let resp = self.call("compare_and_swap", |mut c| async move { c.txn(txn).await }).await?;
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
        let resp = self.call("delete", |mut c| async move { c.txn(txn).await }).await?;
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
        // the user may not read) fails here, at once, rather than as a broken stream.
        let (stream, first) = self
            .call("watch", |mut c| async move {
                let mut stream = c.watch(prefix, Some(options)).await?;
                let first = stream.message().await?;
                Ok((stream, first))
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
        let events = futures::stream::unfold(Some((responses, pending)), move |state| async move {
            let (mut stream, pending) = state?;
            if let Some(batch) = pending {
                return Some((Ok(batch), Some((stream, None))));
            }
            loop {
                match stream.message().await {
                    Ok(Some(resp)) => match watch_batch(&resp, start_revision) {
                        None => continue,
                        Some(Ok(batch)) => return Some((Ok(batch), Some((stream, None)))),
                        Some(Err(e)) => return Some((Err(e), None)),
                    },
                    Ok(None) => return Some((Err(stream_closed()), None)),
                    Err(e) => return Some((Err(map_error(e)), None)),
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
}

/// Map every `etcd_client::Error` to ours. Every variant is named, so a new one fails to
/// compile here rather than being mapped by accident.
pub(crate) fn map_error(e: etcd_client::Error) -> Error {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => map_status(&status),
        E::TransportError(t) => Error::Unavailable { message: format!("transport error: {t}"), code: None },
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

fn map_status(status: &tonic::Status) -> Error {
    use tonic::Code;
    let message = status.message().to_owned();
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
