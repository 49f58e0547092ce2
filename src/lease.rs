//! Leases with a keep-alive run in Rust.
//!
//! [`Lease::grant`] asks etcd for a lease of `ttl` seconds; with `keep_alive`, a task renews it
//! every third of its TTL until [`Lease::cancel`] or [`Lease::revoke`]. The task outlives
//! connection failures (it retries quickly and keeps renewing once etcd answers again); a lease
//! etcd no longer knows (revoked by someone, or expired during an outage longer than its TTL) is
//! reported as lost, never renewed in silence: [`Lease::lost`] resolves with the reason.
//!
//! A lease is also lost, whatever etcd might say later, once its TTL has run out since the
//! *sending* of the last renewal etcd acknowledged (or of the grant): etcd's own deadline is
//! at least that late (it counts from receiving), so from then on another client may hold
//! what the lease guarded, and a holder that stops at this point never overlaps with the
//! next one (clocks running at the same rate). During a partition, etcd cannot say; this
//! deadline can.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::events::{self, Level};
use crate::process::Local;

/// The first pause before retrying a renewal that failed on a connection error.
const RETRY: Duration = Duration::from_millis(200);

struct State {
    /// Stops the keep-alive task.
    stop: CancellationToken,
    /// Cancelled when the lease is lost.
    lost: CancellationToken,
    reason: Mutex<Option<Error>>,
}

/// A granted lease.
#[derive(Clone)]
pub struct Lease {
    pub id: i64,
    pub ttl: i64,
    client: Client,
    /// Its tokens are waited on by the keep-alive task: a forked child leaves them alone.
    state: Arc<Local<State>>,
}

impl Lease {
    /// Grant a lease of `ttl` seconds, kept alive in the background when `keep_alive`.
    pub async fn grant(client: &Client, ttl: i64, keep_alive: bool) -> Result<Lease> {
        if ttl <= 0 {
            return Err(Error::invalid(format!("a lease TTL is a positive number of seconds, got {ttl}")));
        }
        let sent = Instant::now();
        let id = client.store()?.lease_grant(ttl).await?;
        let state = Arc::new(Local::new(State {
            stop: CancellationToken::new(),
            lost: CancellationToken::new(),
            reason: Mutex::new(None),
        }));
        let lease = Lease { id, ttl, client: client.clone(), state };
        if keep_alive {
            tokio::spawn(lease.clone().keep_alive(sent));
        }
        Ok(lease)
    }

    fn lose(&self, reason: Error) {
        events::emit(Level::Warning, format!("lease {:x} lost: {reason}", self.id));
        *self.state.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.state.lost.cancel();
    }

    async fn keep_alive(self, granted: Instant) {
        let period = Duration::from_secs_f64((self.ttl as f64 / 3.0).max(0.5));
        let ttl = Duration::from_secs(u64::try_from(self.ttl).unwrap_or(0));
        let Ok(shutdown) = self.client.shutdown().cloned() else { return };
        // The sending of the last renewal etcd acknowledged (or of the grant).
        let mut renewed = granted;
        let mut pause = period;
        loop {
            let deadline = tokio::time::Instant::from_std(renewed + ttl);
            tokio::select! {
                _ = self.state.stop.cancelled() => return,
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return self.expire(renewed),
                _ = tokio::time::sleep(pause) => {}
            }
            let store = match self.client.store() {
                Ok(store) => store,
                Err(_) => return,
            };
            let sent = Instant::now();
            let answer = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return self.expire(renewed),
                answer = store.lease_keep_alive(self.id) => answer,
            };
            match answer {
                Ok(_) => {
                    renewed = sent;
                    pause = period;
                }
                Err(Error::NotFound { .. }) => {
                    let message = format!(
                        "lease {:x} is gone (revoked, or expired {:.1}s after its last renewal)",
                        self.id,
                        renewed.elapsed().as_secs_f64()
                    );
                    return self.lose(Error::NotFound { key: message });
                }
                Err(Error::Closed) => return,
                Err(Error::Unavailable { .. } | Error::Timeout { .. }) => {
                    // Keep trying: etcd may be back before the TTL runs out.
                    pause = RETRY.min(period);
                }
                Err(e) => return self.lose(e),
            }
        }
    }

    /// No renewal was acknowledged within the TTL: etcd may have expired it.
    fn expire(&self, renewed: Instant) {
        let operation = format!(
            "a renewal of lease {:x} (none acknowledged for {:.1}s: etcd may have expired it, and \
             another client may now hold what it guarded)",
            self.id,
            renewed.elapsed().as_secs_f64()
        );
        self.lose(Error::Timeout { operation, seconds: self.ttl as f64 });
    }

    /// Stop renewing; the lease then expires after its TTL. In a process forked from the one
    /// that granted it, nothing renews it there and this does nothing.
    pub fn cancel(&self) {
        if self.client.check().is_ok() {
            self.state.stop.cancel();
        }
    }

    /// Stop renewing and revoke the lease now (its keys are deleted).
    pub async fn revoke(&self) -> Result<()> {
        self.client.check()?;
        self.state.stop.cancel();
        match self.client.store()?.lease_revoke(self.id).await {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The client it was granted on.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the lease was lost.
    pub fn is_lost(&self) -> bool {
        self.state.lost.is_cancelled()
    }

    /// Wait until the lease is lost; the reason. (`Forked` at once in a process forked from
    /// the one that granted it: nothing would ever tell it there.)
    pub async fn lost(&self) -> Error {
        if let Err(e) = self.client.check() {
            return e;
        }
        self.state.lost.cancelled().await;
        self.state.reason.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or(Error::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientOptions, MEMORY_ENDPOINT};

    #[tokio::test]
    async fn a_revoked_lease_is_reported_lost() {
        let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
        let lease = Lease::grant(&client, 1, true).await.unwrap();
        client.store().unwrap().put(b"k".to_vec(), b"v".to_vec(), lease.id).await.unwrap();
        // Someone else revokes it: the keeper finds out at its next renewal.
        client.store().unwrap().lease_revoke(lease.id).await.unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(5), lease.lost()).await.unwrap();
        assert!(matches!(reason, Error::NotFound { .. }), "{reason:?}");
        assert!(lease.is_lost());
        assert!(Lease::grant(&client, 0, false).await.is_err());
    }
}
