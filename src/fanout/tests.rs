//! The shared watch against the embedded store: one upstream for many subscribers, each with
//! its own selection, catch-up from older revisions, slow subscribers ended, cleanup.

use serde_json::{json, Value};

use super::*;
use crate::client::{ClientOptions, MEMORY_ENDPOINT};
use crate::selector::{FieldSelector, LabelSelector};

/// No bound on a batch's containers.
const ANY: usize = usize::MAX;

fn client() -> Client {
    Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap()
}

fn shard(n: usize) -> Query {
    Query { labels: LabelSelector::parse(&format!("shard={n}")).unwrap(), ..Default::default() }
}

async fn put(client: &Client, name: &str, shard: usize, phase: &str) -> i64 {
    let doc = json!({"metadata": {"name": name, "labels": {"shard": shard.to_string()}}, "status": {"phase": phase}});
    let key = format!("/p/{name}").into_bytes();
    client.store().unwrap().put(key, serde_json::to_vec(&doc).unwrap(), 0).await.unwrap()
}

/// Read until `n` events (bookmarks aside) have come.
async fn take(sub: &mut Subscription, n: usize) -> Vec<(ChangeType, String, i64)> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = sub.next_batch(ANY).await.unwrap().expect("the watch ended early");
        for e in batch.into_iter().filter(|e| e.kind != ChangeType::Bookmark) {
            got.push((e.kind, e.change.key.clone(), e.change.revision));
        }
    }
    assert_eq!(got.len(), n, "more events than expected");
    got
}

/// Let the runtime's other tasks run until `done` (bounded: no sleep, no wall clock).
async fn settle(done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition was not reached");
}

#[tokio::test]
async fn many_subscribers_share_one_watch_each_with_its_selection() {
    let client = client();
    let mut subs = Vec::new();
    for i in 0..20 {
        subs.push(Subscription::open(client.clone(), "/p/", 0, Some(shard(i % 5)), 100).await.unwrap());
    }
    let mut all = Subscription::open(client.clone(), "/p/", 0, None, 1000).await.unwrap();
    let stats = client.watch_counters().snapshot();
    assert_eq!((stats.shared, stats.catch_up, stats.watchers), (1, 0, 21));
    assert!(subs.iter().all(Subscription::is_shared));

    let mut expected: Vec<Vec<i64>> = vec![Vec::new(); 5];
    for i in 0..50 {
        let rev = put(&client, &format!("w{i}"), i % 5, "Pending").await;
        expected[i % 5].push(rev);
    }
    let everything = take(&mut all, 50).await;
    assert!(everything.iter().all(|e| e.0 == ChangeType::Added));
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = take(sub, 10).await;
        assert_eq!(got.iter().map(|e| e.2).collect::<Vec<_>>(), expected[i % 5]);
    }
    drop(subs);
    drop(all);
    settle(|| {
        client.watch_counters().snapshot()
            == WatchStats { shared: 0, catch_up: 0, watchers: 0, fell_behind: 0, detached: 0 }
    })
    .await;
    assert!(REGISTRY.lock().unwrap().get(&(client.id(), "/p/".to_owned())).and_then(Weak::upgrade).is_none());
}

#[tokio::test]
async fn a_subscriber_sees_the_kubernetes_transitions_of_its_own_selector() {
    let client = client();
    let ready = Query { fields: FieldSelector::parse("status.phase=Ready").unwrap(), ..Default::default() };
    // The same sequence through an unshared stream with the query, for comparison.
    let mut alone = ChangeStream::open(client.clone(), "/p/", 0, Some(ready.clone())).await.unwrap();
    let _other = Subscription::open(client.clone(), "/p/", 0, None, 100).await.unwrap();
    let mut sub = Subscription::open(client.clone(), "/p/", 0, Some(ready), 100).await.unwrap();
    assert!(sub.is_shared());
    for phase in ["Pending", "Ready", "Ready", "Draining", "Ready"] {
        put(&client, "a", 0, phase).await;
    }
    client.store().unwrap().delete(b"/p/a".to_vec(), None).await.unwrap();
    let got: Vec<ChangeType> = take(&mut sub, 5).await.into_iter().map(|e| e.0).collect();
    use ChangeType::*;
    assert_eq!(got, vec![Added, Modified, Deleted, Added, Deleted]);
    let mut reference = Vec::new();
    while reference.len() < 5 {
        reference.extend(alone.next_batch().await.unwrap().unwrap().into_iter().map(|c| c.kind));
    }
    assert_eq!(got, reference);
}

