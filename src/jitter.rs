//! Jitter: a random factor that spreads the retries, reconnections and probes of many callers
//! so they do not all come back at once.

use std::sync::atomic::{AtomicU64, Ordering};

/// The generator's state, shared by every caller (0: not seeded yet).
static STATE: AtomicU64 = AtomicU64::new(0);

/// A factor in `[0.5, 1.0)` to multiply a delay by.
pub fn jitter() -> f64 {
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            | 1;
    }
    // xorshift64: enough to spread many callers; a lost update between threads only repeats a
    // value, which is harmless here.
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    0.5 + (x % 1000) as f64 / 2000.0
}

#[cfg(test)]
mod tests {
    use super::jitter;

    #[test]
    fn stays_within_half_and_one_and_varies() {
        let values: Vec<f64> = (0..1000).map(|_| jitter()).collect();
        assert!(values.iter().all(|v| (0.5..1.0).contains(v)), "{values:?}");
        let distinct: std::collections::BTreeSet<u64> = values.iter().map(|v| v.to_bits()).collect();
        assert!(distinct.len() > 100, "only {} distinct values", distinct.len());
    }
}
