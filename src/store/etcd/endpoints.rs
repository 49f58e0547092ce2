//! Endpoint health: the etcd store keeps one connection per cluster member and sends each
//! request to a member that answers, so one silent member does not stall the client.
//!
//! Why not etcd-client's balanced channel (`Client::connect` with every endpoint): tower's
//! balancer sends a request to any connection that is "ready", and a connection to a member
//! that went silent (blackholed, or paused with SIGSTOP) stays ready, since nothing on it
//! fails; a third of the requests then wait out their whole timeout (issue #14: 950 ok
//! operations a second fell to 2 with one member isolated). HTTP/2 keep-alive would close
//! that connection eventually, but etcd refuses pings more often than every 5 s
//! (`--grpc-keepalive-min-time`), so it takes 5 s plus the ping timeout; and the balancer
//! cannot say which endpoint a request went to, which a read needs to retry on another.
//!
//! So, as etcd's own clientv3 balancer skips unhealthy endpoints:
//!
//! - One `etcd_client::Client` per endpoint ([`Endpoints::client`], connected on first use),
//!   each with its [`Health`]: healthy, or ejected.
//! - [`Endpoints::pick`] routes a request to a healthy endpoint with the fewest requests in
//!   flight (ties in turn), avoiding those the request already tried; when every endpoint is
//!   ejected it picks among all (as the client did before: the circuit breaker handles "etcd
//!   is down").
//! - An attempt that gets no answer in its time ([`Outcome::Silent`]), whose connection
//!   breaks ([`Outcome::Broken`]) or cannot be made ([`Outcome::NotSent`]) ejects its
//!   endpoint (when there is another: a single endpoint is never ejected). An answer, even
//!   an error etcd sends (a conflict), is not a failure of the endpoint; nor is one "no
//!   leader" (every member answers so for a moment during an election): only answering
//!   nothing else for longer than an election timeout is ([`Outcome::Leaderless`],
//!   `leaderless`).
//! - Ejecting an endpoint cancels its [`Endpoints::ejected`] token: reads in flight on it
//!   give up and are retried elsewhere, watches on it end and reopen elsewhere from the next
//!   revision. Writes in flight on it are left to finish or time out: one that was sent may
//!   have been applied, and only its own answer (or timeout) can say so.
//! - A background task probes ejected endpoints ([`Health::probe_failed`]: after
//!   [`PROBE_FIRST`], doubling up to [`PROBE_MAX`], with jitter) with the cheapest
//!   linearizable read, which needs a leader and a quorum; the first answer re-admits the
//!   endpoint, as does any answer to a request sent there while every endpoint was ejected.
//!   The task runs only while an endpoint is ejected, and ends when the client closes or is
//!   dropped.

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use super::errors::map_error;
use super::leaderless::{is_no_leader, Streak};
use crate::error::Error;
use crate::events::{self, Level};
use crate::jitter::jitter;
use crate::store::EndpointSnapshot;

/// The pause before the first probe of an endpoint just ejected.
pub const PROBE_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between probes of an endpoint that stays silent.
pub const PROBE_MAX: Duration = Duration::from_secs(3);

/// The health of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Requests go to it.
    Healthy,
    /// It stopped answering: requests go elsewhere while any endpoint is healthy, and a probe
    /// is due at `next_probe` (one at a time: `probing`).
    Ejected { next_probe: Instant, failed_probes: u32, probing: bool },
}

impl Health {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// A request on it got no answer, or its connection failed. Returns whether this ejected
    /// it (it was healthy).
    pub fn fail(&mut self, now: Instant) -> bool {
        match self {
            Health::Healthy => {
                *self = Health::Ejected { next_probe: now + PROBE_FIRST, failed_probes: 0, probing: false };
                true
            }
            Health::Ejected { .. } => false,
        }
    }

    /// It answered (a request or a probe). Returns whether this re-admitted it.
    pub fn answer(&mut self) -> bool {
        let ejected = !self.is_healthy();
        *self = Health::Healthy;
        ejected
    }

    /// When the next probe is due: `None` when healthy or while a probe runs.
    pub fn due(&self) -> Option<Instant> {
        match self {
            Health::Ejected { next_probe, probing: false, .. } => Some(*next_probe),
            Health::Ejected { probing: true, .. } | Health::Healthy => None,
        }
    }

