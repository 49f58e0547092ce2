//! The informer cache against a direct read, through changes.

use serde_json::{json, Value};

use super::*;
use crate::client::{ClientOptions, MEMORY_ENDPOINT};
use crate::repository::{Repository, RepositoryConfig};
use crate::selector::{FieldSelector, LabelSelector};

fn worker(name: &str, track: &str, phase: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"lab-track": track}}, "spec": {}, "status": {"phase": phase}})
}

#[tokio::test]
async fn answers_from_indexes_and_reads_its_writes() {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    let repo = Repository::new(client.clone(), RepositoryConfig::new("/w/")).unwrap();
    for i in 0..20 {
        repo.create(
            worker(
                &format!("w{i:02}"),
                if i % 2 == 0 { "a" } else { "b" },
                if i % 4 == 0 { "Ready" } else { "Pending" },
            ),
            0,
        )
        .await
        .unwrap();
    }
    let paths = vec!["status.phase".to_owned()];
    let informer = Informer::shared(&client, "/w/", &paths).unwrap();
    informer.wait_fresh().await.unwrap();
    assert_eq!(informer.len(), 20);
    let ready = Query { fields: FieldSelector::parse("status.phase=Ready").unwrap(), ..Default::default() };
    assert_eq!(informer.count(&ready), 5);
    let both = Query { labels: LabelSelector::parse("lab-track=b").unwrap(), ..ready.clone() };
    assert_eq!(informer.count(&both), 0);

    // A write, then a consistent read: the cache has it.
    let doc = repo.get("w01", None).await.unwrap().unwrap();
    let mut updated = doc.clone();
    updated["status"]["phase"] = json!("Ready");
    repo.update(updated).await.unwrap();
    informer.wait_fresh().await.unwrap();
    assert_eq!(informer.count(&ready), 6);
    assert_eq!(informer.count(&both), 1);
    repo.remove("w00", None).await.unwrap();
    // A write under another prefix moves etcd's revision: progress reports cover it.
    client.store().unwrap().put(b"/elsewhere".to_vec(), b"{}".to_vec(), 0).await.unwrap();
    informer.wait_fresh().await.unwrap();
    assert_eq!(informer.count(&ready), 5);
    assert_eq!(informer.list(&ready).len(), 5);

    // Shared: the same prefix and paths give the same cache.
    let again = Informer::shared(&client, "/w/", &paths).unwrap();
    assert!(Arc::ptr_eq(&again.shared, &informer.shared));
    // "/w" is the same prefix as "/w/".
    let unslashed = Informer::shared(&client, "/w", &paths).unwrap();
    assert!(Arc::ptr_eq(&unslashed.shared, &informer.shared));
}

/// A document whose `status.active_lab_count` is a number, a decimal, text, null or
/// absent, and whose label `slots` is an integer or a word, by `i`.
fn counted(name: &str, i: i64) -> Value {
    let slots = if i % 4 == 3 { "many".to_owned() } else { (i % 13).to_string() };
    let mut doc = json!({"metadata": {"name": name, "labels": {"slots": slots}}, "spec": {}, "status": {}});
    let count = match i % 6 {
        0 => json!(i),
        1 => json!(i as f64 + 0.5),
        2 => json!(i.to_string()),
        3 => Value::Null,
        4 => return doc,
        _ => json!(-i),
    };
    doc["status"]["active_lab_count"] = count;
    doc
}

fn query(labels: &str, fields: &str) -> Query {
    Query {
        labels: LabelSelector::parse(labels).unwrap(),
        fields: FieldSelector::parse(fields).unwrap(),
        ..Default::default()
    }
}

/// The keys a read of etcd lists for `q`, checked to be what the cache lists and counts.
async fn same_keys(repo: &Repository, informer: &Informer, q: &Query, what: &str) -> Vec<String> {
    let listed = repo.list(q).await.unwrap().items;
    let want: Vec<String> = listed.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect();
    let got: Vec<String> = informer.list(q).iter().map(|e| e.key().to_owned()).collect();
    assert_eq!(got, want, "{what}");
    assert_eq!(informer.count(q), want.len(), "{what}");
    want
}

/// The cache answers like a read of etcd, and comparisons on indexed paths from the
/// indexes alone.
async fn same_as_etcd(repo: &Repository, informer: &Informer, paths: &[String]) -> usize {
    informer.wait_fresh().await.unwrap();
    let mut answered = 0;
    for (labels, fields) in [
        ("", "status.active_lab_count<20"),
        ("", "status.active_lab_count>10"),
        ("", "status.active_lab_count>10.5"),
        ("", "status.active_lab_count < -5"),
        ("", "status.active_lab_count>10,status.active_lab_count<20.5"),
        ("slots>5", ""),
        ("slots<3", ""),
        ("slots>5,slots<10", "status.active_lab_count<40"),
        ("slots in (1,2,3)", "status.active_lab_count>0"),
        ("slots>2", "status.phase=Ready"), // status.phase is not indexed
        ("slots!=4", "status.active_lab_count>3"),
    ] {
        let q = query(labels, fields);
        same_keys(repo, informer, &q, &format!("{labels:?} {fields:?}")).await;
        for entry in informer.list(&q) {
            let doc = entry.document().unwrap();
            assert_eq!(format!("/n/{}", doc["metadata"]["name"].as_str().unwrap()), entry.key());
        }
        if q.fields.requirements.iter().all(|r| paths.contains(&r.key)) {
            // Labels and indexed paths only: answered from what the entries hold, no
            // document decoded.
            let state = informer.read();
            assert!(state.docs.values().all(|e| e.test_held(&q, paths).is_some()), "{labels:?} {fields:?}");
            answered += 1;
        }
    }
    answered
}

