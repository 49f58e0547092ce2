//! Finalizers and status written with compare-and-swap, on the embedded store.

use serde_json::json;

use super::*;
use crate::client::{Client, ClientOptions, MEMORY_ENDPOINT};
use crate::repository::{Removal, RepositoryConfig};

async fn repository_with(doc: Value) -> Repository {
    let client =
        Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).expect("a memory client");
    let repo = Repository::new(client, RepositoryConfig::new("/p/")).expect("a repository");
    repo.create(doc, 0).await.expect("create");
    repo
}

fn ok(generation: i64) -> Reconciled {
    Reconciled { generation: Some(generation), ok: true, reason: "Done".into(), message: None }
}

#[test]
fn the_reconciled_condition_moves_its_transition_only_when_it_flips() {
    let mut doc = json!({"metadata": {"name": "a", "generation": 3}, "spec": {}});
    assert!(apply_reconciled(&mut doc, &ok(3), "t1").expect("applies"));
    assert_eq!(doc["status"]["observed_generation"], json!(3));
    assert_eq!(doc["status"]["conditions"][0]["last_transition"], json!("t1"));
    assert!(!apply_reconciled(&mut doc, &ok(3), "t2").expect("applies"), "nothing new: no write");
    let failed = Reconciled {
        generation: Some(4),
        ok: false,
        reason: "Retrying".into(),
        message: Some("boom".into()),
    };
    assert!(apply_reconciled(&mut doc, &failed, "t3").expect("applies"));
    assert_eq!(doc["status"]["observed_generation"], json!(3), "a failure observes nothing");
    assert_eq!(doc["status"]["conditions"][0]["status"], json!("False"));
    assert_eq!(doc["status"]["conditions"][0]["last_transition"], json!("t3"));
    let again = Reconciled { message: Some("boom again".into()), ..failed };
    assert!(apply_reconciled(&mut doc, &again, "t4").expect("applies"));
    assert_eq!(doc["status"]["conditions"][0]["last_transition"], json!("t3"), "no flip, same transition");
    assert_eq!(doc["status"]["conditions"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_edit_that_loses_a_race_reads_again() {
    let repo = repository_with(json!({"metadata": {"name": "a"}, "spec": {"x": 1}})).await;
    let mut attempts = 0;
    let edited = edit(&repo, "/p/a", |doc| {
        attempts += 1;
        if attempts == 1 {
            doc["metadata"]["resource_version"] = json!("1"); // as if another writer came first
        }
        doc["status"] = json!({"seen": attempts});
        Ok(true)
    })
    .await
    .expect("the second attempt wins");
    assert_eq!(attempts, 2);
    let Edited::Written(Some(doc)) = edited else { panic!("written: {edited:?}") };
    assert_eq!(doc["status"]["seen"], json!(2));
    assert_eq!(
        doc["metadata"]["generation"],
        repo.get("a", None).await.expect("get").expect("a")["metadata"]["generation"]
    );
}

#[tokio::test]
async fn status_writes_keep_the_generation() {
    let repo = repository_with(json!({"metadata": {"name": "a"}, "spec": {"x": 1}})).await;
    let before = repo.get("a", None).await.expect("get").expect("a");
    let generation = before["metadata"]["generation"].as_i64();
    let recorded = record(&repo, "/p/a", &Reconciled { generation, ..ok(0) }).await.expect("record");
    assert!(matches!(recorded, Edited::Written(Some(_))));
    let again = record(&repo, "/p/a", &Reconciled { generation, ..ok(0) }).await.expect("again");
    assert!(matches!(again, Edited::Unchanged(_)));
    let written = write_status(&repo, "/p/a", &json!({"phase": "Ready"})).await.expect("status");
    assert!(matches!(written, Edited::Written(Some(_))));
    let after = repo.get("a", None).await.expect("get").expect("a");
    assert_eq!(after["metadata"]["generation"].as_i64(), generation);
    assert_eq!(after["status"], json!({"phase": "Ready"}));
}

#[tokio::test]
async fn removing_the_last_finalizer_of_a_deleted_resource_deletes_it() {
    let repo = repository_with(json!({"metadata": {"name": "a"}, "spec": {}})).await;
    assert!(matches!(set_finalizer(&repo, "/p/a", "x.io/f", true).await, Ok(Edited::Written(Some(_)))));
    assert!(matches!(set_finalizer(&repo, "/p/a", "x.io/f", true).await, Ok(Edited::Unchanged(_))));
    assert!(matches!(repo.remove("a", None).await, Ok(Removal::Finalizing(_))));
    assert_eq!(set_finalizer(&repo, "/p/a", "x.io/f", false).await.ok(), Some(Edited::Written(None)));
    assert_eq!(repo.get("a", None).await.expect("get"), None);
    assert_eq!(set_finalizer(&repo, "/p/a", "x.io/f", false).await.ok(), Some(Edited::Gone));
    assert!(set_finalizer(&repo, "/elsewhere/a", "x.io/f", false).await.is_err());
}
