use serde_json::{json, Value};

use super::*;
use crate::error::Error;

fn sel(s: &str) -> LabelSelector {
    LabelSelector::parse(s).unwrap()
}

fn matches(s: &str, labels: Value) -> bool {
    sel(s).matches(labels.as_object())
}

fn req(key: &str, op: Op) -> Requirement {
    Requirement::new(key, op)
}

#[test]
fn every_form_parses() {
    let s = sel(" env = prod, tier==web,x!=y , k in (a, b),j notin(c),e, !f ");
    assert_eq!(
        s.requirements,
        vec![
            req("env", Op::Equals("prod".into())),
            req("tier", Op::Equals("web".into())),
            req("x", Op::NotEquals("y".into())),
            req("k", Op::In(vec!["a".into(), "b".into()])),
            req("j", Op::NotIn(vec!["c".into()])),
            req("e", Op::Exists),
            req("f", Op::NotExists),
        ]
    );
    assert!(sel("").is_empty());
    assert!(sel("   ").is_empty());
    assert_eq!(sel("example.com/app=x").requirements[0], req("example.com/app", Op::Equals("x".into())));
    assert_eq!(sel("a=").requirements[0], req("a", Op::Equals(String::new())));
}

#[test]
fn kubernetes_documented_examples() {
    // From the Kubernetes "Labels and Selectors" page.
    let prod_fe = json!({"environment": "production", "tier": "frontend"});
    let qa = json!({"environment": "qa", "tier": "frontend"});
    let dev = json!({"environment": "dev"});
    assert!(matches("environment = production", prod_fe.clone()));
    assert!(matches("tier != frontend", dev.clone()));
    assert!(!matches("tier != frontend", qa.clone()));
    assert!(matches("environment=production,tier=frontend", prod_fe.clone()));
    assert!(matches("environment in (production, qa)", qa.clone()));
    assert!(!matches("environment in (production, qa)", dev.clone()));
    assert!(matches("tier notin (frontend, backend)", dev.clone()));
    assert!(matches("partition", json!({"partition": "a"})));
    assert!(matches("!partition", dev.clone()));
    assert!(matches(
        "partition in (customerA, customerB),environment!=qa",
        json!({"partition": "customerA"})
    ));
    assert!(matches("environment,environment notin (frontend)", dev));
}

#[test]
fn absent_labels() {
    let l = json!({"lab-track": "ccna"});
    assert!(matches("missing!=x", l.clone()), "!= holds when the key is absent");
    assert!(matches("missing notin (x)", l.clone()), "notin holds when the key is absent");
    assert!(!matches("missing in (x)", l.clone()));
    assert!(!matches("missing=", l.clone()), "a label with an empty value is not an absent one");
    assert!(!matches("lab-track", json!(null)));
    assert!(matches("", l));
}

#[test]
fn label_errors_point_at_the_position() {
    for (text, pos) in [
        ("a=b c", 4),
        ("a in b", 5),
        ("a in (b", 7),
        ("=x", 0),
        ("a b", 2),
        ("a=b,", 4),
        ("a=-b", 2),
        ("-a=b", 0),
        ("a=b,,c", 4),
        ("a==b=c", 3),
        ("UPPER/x=y", 0),
        ("a in (b c)", 8),
    ] {
        match LabelSelector::parse(text) {
            Err(Error::InvalidSelector { position, expected, .. }) => {
                assert_eq!(position, pos, "{text:?}: {expected}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let long = format!("a={}", "v".repeat(64));
    assert!(LabelSelector::parse(&long).is_err());
}

#[test]
fn field_selectors_on_paths() {
    let doc = json!({
        "metadata": {"name": "w1", "namespace": "labs"},
        "spec": {"lab_track": "ccna", "cpu": 4, "on": true},
        "status": {"phase": "Ready", "ip": null},
    });
    let f = |s: &str| FieldSelector::parse(s).unwrap().matches(&doc);
    assert!(f("status.phase=Ready"));
    assert!(f("status.phase==Ready,metadata.namespace=labs"));
    assert!(f("spec.lab_track!=ccnp"));
    assert!(f("status.phase in (Ready, Draining)"));
    assert!(f("status.phase notin (Pending)"));
    assert!(f("spec.cpu=4,spec.on=true"));
    assert!(f("status.ip="), "null compares as the empty string");
    assert!(f("status.missing="), "absent compares as the empty string");
    assert!(f("status.missing!=x"));
    assert!(!f("status.missing"));
    assert!(f("!status.missing"));
    assert!(f("status.phase"));
    assert!(!f("spec=x"), "objects compare as nothing");
}

#[test]
fn field_values_take_escapes_and_more_characters() {
    let doc = json!({"status": {"ip": "10.0.0.1:80", "msg": "a,b"}});
    assert!(FieldSelector::parse("status.ip=10.0.0.1:80").unwrap().matches(&doc));
    assert!(FieldSelector::parse(r"status.msg=a\,b").unwrap().matches(&doc));
    assert!(FieldSelector::parse("status..phase=x").is_err());
    assert!(FieldSelector::parse("status.phase in Ready").is_err());
}

#[test]
fn a_query_combines_namespace_labels_and_fields() {
    let doc = json!({"metadata": {"namespace": "labs", "labels": {"t": "x"}}, "status": {"phase": "Ready"}});
    let q = Query {
        namespace: Some("labs".into()),
        labels: LabelSelector::parse("t=x").unwrap(),
        fields: FieldSelector::parse("status.phase=Ready").unwrap(),
    };
    assert!(q.matches(&doc));
    assert!(!Query { namespace: Some("other".into()), ..q.clone() }.matches(&doc));
    assert!(Query::default().is_unfiltered());
}

mod properties {
    //! The engine against a plain reference implementation on random labels and selectors.
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "lab-track", "x.io/k"]).prop_map(str::to_owned)
    }

    fn val() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["", "v1", "v2", "ccna"]).prop_map(str::to_owned)
    }

    fn requirement() -> impl Strategy<Value = (String, u8, Vec<String>)> {
        (key(), 0u8..6, prop::collection::vec(val(), 1..3))
    }

    fn render((k, op, vs): &(String, u8, Vec<String>)) -> String {
        match op {
            0 => format!("{k}={}", vs[0]),
            1 => format!("{k} != {}", vs[0]),
            2 => format!("{k} in ({})", vs.join(", ")),
            3 => format!("{k} notin ({})", vs.join(",")),
            4 => k.clone(),
            _ => format!("!{k}"),
        }
    }

    fn reference(labels: &BTreeMap<String, String>, reqs: &[(String, u8, Vec<String>)]) -> bool {
        reqs.iter().all(|(k, op, vs)| {
            let v = labels.get(k);
            match op {
                0 => v == Some(&vs[0]),
                1 => v != Some(&vs[0]),
                2 => v.is_some_and(|v| vs.contains(v)),
                3 => !v.is_some_and(|v| vs.contains(v)),
                4 => v.is_some(),
                _ => v.is_none(),
            }
        })
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(
            labels in prop::collection::btree_map(key(), val(), 0..4),
            reqs in prop::collection::vec(requirement(), 0..4),
        ) {
            let text = reqs.iter().map(render).collect::<Vec<_>>().join(",");
            let selector = LabelSelector::parse(&text).unwrap();
            let json: serde_json::Map<String, Value> =
                labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            prop_assert_eq!(selector.matches(Some(&json)), reference(&labels, &reqs), "{}", text);
        }

        #[test]
        fn never_panics_on_garbage(text in "\\PC{0,40}") {
            let _ = LabelSelector::parse(&text);
            let _ = FieldSelector::parse(&text);
        }
    }
}