#[tokio::test]
async fn comparisons_answer_from_ordered_indexes_through_changes() {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    let repo = Repository::new(client.clone(), RepositoryConfig::new("/n/")).unwrap();
    for i in 0..40 {
        repo.create(counted(&format!("n{i:02}"), i), 0).await.unwrap();
    }
    let paths = vec!["status.active_lab_count".to_owned()];
    let informer = Informer::shared(&client, "/n/", &paths).unwrap();
    assert_eq!(same_as_etcd(&repo, &informer, &paths).await, 10);

    // Updates move documents between numbers, to and from text, null and absent.
    for i in (0..40).step_by(3) {
        let mut doc = repo.get(&format!("n{i:02}"), None).await.unwrap().unwrap();
        let newer = counted("unused", i + 1);
        doc["status"] = newer["status"].clone();
        doc["metadata"]["labels"] = newer["metadata"]["labels"].clone();
        repo.update(doc).await.unwrap();
    }
    same_as_etcd(&repo, &informer, &paths).await;
    for i in (0..40).step_by(2) {
        repo.remove(&format!("n{i:02}"), None).await.unwrap();
    }
    same_as_etcd(&repo, &informer, &paths).await;
    for i in (1..40).step_by(2) {
        repo.remove(&format!("n{i:02}"), None).await.unwrap();
    }
    assert_eq!(same_as_etcd(&repo, &informer, &paths).await, 10);
    let state = informer.read();
    assert!(state.docs.is_empty());
    assert!(state.labels.numbers.is_empty() && state.fields.numbers.is_empty(), "nothing left behind");
    assert!(state.labels.text.is_empty() && state.fields.text.is_empty());
}

#[test]
fn a_comparison_alone_counts_without_a_set() {
    let paths = vec!["status.active_lab_count".to_owned()];
    let mut state = State::default();
    for i in 0..12 {
        let key = format!("k{i:02}");
        let kv = KeyValue { key: key.clone().into_bytes(), mod_revision: i + 1, ..KeyValue::default() };
        state.put(Entry::from_document(key.into(), &counted("x", i), kv, &paths).unwrap(), &paths);
    }
    let exact = |q: &Query| state.narrowest(q, &paths).map(|n| (n.exact, state.count(q, &paths)));
    // Numbers 0, 1.5, -5, 6, 7.5, -11: three below 1.
    assert_eq!(exact(&query("", "status.active_lab_count<1")), Some((true, 3)));
    assert_eq!(exact(&query("", "status.active_lab_count>1")), Some((true, 3)));
    assert_eq!(exact(&query("", "status.active_lab_count>7.5")), Some((true, 0)));
    // Labels 0, 1, 2, 4, 5, 6, 8, 9, 10 (3, 7 and 11 are words): two above 8.
    assert_eq!(exact(&query("slots>8", "")), Some((true, 2)));
    assert_eq!(exact(&query("", "status.other<1")), None, "not indexed");
    assert_eq!(exact(&query("slots!=1", "")), None);
    // Two requirements: the narrower one's entries, tested against the other.
    assert_eq!(exact(&query("slots>8", "status.active_lab_count<1")), Some((false, 0)));
    assert_eq!(exact(&query("slots<8", "status.active_lab_count<1")), Some((false, 2)), "0 and -5");
}

/// Time comparisons (two paths, naive and aware timestamps) from the cache, with the phase
/// indexed, as a read of etcd answers them.
#[tokio::test]
async fn time_comparisons_as_etcd_answers_them() {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    let repo = Repository::new(client.clone(), RepositoryConfig::new("/t/")).unwrap();
    for i in 0..24_i64 {
        let start = match i % 4 {
            0 => json!(format!("2026-12-04T{:02}:00:00", i % 24)),
            1 => json!(format!("2026-12-04T{:02}:30:00+00:00", i % 24)),
            2 => Value::Null,
            _ => json!(format!("2026-12-04T{:02}:15:00.5+02:00", i % 24)),
        };
        let phase = if i % 3 == 0 { "Pending" } else { "Running" };
        let doc = json!({"metadata": {"name": format!("i{i:02}")},
            "spec": {"duration_minutes": 30 * (i % 5), "scheduled_start": if i % 2 == 0 { start.clone() } else { Value::Null }},
            "status": {"phase": phase, "start_time": start}});
        repo.create(doc, 0).await.unwrap();
    }
    let paths = vec!["status.phase".to_owned()];
    let informer = Informer::shared(&client, "/t/", &paths).unwrap();
    informer.wait_fresh().await.unwrap();
    let mut nonempty = 0;
    for fields in [
        "status.phase=Running,status.start_time+minutes(spec.duration_minutes)<2026-12-04T12:00:00+01:00",
        "status.start_time+minutes(spec.duration_minutes)<2026-12-04T12:00:00Z",
        "status.start_time>2026-12-04T08:00:00Z",
        "status.phase=Pending,spec.scheduled_start",
    ] {
        let q = query("", fields);
        let want = same_keys(&repo, &informer, &q, fields).await;
        nonempty += usize::from(!want.is_empty() && want.len() < 24);
    }
    assert_eq!(nonempty, 4, "every query selects some but not all");
}
