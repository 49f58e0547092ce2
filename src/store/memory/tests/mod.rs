use futures::StreamExt;

use super::*;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

#[tokio::test]
async fn revisions_count_every_write() {
    let s = MemoryStore::new();
    let r1 = s.create(b("/a/x"), b("1"), 0).await.unwrap();
    let r2 = s.put(b("/a/x"), b("2"), 0).await.unwrap();
    assert_eq!(r2, r1 + 1);
    let kv = &s.range(RangeRequest::key(b"/a/x")).await.unwrap().kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (r1, r2, 2));
    assert_eq!(s.current_revision(b"/a/").await.unwrap(), r2);
    // The store's revision, whatever key it is asked through.
    assert_eq!(s.current_revision(b"/elsewhere/").await.unwrap(), r2);
    assert_eq!(s.current_revision(b"").await.unwrap(), r2);
}

#[tokio::test]
async fn create_is_refused_when_present() {
    let s = MemoryStore::new();
    s.create(b("k"), b("1"), 0).await.unwrap();
    let err = s.create(b("k"), b("2"), 0).await.unwrap_err();
    assert_eq!(err, Error::AlreadyExists { key: "k".into() });
    assert_eq!(s.range(RangeRequest::key(b"k")).await.unwrap().kvs[0].value, b("1"));
}

#[tokio::test]
async fn compare_and_swap_checks_mod_revision() {
    let s = MemoryStore::new();
    let r = s.create(b("k"), b("1"), 0).await.unwrap();
    let r2 = s.compare_and_swap(b("k"), r, b("2"), 0).await.unwrap();
    let err = s.compare_and_swap(b("k"), r, b("3"), 0).await.unwrap_err();
    assert_eq!(err, Error::Conflict { key: "k".into(), expected: r, actual: Some(r2) });
    s.delete(b("k"), None).await.unwrap();
    let err = s.compare_and_swap(b("k"), r2, b("3"), 0).await.unwrap_err();
    assert_eq!(err, Error::Conflict { key: "k".into(), expected: r2, actual: None });
}

#[tokio::test]
async fn delete_with_precondition() {
    let s = MemoryStore::new();
    let r = s.create(b("k"), b("1"), 0).await.unwrap();
    assert!(matches!(s.delete(b("k"), Some(r + 5)).await, Err(Error::Conflict { .. })));
    assert!(s.delete(b("k"), Some(r)).await.unwrap().is_some());
    assert_eq!(s.delete(b("k"), None).await.unwrap(), None);
}

#[tokio::test]
async fn ranges_read_old_revisions_until_compacted() {
    let s = MemoryStore::new();
    let r1 = s.create(b("/p/a"), b("1"), 0).await.unwrap();
    s.create(b("/p/b"), b("1"), 0).await.unwrap();
    s.put(b("/q/c"), b("1"), 0).await.unwrap();
    let r4 = s.put(b("/p/a"), b("2"), 0).await.unwrap();
    s.delete(b("/p/b"), None).await.unwrap();

    let now = s.range(RangeRequest::prefix(b"/p/")).await.unwrap();
    assert_eq!(now.kvs.len(), 1);
    let old = s.range(RangeRequest { revision: r1 + 1, ..RangeRequest::prefix(b"/p/") }).await.unwrap();
    assert_eq!(old.kvs.iter().map(|k| k.value.clone()).collect::<Vec<_>>(), vec![b("1"), b("1")]);

    let limited = s.range(RangeRequest { limit: 1, ..RangeRequest::prefix(b"/") }).await.unwrap();
    assert_eq!((limited.kvs.len(), limited.count, limited.more), (1, 2, true));
    let counted = s.range(RangeRequest { count_only: true, ..RangeRequest::prefix(b"/") }).await.unwrap();
    assert_eq!((counted.kvs.len(), counted.count), (0, 2));

    s.compact(r4).await.unwrap();
    let err = s.range(RangeRequest { revision: r1, ..RangeRequest::prefix(b"/p/") }).await.unwrap_err();
    assert_eq!(err, Error::Expired { requested: r1, compacted: r4 });
    let at = s.range(RangeRequest { revision: r4, ..RangeRequest::prefix(b"/p/") }).await.unwrap();
    assert_eq!(at.kvs.len(), 2, "the state at the compact revision stays readable");
}

#[tokio::test]
async fn watch_replays_history_then_follows() {
    let s = MemoryStore::new();
    let r1 = s.put(b("/w/a"), b("1"), 0).await.unwrap();
    s.put(b("/x/other"), b("1"), 0).await.unwrap();
    s.put(b("/w/a"), b("2"), 0).await.unwrap();
    let mut w = s.watch(b("/w/"), r1).await.unwrap();
    s.delete(b("/w/a"), None).await.unwrap();

    let mut got = Vec::new();
    while got.len() < 3 {
        got.extend(w.batches.next().await.unwrap().unwrap().events);
    }
    let kinds: Vec<_> = got.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Put, EventKind::Put, EventKind::Delete]);
    assert_eq!(got[1].prev.as_ref().unwrap().value, b("1"));
    assert_eq!(got[2].prev.as_ref().unwrap().value, b("2"));
    assert!(got.windows(2).all(|p| p[0].kv.mod_revision < p[1].kv.mod_revision));
}

#[tokio::test]
async fn watch_from_a_compacted_revision_is_expired() {
    let s = MemoryStore::new();
    let r1 = s.put(b("k"), b("1"), 0).await.unwrap();
    let r2 = s.put(b("k"), b("2"), 0).await.unwrap();
    s.compact(r2).await.unwrap();
    let err = s.watch(b("k"), r1).await.err().unwrap();
    assert_eq!(err, Error::Expired { requested: r1, compacted: r2 });
    assert!(s.watch(b("k"), r2).await.is_ok());
}

#[tokio::test]
async fn leases_expire_and_take_their_keys() {
    tokio::time::pause();
    let s = MemoryStore::new();
    let id = s.lease_grant(1).await.unwrap();
    s.put(b("eph"), b("1"), id).await.unwrap();
    s.put(b("kept"), b("1"), 0).await.unwrap();
    let mut w = s.watch(b("eph"), 0).await.unwrap();
    assert_eq!(s.lease_keep_alive(id).await.unwrap(), 1);
    // Lease deadlines use std::time, so expire it by hand rather than by waiting.
    s.lock().leases.get_mut(&id).unwrap().deadline = Instant::now();
    assert!(s.range(RangeRequest::key(b"eph")).await.unwrap().kvs.is_empty());
    assert_eq!(s.range(RangeRequest::key(b"kept")).await.unwrap().kvs.len(), 1);
    let events = w.batches.next().await.unwrap().unwrap().events;
    assert_eq!(events[0].kind, EventKind::Delete);
    assert!(matches!(s.lease_keep_alive(id).await, Err(Error::NotFound { .. })));
    assert!(matches!(s.put(b("x"), b("1"), id).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn revoking_a_lease_deletes_its_keys() {
    let s = MemoryStore::new();
    let id = s.lease_grant(60).await.unwrap();
    s.put(b("a"), b("1"), id).await.unwrap();
    s.put(b("b"), b("1"), id).await.unwrap();
    s.lease_revoke(id).await.unwrap();
    assert_eq!(s.range(RangeRequest::prefix(b"")).await.unwrap().count, 0);
}
