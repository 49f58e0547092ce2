//! The controller core on the embedded store: listing, changes, predicates, fresh reads.

use serde_json::{json, Value};

use super::*;
use crate::client::{Client, ClientOptions, MEMORY_ENDPOINT};
use crate::document;
use crate::repository::RepositoryConfig;

fn repository(prefix: &str) -> Repository {
    let client =
        Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).expect("a memory client");
    Repository::new(client, RepositoryConfig::new(prefix)).expect("a repository")
}

fn doc(work: &Work) -> Value {
    document::read_kv(&work.stored).expect("a readable document")
}

#[tokio::test]
async fn lists_then_follows_changes_through_the_predicates() {
    let repo = repository("/c/");
    for name in ["a", "b"] {
        repo.create(json!({"metadata": {"name": name}, "spec": {"n": 0}, "status": {}}), 0)
            .await
            .expect("create");
    }
    let controller = Controller::start(repo.clone(), Settings::default()).await.expect("start");
    let mut listed = vec![];
    for _ in 0..2 {
        let work = controller.next().await.expect("a listed key");
        assert_eq!(work.priority, Priority::Initial);
        listed.push(work.key.to_string());
        controller.finish(&work.key, Outcome::Done);
    }
    listed.sort();
    assert_eq!(listed, ["/c/a", "/c/b"]);

    // A status-only write is held back; the spec change after it runs.
    let mut a = repo.get("a", None).await.expect("get").expect("a exists");
    a["status"]["seen"] = json!(true);
    let a = repo.update(a).await.expect("status write");
    let mut respecced = a.clone();
    respecced["spec"]["n"] = json!(1);
    repo.update(respecced).await.expect("spec write");
    let work = controller.next().await.expect("the spec change");
    assert_eq!((work.key.as_ref(), work.priority), ("/c/a", Priority::Live));
    assert_eq!(doc(&work)["spec"]["n"], json!(1));
    controller.finish(&work.key, Outcome::Done);
    let stats = controller.stats();
    assert_eq!((stats.changes, stats.filtered, stats.queue.done), (1, 1, 3));
}

#[tokio::test]
async fn a_run_after_an_own_write_reads_that_write() {
    let repo = repository("/own/");
    repo.create(json!({"metadata": {"name": "x"}, "spec": {}, "status": {"count": 0}}), 0)
        .await
        .expect("create");
    let controller = Controller::start(repo.clone(), Settings::default()).await.expect("start");
    for expected in 0..50 {
        let work = controller.next().await.expect("x again");
        let mut current = doc(&work);
        assert_eq!(current["status"]["count"], json!(expected), "never the state before the last write");
        current["status"]["count"] = json!(expected + 1);
        repo.update(current).await.expect("a status write");
        controller.finish(&work.key, Outcome::RequeueAfter(std::time::Duration::ZERO));
    }
}

#[tokio::test]
async fn deleted_keys_are_skipped_and_a_closed_client_fails_next() {
    let repo = repository("/gone/");
    repo.create(json!({"metadata": {"name": "x"}, "spec": {}}), 0).await.expect("create");
    repo.create(json!({"metadata": {"name": "y"}, "spec": {}}), 0).await.expect("create");
    let controller = Controller::start(repo.clone(), Settings::default()).await.expect("start");
    repo.remove("x", None).await.expect("remove");
    // The delete's own trigger: x is gone when its turn comes, so y runs.
    let client = repo.client().clone();
    let work = controller.next().await.expect("y");
    assert_eq!(work.key.as_ref(), "/gone/y");
    controller.finish(&work.key, Outcome::Done);
    assert!(controller.stats().gone >= 1);
    client.close();
    assert!(matches!(controller.next().await, Err(Error::Closed)));
}

#[tokio::test]
async fn a_feed_whose_start_was_compacted_relists_and_queues_every_key_again() {
    let repo = repository("/relist/");
    for name in ["a", "b"] {
        repo.create(json!({"metadata": {"name": name}, "spec": {}}), 0).await.expect("create");
    }
    let controller = Controller::start(repo.clone(), Settings::default()).await.expect("start");
    for _ in 0..2 {
        let work = controller.next().await.expect("a listed key");
        controller.finish(&work.key, Outcome::Done);
    }
    let store = repo.client().store().expect("a store");
    let now = store.current_revision(b"/relist/").await.expect("a revision");
    store.compact(now).await.expect("compact");
    // A feed starting before the compaction: etcd's 410 Gone, then a relisting.
    tokio::spawn(feed::run(controller.inner.clone(), 1));
    let mut again = vec![];
    for _ in 0..2 {
        let work = controller.next().await.expect("a relisted key");
        assert_eq!(work.priority, Priority::Initial);
        again.push(work.key.to_string());
        controller.finish(&work.key, Outcome::Done);
    }
    again.sort();
    assert_eq!(again, ["/relist/a", "/relist/b"]);
    assert_eq!(controller.stats().relists, 1);
}

