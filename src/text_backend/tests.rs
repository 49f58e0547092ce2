use serde_json::json;

use super::*;
use crate::client::{ClientOptions, MEMORY_ENDPOINT};

fn backend() -> TextBackend {
    let client = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
    TextBackend::new(client, "/ng").unwrap()
}

fn doc(version: &str, phase: &str) -> String {
    json!({"kind": "LabInstanceRequest", "metadata": {"name": "a", "resource_version": version}, "status": {"phase": phase}})
        .to_string()
}

fn version(text: &str) -> i64 {
    let v: Value = serde_json::from_str(text).unwrap();
    v["metadata"]["resource_version"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn neuroglias_read_check_write_is_a_compare_and_swap() {
    let b = backend();
    let key = "resources:labinstancerequest:uid-1";
    assert!(!b.exists(key).await.unwrap());
    assert!(b.get(key).await.unwrap().is_none());
    // add_async: a new resource holds "1": created only if absent.
    let created = b.set(key, &doc("1", "Pending")).await.unwrap();
    assert!(matches!(b.set(key, &doc("1", "Pending")).await, Err(Error::AlreadyExists { .. })));
    let read = b.get(key).await.unwrap().unwrap();
    assert_eq!(version(&read), created);
    // update_async: the version read plus one; written only if nothing came between.
    let next = (created + 1).to_string();
    let updated = b.set(key, &doc(&next, "Running")).await.unwrap();
    assert!(matches!(
        b.set(key, &doc(&next, "Failed")).await,
        Err(Error::Conflict { expected, actual: Some(actual), .. }) if expected == created && actual == updated
    ));
    assert!(b.get(key).await.unwrap().unwrap().contains("Running"));
    // Text that is no versioned document is written as it is, and read back unchanged.
    b.set("bookmark", "12345").await.unwrap();
    b.set("bookmark", "12346").await.unwrap();
    assert_eq!(b.get("bookmark").await.unwrap().as_deref(), Some("12346"));
    assert!(matches!(b.set(key, &doc("x", "Pending")).await, Err(Error::InvalidArgument { .. })));
    assert!(b.delete(key).await.unwrap());
    assert!(!b.delete(key).await.unwrap());
}

#[tokio::test]
async fn yaml_stays_yaml_and_keys_take_a_trailing_star() {
    let b = backend();
    b.set("resources:labworker:w1", "metadata:\n  name: w1\n  resource_version: '1'\n").await.unwrap();
    b.set("resources:labinstancerequest:a", &doc("1", "Pending")).await.unwrap();
    b.set("resources:labinstancerequest:b", &doc("1", "Pending")).await.unwrap();
    let yaml = b.get("resources:labworker:w1").await.unwrap().unwrap();
    assert!(yaml.starts_with("metadata:") && !yaml.contains("'1'"), "{yaml}");
    assert_eq!(
        b.keys("resources:labinstancerequest:*").await.unwrap(),
        vec!["resources:labinstancerequest:a", "resources:labinstancerequest:b"]
    );
    assert_eq!(b.keys("resources:*").await.unwrap().len(), 3);
    assert_eq!(b.keys("resources:labworker:w1").await.unwrap(), vec!["resources:labworker:w1"]);
    assert!(b.keys("resources:labworker:w2").await.unwrap().is_empty());
    assert!(matches!(b.keys("resources:*:a").await, Err(Error::InvalidArgument { .. })));
    assert!(matches!(b.get("").await, Err(Error::InvalidArgument { .. })));
}
