//! Time comparisons: parsing, naive and aware timestamps, an added amount, the round trip of
//! the text, and the informer answering them as a direct read does.

use serde_json::{json, Value};

use super::super::time::Stamp;
use super::super::*;
use crate::error::Error;

fn fields(s: &str) -> FieldSelector {
    FieldSelector::parse(s).unwrap()
}

fn instance(start: Value, minutes: Value) -> Value {
    json!({"metadata": {"name": "i"}, "spec": {"duration_minutes": minutes}, "status": {"start_time": start}})
}

const EXPIRED: &str = "status.start_time+minutes(spec.duration_minutes)<";

#[test]
fn timestamps_as_python_writes_them() {
    let utc = Stamp::parse("2026-12-04T14:00:00+00:00").unwrap();
    assert_eq!(Stamp::parse("2026-12-04T14:00:00Z").unwrap().instant(0), utc.instant(0));
    assert_eq!(Stamp::parse("2026-12-04T15:00:00+01:00").unwrap().instant(0), utc.instant(0));
    assert_eq!(Stamp::parse("2026-12-04 13:30:00-00:30").unwrap().instant(0), utc.instant(0));
    assert_eq!(Stamp::parse("2026-12-04T14:00:00.000001").unwrap().instant(0), utc.instant(0) + 1);
    assert_eq!(Stamp::parse("2026-12-04T14:00").unwrap().instant(0), utc.instant(0));
    // 1970-01-01 is the epoch; a naive time is read in the offset it is given.
    assert_eq!(Stamp::parse("1970-01-01T00:00:00").unwrap().instant(0), 0);
    assert_eq!(Stamp::parse("1970-01-01T01:00:00").unwrap().instant(3_600_000_000), 0);
    for bad in ["", "2026-12-04", "2026-13-04T00:00:00", "2026-02-30T00:00:00", "20261204T000000", "Running"]
    {
        assert!(Stamp::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn before_and_after_a_stored_timestamp() {
    let doc = instance(json!("2026-12-04T14:00:00+00:00"), json!(60));
    assert!(fields("status.start_time<2026-12-04T14:00:01Z").matches(&doc));
    assert!(!fields("status.start_time<2026-12-04T14:00:00Z").matches(&doc));
    assert!(fields("status.start_time>2026-12-04T14:59:59+01:00").matches(&doc));
    // A number bound still compares numbers.
    assert!(fields("spec.duration_minutes<61").matches(&doc));
}

#[test]
fn an_added_amount_of_minutes() {
    let doc = instance(json!("2026-12-04T14:00:00+00:00"), json!(90));
    assert!(fields(&format!("{EXPIRED}2026-12-04T15:30:00.000001Z")).matches(&doc));
    assert!(!fields(&format!("{EXPIRED}2026-12-04T15:30:00Z")).matches(&doc));
    let decimal = instance(json!("2026-12-04T14:00:00Z"), json!(0.5));
    assert!(fields("status.start_time+seconds(spec.duration_minutes)<2026-12-04T14:00:01Z").matches(&decimal));
    assert!(fields("status.start_time+hours(spec.duration_minutes)>2026-12-04T14:29:59Z").matches(&decimal));
}

#[test]
fn a_naive_stored_time_is_read_in_the_bounds_offset() {
    // The service writes datetime.now() (local, naive) and compares with datetime.now().
    let doc = instance(json!("2026-12-04T15:00:00"), json!(60));
    assert!(fields(&format!("{EXPIRED}2026-12-04T16:00:01+01:00")).matches(&doc));
    assert!(!fields(&format!("{EXPIRED}2026-12-04T16:00:00+01:00")).matches(&doc));
    // The same bound in UTC: 15:00 naive is read as 15:00 UTC.
    assert!(!fields(&format!("{EXPIRED}2026-12-04T15:00:01Z")).matches(&doc));
}

#[test]
fn what_is_missing_never_matches() {
    let bound = "2030-01-01T00:00:00Z";
    for doc in [
        instance(Value::Null, json!(60)),
        instance(json!("not a time"), json!(60)),
        instance(json!(1_700_000_000), json!(60)),
        instance(json!("2026-12-04T14:00:00Z"), Value::Null),
        instance(json!("2026-12-04T14:00:00Z"), json!("60")),
        json!({"metadata": {"name": "x"}}),
    ] {
        assert!(!fields(&format!("{EXPIRED}{bound}")).matches(&doc), "{doc}");
    }
    // Without an amount, only the timestamp is needed.
    assert!(fields(&format!("status.start_time<{bound}"))
        .matches(&instance(json!("2026-12-04T14:00:00Z"), Value::Null)));
}

#[test]
fn the_text_round_trips_and_errors_point_at_the_fault() {
    for text in [
        "status.phase=Running,status.start_time+minutes(spec.duration_minutes)<2026-12-04T14:00:00+01:00",
        "status.start_time>2026-12-04T14:00:00Z",
    ] {
        assert_eq!(fields(text).to_string(), text);
        assert_eq!(fields(&fields(text).to_string()), fields(text));
    }
    for (text, position) in [
        ("status.start_time+days(spec.d)<2026-12-04T14:00:00Z", 18),
        ("status.start_time+minutes(spec.d)<20", 34),
        ("status.start_time+minutes(spec.d)=2026-12-04T14:00:00Z", 33),
        ("status.start_time+minutes spec.d<2026-12-04T14:00:00Z", 26),
    ] {
        match FieldSelector::parse(text) {
            Err(Error::InvalidSelector { position: p, .. }) => assert_eq!(p, position, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    // Labels have no time comparisons.
    assert!(LabelSelector::parse("a<2026-12-04T14:00:00Z").is_err());
}