    /// Whether a probe is due at `now`; if so it is marked as running.
    pub fn start_probe(&mut self, now: Instant) -> bool {
        match self {
            Health::Ejected { next_probe, probing, .. } if !*probing && *next_probe <= now => {
                *probing = true;
                true
            }
            Health::Ejected { .. } | Health::Healthy => false,
        }
    }

    /// A probe got no useful answer: the next one after a longer pause, scaled by `jitter`
    /// (in `[0.5, 1]`).
    pub fn probe_failed(&mut self, now: Instant, jitter: f64) {
        if let Health::Ejected { next_probe, failed_probes, probing } = self {
            *failed_probes = failed_probes.saturating_add(1);
            *probing = false;
            *next_probe = now + probe_backoff(*failed_probes).mul_f64(jitter);
        }
    }
}

/// The pause after `failed_probes` probes in a row got no answer.
pub fn probe_backoff(failed_probes: u32) -> Duration {
    PROBE_FIRST.saturating_mul(1 << failed_probes.min(16)).min(PROBE_MAX)
}

/// How an attempt on an endpoint ended, as far as the endpoint's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// etcd answered (a result, or an error it sent), or the error is the client's own.
    Answered,
    /// No answer in time: the request may have been applied.
    Silent,
    /// The connection broke under the request: it may have been applied.
    Broken,
    /// The connection could not be made: the request was never sent.
    NotSent,
    /// etcd answered "no leader": the request was refused before it was proposed (never
    /// applied); a streak of these longer than an election timeout ejects the endpoint.
    Leaderless,
}

/// What an error from a connection says about its endpoint. A `tonic::Status` that etcd
/// sent carries no source; one tonic made from a failure of the connection does (a connect
/// error, hyper's keep-alive timeout, a reset).
pub fn classify(e: &etcd_client::Error) -> Outcome {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => match status.source() {
            None if is_no_leader(status) => Outcome::Leaderless,
            None => Outcome::Answered,
            Some(source) => classify_source(source),
        },
        E::TransportError(t) => classify_source(t),
        E::IoError(_) => Outcome::Broken,
        E::InvalidArgs(_)
        | E::InvalidUri(_)
        | E::EndpointError(_)
        | E::InvalidMetadataValue(_)
        | E::Utf8Error(_)
        | E::WatchError(_)
        | E::LeaseKeepAliveError(_)
        | E::ElectError(_)
        | E::EndpointsNotManaged
        | E::Internal(_) => Outcome::Answered,
    }
}

fn classify_source(error: &(dyn std::error::Error + 'static)) -> Outcome {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return Outcome::NotSent;
        }
        if e.is::<tonic::TimeoutExpired>() {
            return Outcome::Silent;
        }
        source = e.source();
    }
    Outcome::Broken
}

/// Whether an answer says the member cannot serve now ("no leader", shutting down): a probe
/// answered so does not re-admit it.
fn not_serving(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::Unavailable)
}

/// A connection that could not be made, as an error for the caller and an outcome for the
/// endpoint's health.
pub struct ConnectFailure {
    pub error: Error,
    pub outcome: Outcome,
}

/// One endpoint's state and counters.
struct Member {
    url: String,
    client: OnceCell<Client>,
    health: Mutex<Health>,
    /// How long it has answered only "no leader".
    streak: Mutex<Streak>,
    /// Cancelled when the endpoint is ejected (and replaced by a fresh token).
    ejected: Mutex<CancellationToken>,
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    ejections: AtomicU64,
    probes: AtomicU64,
    watches: AtomicU64,
}

