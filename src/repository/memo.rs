//! The documents a repository read or wrote last, by key, so that updating a resource read
//! through the same repository needs no second read.
//!
//! An update names the version it replaces (`resource_version`, etcd's mod_revision). When
//! the memo holds the key at exactly that revision, it holds exactly the bytes etcd holds for
//! it at that revision (a revision identifies one write), so the update merges the fields the
//! server owns from the memo and sends one compare-and-swap; the compare makes it as safe as
//! reading first. Anything else (another revision, a key the memo never saw) reads etcd as
//! before. Bounded: a full memo starts over.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::KeyValue;

/// Keys remembered at most.
const CAPACITY: usize = 256;

#[derive(Default)]
pub struct Memo {
    entries: Mutex<HashMap<Vec<u8>, KeyValue>>,
}

impl Memo {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, KeyValue>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember a key-value as etcd holds it.
    pub fn remember(&self, kv: KeyValue) {
        let mut entries = self.entries();
        if entries.len() >= CAPACITY && !entries.contains_key(&kv.key) {
            entries.clear();
        }
        entries.insert(kv.key.clone(), kv);
    }

    /// The key-value of `key` at exactly `mod_revision`, if remembered.
    pub fn recall(&self, key: &[u8], mod_revision: i64) -> Option<KeyValue> {
        self.entries().get(key).filter(|kv| kv.mod_revision == mod_revision).cloned()
    }

    /// Forget a key (deleted, or its version unknown).
    pub fn forget(&self, key: &[u8]) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, rev: i64) -> KeyValue {
        KeyValue { key: key.into(), value: b"{}".to_vec(), mod_revision: rev, ..Default::default() }
    }

    #[test]
    fn recalls_only_the_exact_revision_and_stays_bounded() {
        let m = Memo::default();
        m.remember(kv("/a", 5));
        assert!(m.recall(b"/a", 5).is_some());
        assert!(m.recall(b"/a", 6).is_none(), "another revision is another document");
        m.forget(b"/a");
        assert!(m.recall(b"/a", 5).is_none());
        for i in 0..CAPACITY * 3 {
            m.remember(kv(&format!("/k{i}"), 1));
        }
        assert!(m.entries().len() <= CAPACITY);
    }
}
