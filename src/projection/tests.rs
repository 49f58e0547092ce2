use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::selector::{FieldSelector, LabelSelector};

fn worker(phase: &str, track: &str, extra: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "lab.neuroglia.io/v1",
        "kind": "LabWorker",
        "metadata": {"name": "w1", "namespace": "labs", "labels": {"lab-track": track}, "creationTimestamp": "t"},
        "spec": {"lab_track": track, "aws": {"size": 3, "tags": ["a", "b"]}, "notes": "x\"y"},
        "status": {"phase": phase, "count": 2, "ok": true, "gone": null},
        "extra": extra,
    }))
    .unwrap()
}

fn query(fields: &str, labels: &str, namespace: Option<&str>) -> Query {
    Query {
        namespace: namespace.map(str::to_owned),
        labels: LabelSelector::parse(labels).unwrap(),
        fields: FieldSelector::parse(fields).unwrap(),
    }
}

#[test]
fn keeps_metadata_and_the_selected_paths_only() {
    let q = query("status.phase=Ready,spec.aws.size=3", "", None);
    let p = Projection::of(&q).unwrap();
    let doc = p.read("k", &worker("Ready", "ccna", json!({"big": [1, 2, 3]})), 9).unwrap();
    assert_eq!(doc["status"], json!({"phase": "Ready"}));
    assert_eq!(doc["spec"], json!({"aws": {"size": 3}}));
    assert!(doc.get("extra").is_none());
    assert_eq!(doc["metadata"]["creation_timestamp"], "t", "metadata is normalised");
    assert_eq!(doc["metadata"]["resource_version"], "9");
    assert!(q.matches(&doc));
    assert_eq!(p.to_string(), "apiVersion, api_version, kind, metadata, spec.aws.size, status.phase");
}

#[test]
fn keeps_the_paths_numeric_comparisons_read() {
    let q = query("spec.aws.size>2,status.count<2.5", "", None);
    let p = Projection::of(&q).unwrap();
    let doc = p.read("k", &worker("Ready", "ccna", json!(null)), 9).unwrap();
    assert_eq!(doc["spec"], json!({"aws": {"size": 3}}));
    assert_eq!(doc["status"], json!({"count": 2}));
    assert!(q.matches(&doc));
    assert!(!query("spec.aws.size>3", "", None).matches(&doc));
}

#[test]
fn unfiltered_queries_read_nothing() {
    assert!(Projection::of(&Query::default()).is_none());
}

#[test]
fn bad_bytes_fail_like_a_full_read() {
    let p = Projection::of(&query("status.phase=Ready", "", None)).unwrap();
    for bad in [&b"{not json"[..], b"{\"a\": 1} trailing", b"- yaml list", b"[1]"] {
        let err = p.read("/w/bad", bad, 1).unwrap_err();
        assert!(matches!(&err, Error::Serialization { key: Some(k), .. } if k == "/w/bad"), "{err}");
    }
    let yaml = b"kind: LabWorker\nmetadata:\n  name: a\nstatus:\n  phase: Ready\n";
    assert_eq!(p.read("k", yaml, 3).unwrap()["status"]["phase"], "Ready");
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        (-5.0f64..5.0).prop_map(Value::from),
        prop::sample::select(vec!["Ready", "Pending", "", "ccna"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(prop::sample::select(vec!["phase", "a", "b"]), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    /// A query gives the same answer on the projection as on the whole document.
    #[test]
    fn same_answer_as_the_whole_document(
        status in value(),
        spec in value(),
        path in prop::sample::select(vec!["status.phase", "status", "status.a.b", "spec.a", "spec.a.phase", "kind", "metadata.name"]),
        want in prop::sample::select(vec!["Ready", "", "1", "true"]),
        bound in prop::sample::select(vec!["1", "-2", "0.5", "4.25"]),
        op in prop::sample::select(vec!["=", "!=", ">", "<"]),
        track in prop::sample::select(vec!["ccna", "ccnp"]),
    ) {
        let bytes = serde_json::to_vec(&json!({
            "kind": "LabWorker",
            "metadata": {"name": "Ready", "labels": {"lab-track": track}},
            "spec": spec,
            "status": status,
        })).unwrap();
        let value = if matches!(op, ">" | "<") { bound } else { want };
        let q = query(&format!("{path}{op}{value}"), "lab-track=ccna", None);
        let whole = crate::document::read("k", &bytes, 4).unwrap();
        let projected = Projection::of(&q).unwrap().read("k", &bytes, 4).unwrap();
        prop_assert_eq!(q.matches(&whole), q.matches(&projected));
    }
}
