//! Per-key exponential backoff with jitter: `base * 2^(failures-1)`, capped at `max`, then
//! scaled by a factor drawn from `[0.5, 1.0)` ("equal jitter": never less than half the
//! delay, so a crowd of keys that failed together spreads out but none retries early).
//! The caller keeps the count of consecutive failures per key and resets it on success.

use std::time::Duration;

/// How long a key waits after consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failure (before jitter).
    pub base: Duration,
    /// The longest delay (before jitter).
    pub max: Duration,
}

impl Default for Backoff {
    /// 50 ms, doubling, up to 5 minutes (controller-runtime starts at 5 ms and caps at 1000 s;
    /// 50 ms keeps a failing etcd from being hammered at startup).
    fn default() -> Self {
        Backoff { base: Duration::from_millis(50), max: Duration::from_secs(300) }
    }
}

impl Backoff {
    /// The delay before jitter after `failures` consecutive failures (at least 1).
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(40);
        self.base.saturating_mul(1u32 << doublings.min(31)).min(self.max)
    }

    /// The delay after `failures` consecutive failures, with `jitter` in `[0, 1)`.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        self.ceiling(failures).mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// A small, fast source of jitter (xorshift64); not for anything secret.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Seeded from the clock, so replicas started together draw differently.
    pub fn from_clock() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Jitter::seeded(nanos)
    }

    /// The next value in `[0, 1)`.
    pub fn draw(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff { base: Duration::from_millis(10), max: Duration::from_millis(100) };
        let ceilings: Vec<u128> = (1..=6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 100, 100]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_millis(100));
    }

    #[test]
    fn jitter_keeps_at_least_half() {
        let b = Backoff { base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let mut j = Jitter::seeded(7);
        let delays: Vec<Duration> = (0..1000).map(|_| b.delay(1, j.draw())).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(50) && *d < Duration::from_millis(100)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 500, "jitter spreads delays: {} distinct", distinct.len());
    }
}