#[tokio::test]
async fn a_live_change_runs_before_the_rest_of_a_long_listing() {
    let repo = repository("/busy/");
    for i in 0..200 {
        repo.create(json!({"metadata": {"name": format!("k{i:03}")}, "spec": {}}), 0).await.expect("create");
    }
    let settings =
        Settings { queue: Options { max_concurrency: 1, ..Options::default() }, ..Settings::default() };
    let controller = Controller::start(repo.clone(), settings).await.expect("start");
    let first = controller.next().await.expect("a listed key");
    repo.create(json!({"metadata": {"name": "live"}, "spec": {}}), 0).await.expect("create");
    // The feed is a task of its own: yield until it has queued the change.
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while controller.stats().changes == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the feed sees the change");
    controller.finish(&first.key, Outcome::Done);
    let next = controller.next().await.expect("the live key");
    assert_eq!((next.key.as_ref(), next.priority), ("/busy/live", Priority::Live));
    assert_eq!(controller.stats().queue.initial_depth, 199);
}

#[tokio::test]
async fn a_feed_that_fell_behind_relists_and_loses_nothing() {
    let repo = repository("/behind/");
    let settings = Settings { max_backlog: 1, ..Settings::default() };
    let controller = Controller::start(repo.clone(), settings).await.expect("start");
    // One change through the shared watch first: it is live then (changes it reads before it
    // has passed etcd's revision at its opening are a replay, which detaches, not ends).
    repo.create(json!({"metadata": {"name": "first"}, "spec": {}}), 0).await.expect("create");
    let work = controller.next().await.expect("the first key");
    controller.finish(&work.key, Outcome::Done);
    // Written without yielding: the shared watch then hands the feed more than its backlog.
    for i in 0..30 {
        repo.create(json!({"metadata": {"name": format!("k{i:02}")}, "spec": {}}), 0).await.expect("create");
    }
    let mut seen = std::collections::BTreeSet::new();
    let all = async {
        while seen.len() < 30 {
            let work = controller.next().await.expect("a changed key");
            if work.key.starts_with("/behind/k") {
                seen.insert(work.key.to_string()); // not `first`, which a relist queues again
            }
            controller.finish(&work.key, Outcome::Done);
        }
    };
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), all).await;
    assert!(done.is_ok(), "every key within 10 s: {:?} {seen:?}", controller.stats());
    let stats = controller.stats();
    assert!(stats.relists >= 1, "fell behind at least once: {stats:?}");
    assert_eq!(stats.gone, 0);
}

#[tokio::test]
async fn a_related_trigger_runs_the_key_live_once_and_a_missing_key_is_gone() {
    let repo = repository("/rel/");
    repo.create(json!({"metadata": {"name": "a"}, "spec": {}, "status": {}}), 0).await.expect("create");
    let controller = Controller::start(repo.clone(), Settings::default()).await.expect("start");
    let work = controller.next().await.expect("the listed key");
    controller.finish(&work.key, Outcome::Done);

    // Two related changes of `a` before its turn merge into one run; `nobody` is not there.
    controller.trigger([Key::from("/rel/nobody"), Key::from("/rel/a"), Key::from("/rel/a")]);
    let work = controller.next().await.expect("the related run");
    assert_eq!((work.key.as_ref(), work.priority), ("/rel/a", Priority::Live));
    controller.finish(&work.key, Outcome::Done);
    let stats = controller.stats();
    assert_eq!((stats.related, stats.gone, stats.queue.depth, stats.queue.done), (3, 1, 0, 3));
}

#[tokio::test]
async fn a_batch_takes_every_due_key_up_to_its_bound_and_the_free_slots() {
    let repo = repository("/batch/");
    for name in ["a", "b", "c", "d"] {
        repo.create(json!({"metadata": {"name": name}, "spec": {}, "status": {}}), 0).await.expect("create");
    }
    let mut settings = Settings::default();
    settings.queue.max_concurrency = 3;
    let controller = Controller::start(repo.clone(), settings).await.expect("start");
    let first = controller.next_batch(2).await.expect("a batch");
    assert_eq!(first.len(), 2, "bounded by max");
    let second = controller.next_batch(8).await.expect("a batch");
    assert_eq!(second.len(), 1, "bounded by the free slots");
    controller.finish(&first[0].key, Outcome::Done);
    let third = controller.next_batch(8).await.expect("a batch");
    assert_eq!(third.len(), 1);
    let mut keys: Vec<_> =
        [&first[..], &second[..], &third[..]].concat().iter().map(|w| w.key.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["/batch/a", "/batch/b", "/batch/c", "/batch/d"]);
}