#[tokio::test]
async fn an_older_start_catches_up_on_its_own_watch_then_shares() {
    let client = client();
    let start = client.store().unwrap().current_revision(b"/p/").await.unwrap() + 1;
    let mut first = Subscription::open(client.clone(), "/p/", 0, None, 1000).await.unwrap();
    let mut revisions = Vec::new();
    for i in 0..10 {
        revisions.push(put(&client, &format!("w{i}"), i, "Pending").await);
    }
    take(&mut first, 10).await; // the hub has passed `start`
    let mut late = Subscription::open(client.clone(), "/p/", start, None, 1000).await.unwrap();
    assert!(!late.is_shared());
    assert_eq!(client.watch_counters().snapshot().catch_up, 1);
    for i in 10..15 {
        revisions.push(put(&client, &format!("w{i}"), i, "Pending").await);
    }
    let got = take(&mut late, 15).await;
    assert_eq!(got.iter().map(|e| e.2).collect::<Vec<_>>(), revisions);
    // Caught up with the hub: it reads the shared watch now, and its own watch is closed.
    assert!(late.is_shared());
    assert_eq!(client.watch_counters().snapshot().catch_up, 0);
    // And it goes on from there, nothing repeated.
    let more = put(&client, "w15", 0, "Pending").await;
    assert_eq!(take(&mut late, 1).await[0].2, more);
    assert_eq!(take(&mut first, 6).await.last().unwrap().2, more);
    assert_eq!(client.watch_counters().snapshot().shared, 1);
}

/// The revisions of the next batch's events (bookmarks aside; at least one).
async fn next(sub: &mut Subscription) -> Vec<i64> {
    loop {
        let batch = sub.next_batch(ANY).await.unwrap().expect("the watch ended early");
        let got: Vec<i64> =
            batch.iter().filter(|e| e.kind != ChangeType::Bookmark).map(|e| e.change.revision).collect();
        if !got.is_empty() {
            return got;
        }
    }
}

/// 60 changes of history under /p/ (and one elsewhere after them, so that the replay is not
/// over before a live change), from a revision before them.
async fn history(client: &Client) -> (i64, Vec<i64>) {
    let start = client.store().unwrap().current_revision(b"/p/").await.unwrap() + 1;
    let mut revisions = Vec::new();
    for i in 0..60 {
        revisions.push(put(client, &format!("w{i}"), i, "Pending").await);
    }
    client.store().unwrap().put(b"/q/other".to_vec(), b"{}".to_vec(), 0).await.unwrap();
    (start, revisions)
}

#[tokio::test]
async fn a_replay_is_shared_and_its_slower_reader_loses_nothing() {
    let client = client();
    let (start, revisions) = history(&client).await;
    // A backlog of 5 and 60 changes to replay, read by two readers at different paces.
    // Opened together: the second joins the hub before it has delivered anything.
    let (a, b) = tokio::join!(
        Subscription::open(client.clone(), "/p/", start, None, 5),
        Subscription::open(client.clone(), "/p/", start, None, 5)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_shared() && b.is_shared());
    assert_eq!(client.watch_counters().snapshot().upstream(), 1);
    // Each reads in its own task, `b` yielding three times per batch: the slower one.
    let read = |mut sub: Subscription, yields: usize| async move {
        let mut got = Vec::new();
        while got.len() < 60 {
            got.extend(next(&mut sub).await);
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
        }
        got
    };
    let (got_a, got_b) = tokio::join!(tokio::spawn(read(a, 0)), tokio::spawn(read(b, 3)));
    let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
    assert_eq!((got_a, got_b), (revisions.clone(), revisions));
    assert_eq!(client.watch_counters().snapshot().fell_behind, 0);
}

#[tokio::test]
async fn a_subscriber_from_now_does_not_wait_behind_a_replay() {
    let client = client();
    let (start, revisions) = history(&client).await;
    let mut replaying = Subscription::open(client.clone(), "/p/", start, None, 5).await.unwrap();
    // It has not read: the hub waits for it. One from now reads its own watch meanwhile.
    let mut live = Subscription::open(client.clone(), "/p/", 0, None, 5).await.unwrap();
    assert!(!live.is_shared());
    let x = put(&client, "x", 0, "Pending").await;
    assert_eq!(take(&mut live, 1).await[0].2, x);
    // The replay reader reads everything, the live change last; the hub is live after it.
    let mut got = Vec::new();
    while got.len() < 61 {
        got.extend(next(&mut replaying).await);
    }
    assert_eq!(got[..60], revisions[..]);
    assert_eq!(got[60], x);
    // At its next change, the live subscriber leaves its own watch for the hub.
    let y = put(&client, "y", 0, "Pending").await;
    assert_eq!(take(&mut live, 1).await[0].2, y);
    assert!(live.is_shared());
    assert_eq!(take(&mut replaying, 1).await[0].2, y);
    let stats = client.watch_counters().snapshot();
    assert_eq!((stats.shared, stats.catch_up, stats.fell_behind), (1, 0, 0));
}

