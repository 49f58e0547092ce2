//! The request policy: which endpoint each attempt goes to, when a request is tried again
//! or hedged, under which deadline, and what its failure means.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use etcd_client::Client;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::breaker;
use super::endpoints::{classify, Outcome};
use super::errors::{map_error, not_etcd};
use super::EtcdStore;
use crate::error::{Error, Result};
use crate::jitter::jitter;

/// Where an attempt went: the endpoint, and the token cancelled if it is ejected.
pub(super) struct Route {
    pub(super) index: usize,
    pub(super) ejected: CancellationToken,
}

/// A failed attempt: the caller's error, and what it says of the endpoint.
pub(super) struct Failed {
    error: Error,
    outcome: Outcome,
}

/// How one call is tried: the request policy's parameters, for writes and for reads.
struct Policy {
    /// A read: an attempt gives up when its endpoint is ejected meanwhile, one that could not
    /// reach etcd is tried again, and once every endpoint was tried retries wait first, with
    /// backoff and jitter. A write is tried again only when it was never sent.
    read: bool,
    /// After how long without an answer another attempt goes beside those running (a hedge).
    hedge: Option<Duration>,
    /// The most attempts of the call.
    attempts: usize,
}

impl Policy {
    /// Whether a failed attempt may be followed by another: a read that could not reach etcd;
    /// a write that was never sent, or that etcd refused "no leader" before proposing it
    /// (`leaderless`).
    fn retries(&self, failed: &Failed) -> bool {
        if self.read {
            breaker::unreachable(&failed.error)
        } else {
            matches!(failed.outcome, Outcome::NotSent | Outcome::Leaderless)
        }
    }
}

/// One attempt launched by a call.
struct Launched {
    /// The endpoint it went to.
    endpoint: usize,
    /// When it started.
    at: tokio::time::Instant,
    /// Whether it has ended (answered or failed).
    ended: bool,
}

impl EtcdStore {
    /// Run one request with the request timeout. It is sent again (to another endpoint if
    /// there is one) only when the connection for it could not be made (it never left), or
    /// etcd refused it "no leader" (never proposed: `leaderless`).
    /// Otherwise a write that timed out or whose connection broke may have been applied, and
    /// its error says so.
    pub(super) async fn call<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        // Once per endpoint, and once more with a single endpoint: tonic hands the first call
        // after a failed reconnection that (stale) connect error.
        let policy = Policy { read: false, hedge: None, attempts: self.endpoints.len().max(2) };
        self.run(operation, policy, f).await.map(|(value, _)| value)
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
    pub(super) async fn read<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<T>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.read_routed(operation, f).await.map(|(value, _)| value)
    }

    /// [`Self::read`], with where the answer came from.
    pub(super) async fn read_routed<T, F, Fut>(&self, operation: &'static str, f: F) -> Result<(T, Route)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let hedge = (self.endpoints.len() > 1).then(|| self.config.timeout / (self.config.retries + 1));
        let policy = Policy { read: true, hedge, attempts: self.config.retries as usize + 1 };
        self.run(operation, policy, f).await
    }

    /// The request policy's one loop: attempts launched as `policy` says, under the request
    /// timeout, the first answer taken. The breaker and the metrics count the call, not its
    /// attempts.
    async fn run<T, F, Fut>(&self, operation: &'static str, policy: Policy, f: F) -> Result<(T, Route)>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        self.breaker.admit().map_err(|e| self.with_endpoints(e))?;
        let started = std::time::Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let mut pause = Duration::from_millis(50);
        let mut launched: Vec<Launched> = Vec::new();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut next_launch = Some(tokio::time::Instant::now());
        // Whether the next launch is a hedge (beside attempts still running) rather than the
        // first attempt or a retry after a failure.
        let mut hedging = false;
        let mut last_error = None;
        let result = loop {
            let now = tokio::time::Instant::now();
            if let Some(at) = next_launch.filter(|at| *at <= now) {
                let tried: Vec<usize> = launched.iter().map(|a| a.endpoint).collect();
                let index = self.endpoints.pick(&tried);
                next_launch = None;
                // A hedge goes only to a healthy endpoint not tried yet (`pick` prefers one).
                if !hedging || (self.endpoints.is_healthy(index) && !tried.contains(&index)) {
                    let attempt = launched.len();
                    launched.push(Launched { endpoint: index, at: now, ended: false });
                    let left = deadline.saturating_duration_since(now).max(Duration::from_millis(1));
                    let f = &f;
                    let read = policy.read;
                    running
                        .push(async move { (attempt, self.attempt(operation, index, left, read, f).await) });
                    let more = launched.len() < policy.attempts;
                    next_launch = policy.hedge.filter(|_| more).map(|h| at + h).filter(|t| *t < deadline);
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
            launched[attempt].ended = true;
            match outcome {
                Ok(value) => {
                    // Endpoints still silent after their share of the time, while this one
                    // answered: eject them.
                    let now = tokio::time::Instant::now();
                    for a in launched.iter().filter(|a| !a.ended) {
                        if policy.hedge.is_some_and(|h| now.duration_since(a.at) >= h) {
                            self.endpoints.record(a.endpoint, Outcome::Silent);
                        }
                    }
                    break Ok(value);
                }
                Err(failed) if policy.retries(&failed) => {
                    let outcome = failed.outcome;
                    last_error = Some(failed.error);
                    if launched.len() >= policy.attempts {
                        continue;
                    }
                    let now = tokio::time::Instant::now();
                    let untried =
                        (0..self.endpoints.len()).any(|i| !launched.iter().any(|a| a.endpoint == i));
                    let retry_at = if untried || !policy.read {
                        // Another endpoint may answer (or the write was never sent): at once.
                        now
                    } else {
                        let wait = pause.mul_f64(jitter());
                        pause *= 2;
                        now + wait
                    };
                    if retry_at < deadline {
                        // A retry, not a hedge: it may go to an endpoint tried already; but a
                        // write refused "no leader" goes, as a hedge does, only to a healthy
                        // endpoint not tried yet (without a quorum anywhere it fails at once,
                        // rather than wait on a silent member and end unknown).
                        next_launch = Some(next_launch.map_or(retry_at, |t| t.min(retry_at)));
                        hedging = !policy.read && outcome == Outcome::Leaderless;
                    }
                }
                Err(failed) => break Err(failed.error),
            }
        };
        drop(running);
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
                outcome @ (Outcome::Answered | Outcome::Leaderless) => {
                    self.answered.store(true, Ordering::Relaxed);
                    Failed { error: map_error(e), outcome }
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
    pub(super) fn no_answer(&self, operation: &'static str, timeout: Duration) -> Error {
        if self.answered.load(Ordering::Relaxed) {
            Error::Timeout { operation: operation.to_owned(), seconds: timeout.as_secs_f64() }
        } else {
            Error::Unavailable { message: format!("no answer within {timeout:?}"), code: None }
        }
    }

    /// Name the endpoints in an `Unavailable` error.
    pub(super) fn with_endpoints(&self, e: Error) -> Error {
        match e {
            Error::Unavailable { message, code } => {
                Error::Unavailable { message: format!("{message} (endpoints {:?})", self.urls), code }
            }
            other => other,
        }
    }
}
