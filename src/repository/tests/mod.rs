use serde_json::json;

use super::*;
use crate::client::{ClientOptions, MEMORY_ENDPOINT};
use crate::selector::{FieldSelector, LabelSelector, Query};

fn repo() -> Repository {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    Repository::new(client, RepositoryConfig::new("/lab-workers/")).unwrap()
}

fn worker(name: &str, track: &str) -> Value {
    json!({
        "apiVersion": "lab.neuroglia.io/v1", "kind": "LabWorker",
        "metadata": {"name": name, "labels": {"lab-track": track}},
        "spec": {"lab_track": track}, "status": {"phase": "Pending"}
    })
}

#[tokio::test]
async fn create_sets_server_fields_and_refuses_a_second_create() {
    let r = repo();
    let doc = r.create(worker("w1", "ccna"), 0).await.unwrap();
    let meta = &doc["metadata"];
    assert_eq!(meta["generation"], 1);
    assert!(meta["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(meta["creation_timestamp"].as_str().is_some());
    let rv = meta["resource_version"].as_str().unwrap().to_owned();
    assert_eq!(r.get("w1", None).await.unwrap().unwrap()["metadata"]["resource_version"], rv.as_str());
    let err = r.create(worker("w1", "other"), 0).await.unwrap_err();
    assert_eq!(err, Error::AlreadyExists { key: "/lab-workers/w1".into() });
    assert_eq!(r.get("w1", None).await.unwrap().unwrap()["spec"]["lab_track"], "ccna");
}

#[tokio::test]
async fn update_is_compare_and_swap_and_counts_spec_generations() {
    let r = repo();
    let v1 = r.create(worker("w1", "ccna"), 0).await.unwrap();
    let mut status_only = v1.clone();
    status_only["status"]["phase"] = json!("Ready");
    let v2 = r.update(status_only).await.unwrap();
    assert_eq!(v2["metadata"]["generation"], 1, "a status change keeps the generation");
    let mut spec_change = v2.clone();
    spec_change["spec"]["lab_track"] = json!("ccnp");
    let v3 = r.update(spec_change).await.unwrap();
    assert_eq!(v3["metadata"]["generation"], 2);
    assert_eq!(v3["metadata"]["uid"], v1["metadata"]["uid"]);

    let stale = v2.clone();
    match r.update(stale).await.unwrap_err() {
        Error::Conflict { expected, actual, .. } => {
            assert_eq!(expected.to_string(), v2["metadata"]["resource_version"].as_str().unwrap());
            assert_eq!(actual.unwrap().to_string(), v3["metadata"]["resource_version"].as_str().unwrap());
        }
        other => panic!("{other:?}"),
    }
    let missing = worker("ghost", "x");
    assert!(matches!(r.update(missing).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn finalizers_hold_a_delete_until_removed() {
    let r = repo();
    let mut w = worker("w1", "ccna");
    w["metadata"]["finalizers"] = json!(["lab.neuroglia.io/cleanup"]);
    r.create(w, 0).await.unwrap();
    let Removal::Finalizing(marked) = r.remove("w1", None).await.unwrap() else { panic!("deleted") };
    assert!(marked["metadata"]["deletion_timestamp"].is_string());
    assert!(r.contains("w1", None).await.unwrap());
    let mut done = marked.clone();
    done["metadata"]["finalizers"] = json!([]);
    r.update(done).await.unwrap();
    assert!(!r.contains("w1", None).await.unwrap());
    assert!(matches!(r.remove("w1", None).await, Err(Error::NotFound { .. })));
}

#[tokio::test]
async fn lists_filter_by_labels_and_namespace_and_report_garbage() {
    let r = repo();
    for (i, track) in ["ccna", "ccnp", "ccna"].iter().enumerate() {
        let mut w = worker(&format!("w{i}"), track);
        w["metadata"]["namespace"] = json!(if i == 0 { "a" } else { "b" });
        r.create(w, 0).await.unwrap();
    }
    r.client().store().unwrap().put(b"/lab-workers/bad".to_vec(), b"{oops".to_vec(), 0).await.unwrap();
    // Unfiltered, no document is read: the garbage shows when the consumer decodes it.
    let all = r.list(&Query::default()).await.unwrap();
    let (ok, bad): (Vec<_>, Vec<_>) = all.items.iter().map(crate::document::read_kv).partition(Result::is_ok);
    assert_eq!((ok.len(), bad.len(), all.unreadable.len()), (3, 1, 0));
    let ccna = Query { labels: LabelSelector::parse("lab-track=ccna").unwrap(), ..Default::default() };
    let filtered = r.list(&ccna).await.unwrap();
    assert_eq!((filtered.items.len(), filtered.unreadable.len()), (2, 1), "filtered: reported apart");
    let in_b = Query { namespace: Some("b".into()), labels: ccna.labels.clone(), ..Default::default() };
    let names: Vec<_> = r
        .list(&in_b)
        .await
        .unwrap()
        .items
        .iter()
        .map(|kv| crate::document::read_kv(kv).unwrap()["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("w2")]);
}

#[tokio::test]
async fn namespaced_keys_and_bad_names() {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    let r = Repository::new(client, RepositoryConfig { namespaced: true, ..RepositoryConfig::new("/r/") })
        .unwrap();
    let doc = r.create(worker("w1", "x"), 0).await.unwrap();
    assert_eq!(doc["metadata"]["namespace"], "default");
    assert_eq!(r.key("w1", Some("labs")).unwrap(), "/r/labs/w1");
    assert!(r.get("w1", Some("default")).await.unwrap().is_some());
    for bad in ["../x", "A", "a/b", ""] {
        assert!(matches!(r.get(bad, None).await, Err(Error::InvalidName { .. })), "{bad}");
    }
}

#[tokio::test]
async fn a_prefix_without_its_slash_never_covers_a_longer_one() {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    let x = Repository::new(client.clone(), RepositoryConfig::new("/x")).unwrap();
    let other = Repository::new(client.clone(), RepositoryConfig::new("/x-other/")).unwrap();
    assert_eq!(x.config().prefix, "/x/");
    other.create(worker("w1", "ccna"), 0).await.unwrap();
    assert!(x.get("w1", None).await.unwrap().is_none());
    assert!(x.list(&Query::default()).await.unwrap().items.is_empty());
    assert_eq!(x.count(&Query::default()).await.unwrap(), 0);
    assert!(x.list_page(&Query::default(), 10, None).await.unwrap().items.is_empty());
    // The same prefix however it is typed.
    x.create(worker("w2", "ccna"), 0).await.unwrap();
    let slashed = Repository::new(client.clone(), RepositoryConfig::new("/x//")).unwrap();
    assert!(slashed.get("w2", None).await.unwrap().is_some());
    assert_eq!(slashed.key("w2", None).unwrap(), "/x/w2");
    let empty = Repository::new(client, RepositoryConfig::new(""));
    assert!(matches!(empty.err(), Some(Error::InvalidArgument { .. })));
}

#[tokio::test]
async fn oversized_documents_are_refused_before_sending() {
    let client = Client::new(
        vec![MEMORY_ENDPOINT.into()],
        ClientOptions { max_document_bytes: 1000, ..ClientOptions::default() },
    )
    .unwrap();
    let r = Repository::new(client, RepositoryConfig::new("/r/")).unwrap();
    let mut w = worker("big", "x");
    w["spec"]["blob"] = json!("x".repeat(2000));
    assert!(matches!(r.create(w, 0).await, Err(Error::TooLarge { limit: 1000, .. })));
    assert!(!r.contains("big", None).await.unwrap());
}

#[tokio::test]
async fn updates_keep_the_lease() {
    let r = repo();
    let store = r.client().store().unwrap().clone();
    let lease = store.lease_grant(60).await.unwrap();
    let doc = r.create(worker("w1", "x"), lease).await.unwrap();
    r.update(doc).await.unwrap();
    store.lease_revoke(lease).await.unwrap();
    assert!(!r.contains("w1", None).await.unwrap());
}

#[tokio::test]
async fn pages_read_one_snapshot_and_counts_match_lists() {
    let r = repo();
    for i in 0..23 {
        let mut w = worker(&format!("w{i:02}"), if i % 2 == 0 { "even" } else { "odd" });
        w["status"]["phase"] = json!(if i % 3 == 0 { "Ready" } else { "Pending" });
        r.create(w, 0).await.unwrap();
    }
    let even = Query { labels: LabelSelector::parse("lab-track=even").unwrap(), ..Default::default() };
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut revisions = Vec::new();
    loop {
        let page = r.list_page(&even, 5, token.as_deref()).await.unwrap();
        assert!(page.items.len() <= 5);
        names.extend(page.items.iter().map(|kv| {
            crate::document::read_kv(kv).unwrap()["metadata"]["name"].as_str().unwrap().to_owned()
        }));
        revisions.push(page.revision);
        // A write between pages must not show up in this listing.
        r.create(worker(&format!("late{}", revisions.len()), "even"), 0).await.unwrap();
        match page.continue_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(names, (0..23).step_by(2).map(|i| format!("w{i:02}")).collect::<Vec<_>>());
    assert!(revisions.windows(2).all(|w| w[0] == w[1]));

    let ready = Query { fields: FieldSelector::parse("status.phase=Ready").unwrap(), ..Default::default() };
    assert_eq!(r.count(&ready).await.unwrap(), 8);
    assert_eq!(r.count(&ready).await.unwrap() as usize, r.list(&ready).await.unwrap().items.len());
    assert_eq!(
        r.count(&Query::default()).await.unwrap() as usize,
        r.list(&Query::default()).await.unwrap().items.len()
    );
    assert!(matches!(r.list_page(&even, 0, None).await, Err(Error::InvalidArgument { .. })));
    assert!(matches!(r.list_page(&even, 5, Some("garbage")).await, Err(Error::InvalidArgument { .. })));
}

#[tokio::test]
async fn a_compacted_continue_token_is_expired() {
    let r = repo();
    for i in 0..4 {
        r.create(worker(&format!("w{i}"), "t"), 0).await.unwrap();
    }
    let page = r.list_page(&Query::default(), 2, None).await.unwrap();
    let token = page.continue_token.unwrap();
    r.create(worker("after", "t"), 0).await.unwrap();
    let store = r.client().store().unwrap().clone();
    store.compact(store.current_revision(b"").await.unwrap()).await.unwrap();
    assert!(matches!(r.list_page(&Query::default(), 2, Some(&token)).await, Err(Error::Expired { .. })));
}

#[tokio::test]
async fn an_update_from_the_memo_is_as_safe_as_one_that_reads() {
    let r = repo();
    let other = Repository::new(r.client().clone(), r.config().clone()).unwrap(); // its own memo
    let v1 = r.create(worker("w1", "ccna"), 0).await.unwrap();

    // From the memo: server fields kept whatever the caller sent, generation counts spec changes.
    let mut changed = v1.clone();
    changed["spec"]["lab_track"] = json!("ccnp");
    changed["metadata"]["uid"] = json!("forged");
    let v2 = r.update(changed).await.unwrap();
    assert_eq!(v2["metadata"]["uid"], v1["metadata"]["uid"]);
    assert_eq!(v2["metadata"]["generation"], 2);

    // Another writer moves the key on: the version this repository remembers is stale.
    other.update(v2.clone()).await.unwrap();
    let err = r.update(v2.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { actual: Some(_), .. }), "{err}");

    // Another writer deletes it: the remembered version is gone.
    let v3 = r.get("w1", None).await.unwrap().unwrap();
    let v3 = r.update(v3).await.unwrap();
    assert!(matches!(other.remove("w1", None).await.unwrap(), Removal::Deleted));
    assert_eq!(r.update(v3).await.unwrap_err(), Error::NotFound { key: "/lab-workers/w1".into() });
}

#[tokio::test]
async fn a_streamed_listing_is_the_listing_in_chunks() {
    let r = repo();
    let n = 2 * crate::listing::CHUNK as usize + 7;
    for i in 0..n {
        r.create(worker(&format!("w{i:04}"), if i % 3 == 0 { "ccna" } else { "ccnp" }), 0).await.unwrap();
    }
    for query in [
        Query::default(),
        Query { labels: LabelSelector::parse("lab-track=ccna").unwrap(), ..Default::default() },
    ] {
        let mut rx = r.list_chunks(query.clone(), crate::listing::MAX_CHUNK);
        let mut keys = Vec::new();
        let mut lasts = Vec::new();
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.unwrap();
            keys.extend(chunk.items.into_iter().map(|kv| kv.key));
            lasts.push(chunk.last);
        }
        let whole: Vec<_> = r.list(&query).await.unwrap().items.into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, whole);
        // 500 keys, then (small documents) up to 1,000: the rest.
        assert_eq!(lasts, vec![false, true]);
    }
}

#[tokio::test]
async fn an_unreadable_document_is_deleted_only_when_asked_and_only_at_the_version_read() {
    let r = repo();
    let store = r.client().store().unwrap();
    let key = "/lab-workers/bad";
    store.put(key.as_bytes().to_vec(), b"{garbage".to_vec(), 0).await.unwrap();
    let refused = r.remove("bad", None).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Serialization { key: Some(k), message } if k == key && message.contains("delete_unreadable=True")),
        "{refused}"
    );
    // Read as garbage, then repaired by someone else before the delete: the repair stays.
    let stale = r.get_stored("bad", None).await.unwrap().unwrap();
    let repaired = serde_json::to_vec(&worker("bad", "ccna")).unwrap();
    let now = store.put(key.as_bytes().to_vec(), repaired, 0).await.unwrap();
    let err = Error::serialization(Some(key), "garbage");
    let conflict = r.remove_unreadable(key, &stale, err.clone(), true).await.unwrap_err();
    assert_eq!(
        conflict,
        Error::Conflict { key: key.into(), expected: stale.mod_revision, actual: Some(now) }
    );
    assert!(r.get("bad", None).await.unwrap().is_some(), "the repair was not deleted");
    // Garbage again, read and deleted at that version.
    store.put(key.as_bytes().to_vec(), b"{garbage".to_vec(), 0).await.unwrap();
    assert_eq!(r.remove_allowing_unreadable("bad", None).await.unwrap(), Removal::Deleted);
    assert!(r.get_stored("bad", None).await.unwrap().is_none());
}