#[tokio::test]
async fn a_replay_reader_that_stops_is_detached_and_goes_on_from_its_own_watch() {
    let client = client();
    let (start, revisions) = history(&client).await;
    // A backlog of 5 for the one that stops, room for the whole replay for the other.
    let (stopped, reading) = tokio::join!(
        Subscription::open(client.clone(), "/p/", start, None, 5),
        Subscription::open(client.clone(), "/p/", start, None, 100)
    );
    let (mut stopped, mut reading) = (stopped.unwrap(), reading.unwrap());
    let mut got = Vec::new();
    while got.len() < 60 {
        got.extend(next(&mut reading).await);
    }
    assert_eq!(got, revisions);
    // `stopped` read nothing meanwhile: it was detached, not ended, and its queue freed.
    let stats = client.watch_counters().snapshot();
    assert_eq!((stats.detached, stats.fell_behind), (1, 0));
    let mut late = Vec::new();
    while late.len() < 60 {
        late.extend(next(&mut stopped).await);
    }
    assert_eq!(late, revisions);
    assert!(!stopped.is_shared()); // its own watch, from etcd's history
                                   // Caught up with the hub at the next change: shared again, nothing repeated.
    let x = put(&client, "x", 0, "Pending").await;
    assert_eq!(next(&mut stopped).await, vec![x]);
    assert_eq!(next(&mut reading).await, vec![x]);
    let y = put(&client, "y", 0, "Pending").await;
    assert_eq!(next(&mut stopped).await, vec![y]);
    assert!(stopped.is_shared());
    assert_eq!(client.watch_counters().snapshot().upstream(), 1);
}

