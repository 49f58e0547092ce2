//! Kubernetes' own label selector tests (`k8s.io/apimachinery/pkg/labels/selector_test.go`),
//! transcribed case by case: what parses there parses here, to the same requirements; what
//! it refuses is refused; what matches matches. Tests of Go functions that have no
//! counterpart here (`Add`, `RequiresExactMatch`, `safeSort`, a requirement built with no
//! values or with two) are left out; the lexer's tests become whole selectors.

use serde_json::{json, Value};

use super::super::*;
use crate::error::Error;

fn parse(text: &str) -> LabelSelector {
    LabelSelector::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn refused(text: &str) {
    match LabelSelector::parse(text) {
        Err(Error::InvalidSelector { position, .. }) => assert!(position <= text.len(), "{text:?}"),
        other => panic!("{text:?} should be refused, got {other:?}"),
    }
}

fn set(labels: &[(&str, &str)]) -> Value {
    Value::Object(labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

fn expect_match(selector: &str, labels: &[(&str, &str)]) {
    assert!(parse(selector).matches(set(labels).as_object()), "{selector:?} should match {labels:?}");
}

fn expect_no_match(selector: &str, labels: &[(&str, &str)]) {
    assert!(!parse(selector).matches(set(labels).as_object()), "{selector:?} should not match {labels:?}");
}

fn r(key: &str, op: Op) -> Requirement {
    Requirement::new(key, op)
}

fn strings(vs: &[&str]) -> Vec<String> {
    vs.iter().map(|v| (*v).to_owned()).collect()
}

fn int(i: i128) -> Num {
    Num::Int(i)
}

/// Kubernetes' parsed form: requirements sorted by key, set values sorted and without
/// repeats (a `sets.String`).
fn normalized(mut requirements: Vec<Requirement>) -> Vec<Requirement> {
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    for r in &mut requirements {
        if let Op::In(vs) | Op::NotIn(vs) = &mut r.op {
            vs.sort();
            vs.dedup();
        }
    }
    requirements
}

#[test]
fn test_selector_parse() {
    for good in ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"] {
        // Kubernetes prints a parsed selector back as its text without the spaces.
        assert_eq!(parse(good).to_string(), good.replace(' ', ""), "{good:?}");
    }
    for bad in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
        refused(bad);
    }
}

#[test]
fn test_deterministic_parse() {
    // Kubernetes sorts requirements by key; here they keep their order, and mean the same.
    let (a, b) = (parse("x=a,a=x"), parse("a=x,x=a"));
    assert_eq!(normalized(a.requirements.clone()), normalized(b.requirements.clone()));
    for labels in [json!({"x": "a", "a": "x"}), json!({"x": "a"}), json!({})] {
        assert_eq!(a.matches(labels.as_object()), b.matches(labels.as_object()));
    }
}

#[test]
fn test_everything() {
    let everything = parse("");
    assert!(everything.matches(set(&[("x", "y")]).as_object()));
    assert!(everything.is_empty());
}

#[test]
fn test_selector_matches() {
    expect_match("", &[("x", "y")]);
    expect_match("x=y", &[("x", "y")]);
    expect_match("x=y,z=w", &[("x", "y"), ("z", "w")]);
    expect_match("x!=y,z!=w", &[("x", "z"), ("z", "a")]);
    expect_match("notin=in", &[("notin", "in")]); // in and notin in exactMatch
    expect_match("x", &[("x", "z")]);
    expect_match("!x", &[("y", "z")]);
    expect_match("x>1", &[("x", "2")]);
    expect_match("x<1", &[("x", "0")]);
    expect_no_match("x=z", &[]);
    expect_no_match("x=y", &[("x", "z")]);
    expect_no_match("x=y,z=w", &[("x", "w"), ("z", "w")]);
    expect_no_match("x!=y,z!=w", &[("x", "z"), ("z", "w")]);
    expect_no_match("x", &[("y", "z")]);
    expect_no_match("!x", &[("x", "z")]);
    expect_no_match("x>1", &[("x", "0")]);
    expect_no_match("x<1", &[("x", "2")]);

    let labelset = [("foo", "bar"), ("baz", "blah")];
    expect_match("foo=bar", &labelset);
    expect_match("baz=blah", &labelset);
    expect_match("foo=bar,baz=blah", &labelset);
    expect_no_match("foo=blah", &labelset);
    expect_no_match("baz=bar", &labelset);
    expect_no_match("foo=bar,foobar=bar,baz=blah", &labelset);
}

#[test]
fn test_set_matches_and_empty_sets() {
    // A dict selector is Kubernetes' SelectorFromSet: equality on each pair.
    let labelset = set(&[("foo", "bar"), ("baz", "blah")]);
    let from = |pairs: &[(&str, &str)]| {
        LabelSelector::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    };
    for pairs in [&[][..], &[("foo", "bar")], &[("baz", "blah")], &[("foo", "bar"), ("baz", "blah")]] {
        assert!(from(pairs).matches(labelset.as_object()), "{pairs:?}");
    }
    // TestNilMapIsValid, TestSetIsEmpty.
    assert!(from(&[]).is_empty());
    assert!(LabelSelector::default().is_empty());
}

#[test]
fn test_lexer_tokens_as_selectors() {
    // TestLexer: each token alone. "in" and "notin" alone are keys (Kubernetes reads them as
    // identifiers where a key is expected), so they select "has the label".
    assert!(parse("").is_empty());
    assert_eq!(parse("notin").requirements, vec![r("notin", Op::Exists)]);
    assert_eq!(parse("in").requirements, vec![r("in", Op::Exists)]);
    for bad in [",", "=", "==", ">", "<", "!", "!=", "(", ")", "~", "||"] {
        refused(bad);
    }
}

#[test]
fn test_lexer_sequence_and_parser_lookahead() {
    let cases: [(&str, Option<Vec<Requirement>>); 11] = [
        ("key in ( value )", Some(vec![r("key", Op::In(strings(&["value"])))])),
        ("key notin ( value )", Some(vec![r("key", Op::NotIn(strings(&["value"])))])),
        ("key in ( value1, value2 )", Some(vec![r("key", Op::In(strings(&["value1", "value2"])))])),
        ("key", Some(vec![r("key", Op::Exists)])),
        ("!key", Some(vec![r("key", Op::NotExists)])),
        ("()", None),
        ("", Some(vec![])),
        ("x in (),y", Some(vec![r("x", Op::In(strings(&[""]))), r("y", Op::Exists)])),
        ("== != (), = notin", None),
        ("key>2", Some(vec![r("key", Op::GreaterThan(int(2)))])),
        ("key<1", Some(vec![r("key", Op::LessThan(int(1)))])),
    ];
    for (text, want) in cases {
        match want {
            Some(want) => assert_eq!(parse(text).requirements, want, "{text:?}"),
            None => refused(text),
        }
    }
}

#[test]
fn test_parse_operator() {
    for good in ["x in (a)", "x=a", "x==a", "x>1", "x<1", "x notin (a)", "x!=a"] {
        parse(good);
    }
    for bad in ["x ! a", "x exists a", "x ( a"] {
        refused(bad);
    }
}

#[test]
fn test_requirement_constructor() {
    // Requirements Kubernetes builds from a key, an operator and values, written as text.
    // Those with no values for `in` or two for `=` cannot be written, so are not here.
    for good in [
        "x3 in (foo)",
        "x4 notin (foo)",
        "x6",
        "!x7",
        "x9 in (bar)",
        "x10 in (bar)",
        "1foo in (bar)",
        "1234 in (bar)",
        "x11>1",
        "x12<6",
        "y>1",
        "z<6",
    ] {
        parse(good);
    }
    let long_key = "a".repeat(254); // breaks the DNS rule that len(key) <= 253
    let long_value = format!("x16={}", "a".repeat(254));
    for bad in [
        "x13>",
        "x14>bar",
        "x15<bar",
        "foo>bar",
        "barz<blah",
        &long_key,
        &long_value,
        "x17=a b",
        "x18 unsupportedOp foo",
    ] {
        refused(bad);
    }
}

#[test]
fn test_to_string() {
    let cases = [
        (
            vec![
                r("x", Op::In(strings(&["abc", "def"]))),
                r("y", Op::NotIn(strings(&["jkl"]))),
                r("z", Op::Exists),
            ],
            "x in (abc,def),y notin (jkl),z",
        ),
        (
            vec![
                r("x", Op::NotIn(strings(&["abc", "def"]))),
                r("y", Op::NotEquals("jkl".into())),
                r("z", Op::NotExists),
            ],
            "x notin (abc,def),y!=jkl,!z",
        ),
        (
            vec![
                r("x", Op::NotIn(strings(&["abc"]))),
                r("y", Op::In(strings(&["jkl", "mno"]))),
                r("z", Op::NotIn(strings(&[""]))),
            ],
            "x notin (abc),y in (jkl,mno),z notin ()",
        ),
        (
            // Kubernetes keeps `==` apart from `=` only to print it back; both mean equality
            // and are one operator here, printed `=`.
            vec![
                r("x", Op::Equals("abc".into())),
                r("y", Op::Equals("jkl".into())),
                r("z", Op::NotEquals("a".into())),
                r("z", Op::Exists),
            ],
            "x=abc,y=jkl,z!=a,z",
        ),
        (
            vec![r("x", Op::GreaterThan(int(2))), r("y", Op::LessThan(int(8))), r("z", Op::Exists)],
            "x>2,y<8,z",
        ),
    ];
    for (requirements, text) in cases {
        let selector = LabelSelector { requirements };
        assert_eq!(selector.to_string(), text);
        assert_eq!(parse(text), selector, "{text:?} parses back");
    }
    assert_eq!(parse("x=abc,y==jkl,z!=a,z").to_string(), "x=abc,y=jkl,z!=a,z");
    refused("x in (abc,def),"); // the invalid case: a trailing ','
}

#[test]
fn test_requirement_selector_matching() {
    let xy = [("x", "foo"), ("y", "baz")];
    expect_match("x in (foo),y notin (alpha)", &xy);
    expect_no_match("x in (foo),y in (alpha)", &xy);
    expect_match("x notin (),y", &[("y", "")]);
    expect_match("!x,y", &[("y", "")]);
    expect_no_match("x notin (),!y", &[("y", "")]);
    expect_no_match("x in ()", &[("y", "baz")]);
    expect_match("z>1", &[("z", "2")]);
    expect_no_match("z>1", &[("z", "v2")]);
}

#[test]
fn test_set_selector_parser() {
    let cases: Vec<(&str, Option<Vec<Requirement>>)> = vec![
        ("", Some(vec![])),
        ("\rx", Some(vec![r("x", Op::Exists)])),
        (
            "this-is-a-dns.domain.com/key-with-dash",
            Some(vec![r("this-is-a-dns.domain.com/key-with-dash", Op::Exists)]),
        ),
        (
            "this-is-another-dns.domain.com/key-with-dash in (so,what)",
            Some(vec![r("this-is-another-dns.domain.com/key-with-dash", Op::In(strings(&["so", "what"])))]),
        ),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            Some(vec![r("0.1.2.domain/99", Op::NotIn(strings(&["10.10.100.1", "tick.tack.clock"])))]),
        ),
        ("foo  in\t (abc)", Some(vec![r("foo", Op::In(strings(&["abc"])))])),
        ("x notin\n (abc)", Some(vec![r("x", Op::NotIn(strings(&["abc"])))])),
        ("x  notin\t\t\t(abc,def)", Some(vec![r("x", Op::NotIn(strings(&["abc", "def"])))])),
        ("x in (abc,def)", Some(vec![r("x", Op::In(strings(&["abc", "def"])))])),
        ("x in (abc,)", Some(vec![r("x", Op::In(strings(&["abc", ""])))])),
        ("x in ()", Some(vec![r("x", Op::In(strings(&[""])))])),
        (
            "x notin (abc,,def),bar,z in (),w",
            Some(vec![
                r("bar", Op::Exists),
                r("w", Op::Exists),
                r("x", Op::NotIn(strings(&["abc", "", "def"]))),
                r("z", Op::In(strings(&[""]))),
            ]),
        ),
        ("x,y in (a)", Some(vec![r("x", Op::Exists), r("y", Op::In(strings(&["a"])))])),
        ("x=a", Some(vec![r("x", Op::Equals("a".into()))])),
        ("x>1", Some(vec![r("x", Op::GreaterThan(int(1)))])),
        ("x<7", Some(vec![r("x", Op::LessThan(int(7)))])),
        ("x=a,y!=b", Some(vec![r("x", Op::Equals("a".into())), r("y", Op::NotEquals("b".into()))])),
        (
            "x=a,y!=b,z in (h,i,j)",
            Some(vec![
                r("x", Op::Equals("a".into())),
                r("y", Op::NotEquals("b".into())),
                r("z", Op::In(strings(&["h", "i", "j"]))),
            ]),
        ),
        ("x=a||y=b", None),
        ("x,,y", None),
        (",x,y", None),
        ("x nott in (y)", None),
        ("x notin ( )", Some(vec![r("x", Op::NotIn(strings(&[""])))])),
        ("x notin (, a)", Some(vec![r("x", Op::NotIn(strings(&["", "a"])))])),
        ("a in (xyz),", None),
        ("a in (xyz)b notin ()", None),
        ("a ", Some(vec![r("a", Op::Exists)])),
        // The operator words inside a list of values are values.
        ("a in (x,y,notin, z,in)", Some(vec![r("a", Op::In(strings(&["in", "notin", "x", "y", "z"])))])),
        ("a in (xyz abc)", None), // no comma
        ("a notin(", None),       // bad formed
        ("a (", None),            // cpar
        ("(", None),              // opar
    ];
    for (text, want) in cases {
        match want {
            Some(want) => assert_eq!(normalized(parse(text).requirements), normalized(want), "{text:?}"),
            None => refused(text),
        }
    }
}

