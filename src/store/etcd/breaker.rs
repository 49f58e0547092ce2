//! A circuit breaker for the etcd store: after `threshold` calls in a row fail to reach etcd,
//! calls fail at once (no waiting for a timeout) for `reset`; then one call at a time probes,
//! and the first success closes the circuit. Only failures to reach etcd count; an answer,
//! even an error answer, shows etcd is there.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::events::{self, Level};

pub struct Breaker {
    threshold: u32,
    reset: Duration,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    probing: AtomicBool,
}

/// Whether an error means etcd could not be reached.
pub fn unreachable(e: &Error) -> bool {
    matches!(e, Error::Unavailable { .. } | Error::Timeout { .. })
}

impl Breaker {
    /// `threshold` 0 disables the breaker.
    pub fn new(threshold: u32, reset: Duration) -> Self {
        Breaker {
            threshold,
            reset,
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            probing: AtomicBool::new(false),
        }
    }

    /// May a call go to etcd now? Fails fast while the circuit is open.
    pub fn admit(&self) -> Result<()> {
        if self.threshold == 0 {
            return Ok(());
        }
        let open_until = *self.open_until.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = open_until else { return Ok(()) };
        let now = Instant::now();
        if now < until {
            let wait = until - now;
            return Err(Error::Unavailable {
                message: format!(
                    "circuit open: etcd was unreachable for the last {} calls; next try in {:.1}s",
                    self.failures.load(Ordering::Relaxed),
                    wait.as_secs_f64()
                ),
                code: Some("CircuitOpen".into()),
            });
        }
        // Half open: one probe at a time.
        if self.probing.swap(true, Ordering::AcqRel) {
            return Err(Error::Unavailable {
                message: "circuit half open: a probe call is checking whether etcd is back".into(),
                code: Some("CircuitOpen".into()),
            });
        }
        Ok(())
    }

    /// Record how a call ended.
    pub fn record(&self, result: std::result::Result<(), &Error>) {
        if self.threshold == 0 {
            return;
        }
        let probing = self.probing.swap(false, Ordering::AcqRel);
        match result {
            Err(e) if unreachable(e) => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                if failures >= self.threshold || probing {
                    let mut open_until = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
                    if open_until.is_none() {
                        let reset = self.reset;
                        events::emit(
                            Level::Warning,
                            format!("etcd unreachable for {failures} calls in a row ({e}): calls fail fast for {reset:?}"),
                        );
                    }
                    *open_until = Some(Instant::now() + self.reset);
                }
            }
            _ => {
                self.failures.store(0, Ordering::Release);
                if self.open_until.lock().unwrap_or_else(|p| p.into_inner()).take().is_some() {
                    events::emit(Level::Info, "etcd reachable again: the circuit is closed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> Error {
        Error::Unavailable { message: "down".into(), code: None }
    }

    #[test]
    fn opens_after_the_threshold_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..3 {
            b.admit().unwrap();
            b.record(Err(&down()));
        }
        let err = b.admit().unwrap_err();
        assert!(err.to_string().contains("circuit open"), "{err}");
        std::thread::sleep(Duration::from_millis(40));
        b.admit().unwrap(); // the probe
        assert!(b.admit().is_err(), "one probe at a time");
        b.record(Ok(()));
        b.admit().unwrap();
        b.record(Err(&Error::NotFound { key: "k".into() })); // an answer: etcd is there
        b.admit().unwrap();
    }

    #[test]
    fn a_failed_probe_reopens() {
        let b = Breaker::new(1, Duration::from_millis(20));
        b.record(Err(&down()));
        std::thread::sleep(Duration::from_millis(25));
        b.admit().unwrap();
        b.record(Err(&down()));
        assert!(b.admit().is_err());
    }
}