#[tokio::test]
async fn a_start_the_hub_has_not_passed_joins_it_directly() {
    let client = client();
    let mut first = Subscription::open(client.clone(), "/p/", 0, None, 1000).await.unwrap();
    let a = put(&client, "a", 0, "Pending").await;
    take(&mut first, 1).await;
    // After the hub's last change: joins at once, from exactly that revision.
    let b = put(&client, "b", 0, "Pending").await;
    let mut second = Subscription::open(client.clone(), "/p/", b, None, 1000).await.unwrap();
    assert!(second.is_shared());
    assert!(b > a);
    assert_eq!(take(&mut second, 1).await[0].2, b);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_ended_and_the_others_go_on() {
    let client = client();
    let mut slow = Subscription::open(client.clone(), "/p/", 0, None, 5).await.unwrap();
    let mut fast = Subscription::open(client.clone(), "/p/", 0, None, 5).await.unwrap();
    let first = put(&client, "w0", 0, "Pending").await;
    assert_eq!(take(&mut slow, 1).await[0].2, first); // it read one, then stops
    let mut revisions = Vec::new();
    for i in 1..=20 {
        revisions.push(put(&client, &format!("w{i}"), 0, "Pending").await);
        // The fast one reads as the writes come.
        assert_eq!(take(&mut fast, 1 + usize::from(i == 1)).await.last().unwrap().2, revisions[i - 1]);
    }
    match slow.next_batch(ANY).await {
        Err(Error::FellBehind { revision, backlog }) => assert_eq!((revision, backlog), (first, 5)),
        other => panic!("expected FellBehind, got {other:?}"),
    }
    // Ended for good; the error says the same each time.
    assert!(matches!(slow.next_batch(ANY).await, Err(Error::FellBehind { .. })));
    assert_eq!(client.watch_counters().snapshot().fell_behind, 1);
}

#[tokio::test]
async fn closing_the_client_ends_every_subscriber_and_the_upstream() {
    let client = client();
    let mut a = Subscription::open(client.clone(), "/p/", 0, Some(shard(1)), 10).await.unwrap();
    let mut b = Subscription::open(client.clone(), "/p/", 0, None, 10).await.unwrap();
    put(&client, "w", 1, "Pending").await;
    client.close();
    // What was delivered before the close may come first; then the end.
    for sub in [&mut a, &mut b] {
        let mut end = None;
        for _ in 0..3 {
            match sub.next_batch(ANY).await.unwrap() {
                Some(_) => continue,
                None => {
                    end = Some(());
                    break;
                }
            }
        }
        assert!(end.is_some(), "the subscriber did not end");
    }
    settle(|| client.watch_counters().snapshot().shared == 0).await;
    assert!(matches!(Subscription::open(client.clone(), "/p/", 0, None, 10).await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_compacted_start_is_expired_and_a_zero_backlog_refused() {
    let client = client();
    let store = client.store().unwrap().clone();
    let first = put(&client, "a", 0, "Pending").await;
    put(&client, "b", 0, "Pending").await;
    store.compact(store.current_revision(b"/p/").await.unwrap()).await.unwrap();
    assert!(matches!(
        Subscription::open(client.clone(), "/p/", first, None, 10).await,
        Err(Error::Expired { .. })
    ));
    // A hub that could not open is not left behind; the next subscriber opens a new one.
    let mut sub = Subscription::open(client.clone(), "/p/", 0, None, 10).await.unwrap();
    let c = put(&client, "c", 0, "Pending").await;
    assert_eq!(take(&mut sub, 1).await[0].2, c);
    assert!(matches!(
        Subscription::open(client.clone(), "/p/", 0, None, 0).await,
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test]
async fn bookmarks_collapse_while_unread() {
    let client = client();
    let mut sub = Subscription::open(client.clone(), "/p/", 0, None, 3).await.unwrap();
    let Feed::Shared { _hub: hub, .. } = &*sub.feed else { panic!("not shared") };
    let bookmark = |revision| Change {
        kind: ChangeType::Bookmark,
        key: String::new(),
        value: None,
        previous: None,
        revision,
        error: None,
    };
    let next = client.store().unwrap().current_revision(b"/p/").await.unwrap() + 1;
    for r in 0..10 {
        hub.deliver(vec![bookmark(next + r)]);
    }
    let batch = sub.next_batch(ANY).await.unwrap().unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!((batch[0].kind, batch[0].change.revision), (ChangeType::Bookmark, next + 9));
}

#[test]
fn batches_stay_within_the_containers_asked_for() {
    const LIMIT: usize = 500;
    let event = |doc: Value| Event {
        kind: ChangeType::Modified,
        change: Arc::new(Change {
            kind: ChangeType::Modified,
            key: "/p/a".into(),
            value: Some(doc.clone()),
            previous: Some(doc),
            revision: 1,
            error: None,
        }),
    };
    // Flat documents: one dict each, two with the previous one, plus the tuple.
    let mut flat: VecDeque<Event> = (0..1000).map(|_| event(json!({"a": 1}))).collect();
    assert_eq!(take_batch(&mut flat, LIMIT).len(), LIMIT / 3);
    // Documents of 20 containers: 41 a change.
    let nested =
        json!({"m": {"l": {}, "a": [{}, {}, {}]}, "s": [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}]});
    assert_eq!(containers(&nested), 20);
    let mut big: VecDeque<Event> = (0..100).map(|_| event(nested.clone())).collect();
    assert_eq!(take_batch(&mut big, LIMIT).len(), LIMIT / 41);
    // One larger than the budget still goes, alone.
    let huge = json!({"items": vec![json!({}); 1000]});
    let mut one: VecDeque<Event> = [event(huge.clone()), event(huge)].into_iter().collect();
    assert_eq!(take_batch(&mut one, LIMIT).len(), 1);
    assert_eq!(one.len(), 1);
    // Never more than MAX_BATCH.
    let mut atoms: VecDeque<Event> = (0..1000).map(|_| event(json!(1))).collect();
    assert_eq!(take_batch(&mut atoms, LIMIT).len(), MAX_BATCH);
}

#[tokio::test]
async fn a_catch_up_whose_hub_is_gone_becomes_the_shared_watch() {
    let client = client();
    let start = client.store().unwrap().current_revision(b"/p/").await.unwrap() + 1;
    let mut first = Subscription::open(client.clone(), "/p/", 0, None, 100).await.unwrap();
    let a = put(&client, "a", 0, "Pending").await;
    take(&mut first, 1).await;
    let mut late = Subscription::open(client.clone(), "/p/", start, None, 100).await.unwrap();
    assert!(!late.is_shared());
    drop(first); // the hub goes with its last subscriber
    settle(|| client.watch_counters().snapshot().shared == 0).await;
    assert_eq!(take(&mut late, 1).await[0].2, a);
    // Its own watch is the shared one now, and the next subscriber joins it.
    assert!(late.is_shared());
    let stats = client.watch_counters().snapshot();
    assert_eq!((stats.shared, stats.catch_up, stats.watchers), (1, 0, 1));
    // One from now on joins it once the hub knows its replay is over (it asks etcd's revision
    // as it takes over): at once, or at its first change, read meanwhile from its own watch.
    let mut next = Subscription::open(client.clone(), "/p/", 0, None, 100).await.unwrap();
    let b = put(&client, "b", 0, "Pending").await;
    assert_eq!(take(&mut late, 1).await[0].2, b);
    assert_eq!(take(&mut next, 1).await[0].2, b);
    assert!(next.is_shared());
    assert_eq!(client.watch_counters().snapshot().upstream(), 1);
    let c = put(&client, "c", 0, "Pending").await;
    assert_eq!(take(&mut late, 1).await[0].2, c);
    assert_eq!(take(&mut next, 1).await[0].2, c);
}