#[test]
fn greater_and_less_than_read_integers_as_strconv_parse_int() {
    // The value after `>`/`<` is a label value that `strconv.ParseInt(v, 10, 64)` reads.
    assert_eq!(parse("x>01").requirements, vec![r("x", Op::GreaterThan(int(1)))]);
    assert_eq!(
        parse(&format!("x<{}", i64::MAX)).requirements,
        vec![r("x", Op::LessThan(int(i64::MAX.into())))]
    );
    for (text, position) in [
        ("x<a", 2),
        ("x>1.5", 2),
        ("x>-1", 2), // not a label value (alphanumeric at both ends)
        ("x>+1", 2),
        ("x>", 2),
        ("x>,y", 2),
        ("x>9223372036854775808", 2), // over i64
        ("x>=1", 2),
        ("x > 1 2", 6),
        ("x>1 y", 4),
    ] {
        match LabelSelector::parse(text) {
            Err(Error::InvalidSelector { position: p, expected, .. }) => {
                assert_eq!(p, position, "{text:?}: {expected}")
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // A label's value is read the same way at match time; absent or not an integer: no match.
    expect_match("x < 10", &[("x", "-2")]);
    expect_match("x<10", &[("x", "+9")]);
    expect_match("x>9223372036854775806", &[("x", "9223372036854775807")]);
    expect_no_match("x>1", &[]);
    expect_no_match("x<1", &[("y", "0")]);
    for not_an_integer in ["", "1.5", "0x10", "1e3", " 2", "99999999999999999999", "two"] {
        expect_no_match("x<100", &[("x", not_an_integer)]);
        expect_no_match("x>0", &[("x", not_an_integer)]);
    }
    // A label stored as a JSON number is its text.
    assert!(parse("x>1").matches(json!({"x": 2}).as_object()));
    assert!(!parse("x>1").matches(json!({"x": 2.5}).as_object()));
    assert!(!parse("x<1").matches(json!({"x": null}).as_object()));
    assert!(parse("x>1,x<3").matches(set(&[("x", "2")]).as_object()));
    assert!(!parse("x>1,x<2").matches(set(&[("x", "2")]).as_object()));
}

#[test]
fn white_space_is_what_kubernetes_skips() {
    assert_eq!(parse(" \t\r\nx \t\r\n= \t\r\ny \t\r\n").requirements, vec![r("x", Op::Equals("y".into()))]);
    // Other white space is part of a key or a value, where it is not allowed.
    refused("\u{a0}x=y");
    refused("x=y\u{a0}");
    refused("x=\u{b}y");
}
