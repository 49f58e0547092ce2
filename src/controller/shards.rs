//! Which keys this replica runs, when replicas share a controller's keys.
//!
//! A key belongs to shard `fnv1a64(key) % count`: stable across processes, machines and
//! versions (the hash is written here, not taken from the standard library, whose hasher is
//! seeded per process). Python's coordinator (`etcd_resources.controller.sharding`) takes and
//! gives back shards on etcd and tells the queue which ones it holds; the queue queues and
//! hands out only keys of held shards. Until told otherwise every key is held (one replica).

use std::sync::RwLock;

use crate::error::{Error, Result};

/// The shard of `key` among `count`.
pub fn shard_of(key: &str, count: u32) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let hash = key.bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    // `count` is at least 1 (checked by `Ownership::set`); the remainder fits in u32.
    u32::try_from(hash % u64::from(count.max(1))).unwrap_or(0)
}

#[derive(Debug, Clone)]
struct Held {
    count: u32,
    held: Vec<bool>,
}

/// The shards this replica holds (all keys until [`Ownership::set`]).
#[derive(Debug, Default)]
pub struct Ownership {
    state: RwLock<Option<Held>>,
}

impl Ownership {
    /// Whether this replica runs `key`.
    pub fn owns(&self, key: &str) -> bool {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            None => true,
            Some(h) => h.held.get(shard_of(key, h.count) as usize).copied().unwrap_or(false),
        }
    }

    /// Hold exactly `held` of `count` shards; returns the shards held now that were not
    /// before (every one of them when `count` changed).
    pub fn set(&self, count: u32, held: &[u32]) -> Result<Vec<u32>> {
        if count == 0 {
            return Err(Error::invalid("the number of shards must be at least 1"));
        }
        if let Some(stray) = held.iter().find(|&&s| s >= count) {
            return Err(Error::invalid(format!("shard {stray} is not one of 0..{count}")));
        }
        let mut next = vec![false; count as usize];
        for &s in held {
            next[s as usize] = true;
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let before = match &*state {
            Some(h) if h.count == count => h.held.clone(),
            _ => vec![false; count as usize],
        };
        let gained = (0..count).filter(|&s| next[s as usize] && !before[s as usize]).collect();
        *state = Some(Held { count, held: next });
        Ok(gained)
    }

    /// The number of shards (`None`: not sharded, every key held).
    pub fn count(&self) -> Option<u32> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|h| h.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed() {
        // Written down so that a change of the function (which would move every key to
        // another shard while replicas of two versions run) fails here.
        assert_eq!(shard_of("/workers/a", 16), 9);
        assert_eq!(shard_of("/lab-workers/default/w-1", 7), 1);
        assert_eq!(shard_of("", 7), (0xcbf2_9ce4_8422_2325u64 % 7) as u32);
        let spread: std::collections::HashSet<u32> =
            (0..200).map(|i| shard_of(&format!("/w/{i}"), 8)).collect();
        assert_eq!(spread.len(), 8);
    }

    #[test]
    fn ownership_starts_whole_and_reports_what_it_gains() {
        let o = Ownership::default();
        assert!(o.owns("/w/a"));
        assert_eq!(o.set(4, &[0, 1]).unwrap(), vec![0, 1]);
        assert_eq!(o.set(4, &[1, 2]).unwrap(), vec![2]);
        let keys: Vec<String> = (0..100).map(|i| format!("/w/{i}")).collect();
        for k in &keys {
            assert_eq!(o.owns(k), [1, 2].contains(&shard_of(k, 4)));
        }
        assert!(o.set(4, &[4]).is_err());
        assert!(o.set(0, &[]).is_err());
        assert_eq!(o.set(2, &[0]).unwrap(), vec![0]);
    }
}
