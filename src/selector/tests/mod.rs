use serde_json::{json, Value};

use super::*;
use crate::error::Error;

mod kubernetes;
mod time;

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
fn field_numbers_compare_as_numbers() {
    let doc = json!({
        "status": {
            "active_lab_count": 12,
            "capacity": {"allocated_cpu_cores": 8.5, "whole": 8.0, "big": 9007199254740993u64},
            "text": "5",
            "on": true,
            "gone": null,
            "list": [1],
            "neg": -3,
        },
    });
    let f = |s: &str| FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")).matches(&doc);
    assert!(f("status.active_lab_count<20"));
    assert!(!f("status.active_lab_count<12"));
    assert!(f("status.active_lab_count>11.5"), "an int field against a decimal");
    assert!(!f("status.active_lab_count>12.0"));
    assert!(f("status.capacity.allocated_cpu_cores>8"), "a decimal field against an int");
    assert!(!f("status.capacity.allocated_cpu_cores>8.5"));
    assert!(f("status.capacity.allocated_cpu_cores>7.5"));
    assert!(f("status.capacity.allocated_cpu_cores < 1e1"));
    assert!(!f("status.capacity.whole>8") && !f("status.capacity.whole<8"), "8.0 is 8");
    assert!(f("status.capacity.big>9007199254740992"), "integers compare exactly");
    assert!(f("status.neg<-2") && f("status.neg>-3.5") && !f("status.neg>-3"));
    assert!(f("status.active_lab_count>1,status.active_lab_count<13,status.neg<0"), "comma is AND");
    assert!(!f("status.active_lab_count>1,status.neg>0"));
    for not_a_number in ["text", "on", "gone", "list", "capacity", "missing", "missing.deeper"] {
        assert!(!f(&format!("status.{not_a_number}>-1000")), "{not_a_number}");
        assert!(!f(&format!("status.{not_a_number}<1000")), "{not_a_number}");
    }
    // Equality still compares the JSON text.
    assert!(f("status.active_lab_count=12") && !f("status.capacity.whole=8"));
}

#[test]
fn field_numbers_are_refused_where_they_are_not_numbers() {
    for (text, position) in [
        ("status.n>abc", 9),
        ("status.n>", 9),
        ("status.n<,a=b", 9),
        ("status.n > 1.5.5", 11),
        ("status.n>.5", 9),
        ("status.n>5.", 9),
        ("status.n>1e", 9),
        ("status.n>1e999", 9), // not finite
        ("status.n>+1", 9),
        ("status.n>0x10", 9),
        ("status.n>NaN", 9),
        ("status.n>inf", 9),
        ("status.n>=1", 9),
        ("status.n>1 2", 11),
        ("a=b,status.n<x", 13),
    ] {
        match FieldSelector::parse(text) {
            Err(Error::InvalidSelector { position: p, expected, .. }) => {
                assert_eq!(p, position, "{text:?}");
                assert!(expected.contains("number") || expected.contains("','"), "{text:?}: {expected}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    let ok = |s: &str| FieldSelector::parse(s).unwrap().requirements;
    assert_eq!(ok("a>-3"), vec![req("a", Op::GreaterThan(Num::Int(-3)))]);
    assert_eq!(ok("a<7.5"), vec![req("a", Op::LessThan(Num::Float(7.5)))]);
    assert_eq!(ok("a<1E3"), vec![req("a", Op::LessThan(Num::Int(1000)))]);
    assert_eq!(ok("a>18446744073709551615"), vec![req("a", Op::GreaterThan(Num::Int(u64::MAX.into())))]);
    assert_eq!(ok("a>007"), vec![req("a", Op::GreaterThan(Num::Int(7)))]);
}

#[test]
fn numbers_order_exactly() {
    use std::cmp::Ordering::*;
    let two_53 = 9_007_199_254_740_992i128;
    for (a, b, want) in [
        (Num::Int(8), Num::Float(8.0), Equal),
        (Num::Int(8), Num::Float(8.5), Less),
        (Num::Int(-8), Num::Float(-8.5), Greater),
        (Num::Int(-1), Num::Float(-0.5), Less),
        (Num::Int(0), Num::Float(-0.0), Equal),
        (Num::Float(0.0), Num::Float(-0.0), Equal),
        (Num::Int(two_53 + 1), Num::Float(two_53 as f64), Greater),
        (Num::Int(u64::MAX.into()), Num::Float(18_446_744_073_709_551_616.0), Less),
        (Num::Int(i64::MIN.into()), Num::Float(-1e30), Greater),
        (Num::Int(i64::MIN.into()), Num::Int(u64::MAX.into()), Less),
        (Num::Float(1e300), Num::Int(u64::MAX.into()), Greater),
    ] {
        assert_eq!(a.cmp(&b), want, "{a} vs {b}");
        assert_eq!(b.cmp(&a), want.reverse(), "{b} vs {a}");
    }
    assert_eq!(Num::parse_decimal("7.5"), Some(Num::Float(7.5)));
    assert_eq!(Num::parse_decimal("-0"), Some(Num::Int(0)));
    assert_eq!(Num::of_label("+9"), Some(Num::Int(9)));
    assert_eq!(Num::of_label("1.0"), None);
    assert_eq!(Num::of_json(&json!("1")), None);
    assert_eq!(Num::of_json(&json!(1.5)), Some(Num::Float(1.5)));
}

#[test]
fn field_selectors_print_back_to_themselves() {
    for text in [r"status.msg=a\,b\ c\(d\)\\e", "status.n>7.5,spec.x in (a,b),!status.gone", "a<-3"] {
        let parsed = FieldSelector::parse(text).unwrap();
        assert_eq!(parsed.to_string(), text);
        assert_eq!(FieldSelector::parse(&parsed.to_string()).unwrap(), parsed);
    }
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
        prop::sample::select(vec!["", "v1", "v2", "ccna", "0", "7", "10", "007"]).prop_map(str::to_owned)
    }

    fn bound() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["0", "7", "9", "10"]).prop_map(str::to_owned)
    }

    fn requirement() -> impl Strategy<Value = (String, u8, Vec<String>)> {
        prop_oneof![
            (key(), 0u8..6, prop::collection::vec(val(), 1..3)),
            (key(), 6u8..8, bound().prop_map(|b| vec![b])),
        ]
    }

    fn render((k, op, vs): &(String, u8, Vec<String>)) -> String {
        match op {
            0 => format!("{k}={}", vs[0]),
            1 => format!("{k} != {}", vs[0]),
            2 => format!("{k} in ({})", vs.join(", ")),
            3 => format!("{k} notin ({})", vs.join(",")),
            4 => k.clone(),
            5 => format!("!{k}"),
            6 => format!("{k}>{}", vs[0]),
            _ => format!("{k} < {}", vs[0]),
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
                5 => v.is_none(),
                op => {
                    let (Some(v), Ok(b)) = (v, vs[0].parse::<i64>()) else { return false };
                    v.parse::<i64>().is_ok_and(|v| if *op == 6 { v > b } else { v < b })
                }
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