impl Member {
    fn health(&self) -> MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn streak(&self) -> MutexGuard<'_, Streak> {
        self.streak.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every endpoint of a cluster with its connection and health (see the module doc).
pub struct Endpoints {
    members: Vec<Member>,
    options: ConnectOptions,
    connect_timeout: Duration,
    probe_timeout: Duration,
    /// How long a member may answer only "no leader" before it is ejected.
    election_timeout: Duration,
    rotation: AtomicUsize,
    /// Whether the probing task runs.
    prober: Mutex<bool>,
    closed: CancellationToken,
}

impl Endpoints {
    /// The endpoints `urls`, each connected with `options` on first use (no I/O here). Probes
    /// get `probe_timeout` to answer; a member answering only "no leader" for longer than
    /// `election_timeout` is ejected; `closed` ends the probing.
    pub fn new(
        urls: &[String],
        options: ConnectOptions,
        connect_timeout: Duration,
        probe_timeout: Duration,
        election_timeout: Duration,
        closed: CancellationToken,
    ) -> Arc<Self> {
        let members = urls
            .iter()
            .map(|url| Member {
                url: url.clone(),
                client: OnceCell::new(),
                health: Mutex::new(Health::Healthy),
                streak: Mutex::new(Streak::default()),
                ejected: Mutex::new(CancellationToken::new()),
                in_flight: AtomicU64::new(0),
                requests: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                ejections: AtomicU64::new(0),
                probes: AtomicU64::new(0),
                watches: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Endpoints {
            members,
            options,
            connect_timeout,
            probe_timeout,
            election_timeout,
            rotation: AtomicUsize::new(0),
            prober: Mutex::new(false),
            closed,
        })
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn is_healthy(&self, index: usize) -> bool {
        self.members[index].health().is_healthy()
    }

    pub fn url(&self, index: usize) -> &str {
        &self.members[index].url
    }

    /// The endpoint for the next attempt of a request that already tried `tried`: healthy
    /// before ejected, not tried before tried, then the fewest requests in flight; ties go
    /// round in turn. Never empty-handed: with every endpoint ejected it picks among all.
    pub fn pick(&self, tried: &[usize]) -> usize {
        let n = self.members.len().max(1);
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % n;
        let rank = |i: usize| {
            let m = &self.members[i];
            (!m.health().is_healthy(), tried.contains(&i), m.in_flight.load(Ordering::Relaxed))
        };
        let mut best = start;
        let mut best_rank = rank(start);
        for k in 1..n {
            let i = (start + k) % n;
            let r = rank(i);
            if r < best_rank {
                best = i;
                best_rank = r;
            }
        }
        best
    }

    /// Count a request going to endpoint `index` until the guard drops; the token is
    /// cancelled if the endpoint is ejected meanwhile.
    pub fn begin(&self, index: usize) -> (InFlight<'_>, CancellationToken) {
        let m = &self.members[index];
        m.requests.fetch_add(1, Ordering::Relaxed);
        m.in_flight.fetch_add(1, Ordering::Relaxed);
        (InFlight { member: m }, self.ejected(index))
    }

    /// Cancelled when endpoint `index` is ejected.
    pub fn ejected(&self, index: usize) -> CancellationToken {
        self.members[index].ejected.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The connection to endpoint `index`, made on first use (and again after a failed try).
    pub async fn client(&self, index: usize) -> std::result::Result<Client, ConnectFailure> {
        let m = &self.members[index];
        let connect = || async {
            let connect = Client::connect([m.url.as_str()], Some(self.options.clone()));
            match tokio::time::timeout(self.connect_timeout, connect).await {
                Ok(Ok(client)) => Ok(client),
                Ok(Err(e)) => {
                    let outcome = classify(&e);
                    Err(ConnectFailure { error: map_error(e), outcome })
                }
                Err(_) => Err(ConnectFailure {
                    error: Error::Unavailable {
                        message: format!("could not connect to {} within {:?}", m.url, self.connect_timeout),
                        code: None,
                    },
                    outcome: Outcome::Silent,
                }),
            }
        };
        m.client.get_or_try_init(connect).await.cloned()
    }

    /// Record how an attempt on endpoint `index` ended: a failure ejects it (and starts the
    /// probing), as does answering only "no leader" for longer than an election timeout; an
    /// answer re-admits it.
    pub fn record(self: &Arc<Self>, index: usize, outcome: Outcome) {
        let m = &self.members[index];
        match outcome {
            Outcome::Answered => {
                m.streak().answered();
                if m.health().answer() {
                    events::emit(Level::Info, format!("etcd endpoint {} answers again: re-admitted", m.url));
                }
                return;
            }
            Outcome::Leaderless => {
                m.failures.fetch_add(1, Ordering::Relaxed);
                if !m.streak().refused(tokio::time::Instant::now(), self.election_timeout) {
                    return;
                }
            }
            Outcome::Silent | Outcome::Broken | Outcome::NotSent => {
                m.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        // With one endpoint there is nowhere else to go: nothing to eject it for.
        if self.members.len() < 2 || !m.health().fail(Instant::now()) {
            return;
        }
        m.ejections.fetch_add(1, Ordering::Relaxed);
        let token = std::mem::take(&mut *m.ejected.lock().unwrap_or_else(|p| p.into_inner()));
        token.cancel();
        let what = match outcome {
            Outcome::Silent => "did not answer in time",
            Outcome::Broken => "lost its connection",
            Outcome::Leaderless => "has had no leader for longer than an election timeout",
            Outcome::NotSent | Outcome::Answered => "could not be connected to",
        };
        events::emit(
            Level::Warning,
            format!(
                "etcd endpoint {} {what}: ejected, requests go to the others until it answers a probe",
                m.url
            ),
        );
        self.start_prober();
    }

    /// Count a watch stream open on endpoint `index` until the guard drops.
    pub fn watching(self: &Arc<Self>, index: usize) -> Watching {
        self.members[index].watches.fetch_add(1, Ordering::Relaxed);
        Watching { endpoints: Arc::clone(self), index }
    }

    pub fn snapshot(&self) -> Vec<EndpointSnapshot> {
        self.members
            .iter()
            .map(|m| EndpointSnapshot {
                endpoint: m.url.clone(),
                healthy: m.health().is_healthy(),
                in_flight: m.in_flight.load(Ordering::Relaxed),
                requests: m.requests.load(Ordering::Relaxed),
                failures: m.failures.load(Ordering::Relaxed),
                ejections: m.ejections.load(Ordering::Relaxed),
                probes: m.probes.load(Ordering::Relaxed),
                watches: m.watches.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn start_prober(self: &Arc<Self>) {
        let mut running = self.prober.lock().unwrap_or_else(|p| p.into_inner());
        if *running || self.closed.is_cancelled() {
            return;
        }
        // Always inside the runtime (called from a request or a watch); if not, the next
        // ejection starts it, and requests still re-admit an endpoint that answers.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        *running = true;
        runtime.spawn(probe_ejected(Arc::downgrade(self), self.closed.clone()));
    }

    /// When the next probe is due, `None` when no endpoint is ejected (then the prober is
    /// marked stopped, under the same lock an ejection takes to start it).
    fn next_probe(&self) -> Option<Instant> {
        let mut running = self.prober.lock().unwrap_or_else(|p| p.into_inner());
        let mut next: Option<Instant> = None;
        let mut ejected = false;
        for m in &self.members {
            let health = m.health();
            ejected |= !health.is_healthy();
            if let Some(due) = health.due() {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        if !ejected {
            *running = false;
            return None;
        }
        Some(next.unwrap_or_else(|| Instant::now() + PROBE_FIRST))
    }

    /// Probe endpoint `index` once: a count-only linearizable read (it needs a leader and a
    /// quorum, and read permission on nothing a role could deny without first checking
    /// both). An answer other than "cannot serve now" re-admits the endpoint.
    async fn probe(self: &Arc<Self>, index: usize) {
        let m = &self.members[index];
        m.probes.fetch_add(1, Ordering::Relaxed);
        let ask = async {
            let mut client = self.client(index).await.map_err(|_| ())?;
            match client.get(vec![0u8], Some(GetOptions::new().with_count_only())).await {
                Ok(_) => Ok(()),
                Err(e) if classify(&e) == Outcome::Answered && !not_serving(&e) => Ok(()),
                Err(_) => Err(()),
            }
        };
        let answered = tokio::select! {
            _ = self.closed.cancelled() => return,
            r = tokio::time::timeout(self.probe_timeout, ask) => matches!(r, Ok(Ok(()))),
        };
        if answered {
            self.record(index, Outcome::Answered);
        } else {
            m.health().probe_failed(Instant::now(), jitter());
        }
    }
}

/// The probing task: sleeps until the next probe is due, probes every endpoint due, and ends
/// when no endpoint is ejected, the client closes, or the endpoints are dropped.
async fn probe_ejected(endpoints: Weak<Endpoints>, closed: CancellationToken) {
    loop {
        let Some(next) = endpoints.upgrade().and_then(|e| e.next_probe()) else { return };
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {}
        }
        let Some(strong) = endpoints.upgrade() else { return };
        let now = Instant::now();
        let due: Vec<usize> =
            (0..strong.members.len()).filter(|&i| strong.members[i].health().start_probe(now)).collect();
        futures::future::join_all(due.into_iter().map(|i| strong.probe(i))).await;
    }
}

/// A request in flight on an endpoint (counted until dropped).
pub struct InFlight<'a> {
    member: &'a Member,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.member.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A watch stream open on an endpoint (counted until dropped); reports how the stream ends.
pub struct Watching {
    endpoints: Arc<Endpoints>,
    index: usize,
}

impl Watching {
    pub fn record(&self, outcome: Outcome) {
        self.endpoints.record(self.index, outcome);
    }

    pub fn url(&self) -> &str {
        self.endpoints.url(self.index)
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.endpoints.members[self.index].watches.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
