//! Which watched changes trigger a reconcile. A change passes when any of the controller's
//! predicates says so; creations and deletions always pass, and so does a change whose
//! document could not be read (the reconcile then finds what the cache holds).
//!
//! - `Generation` (the default): `metadata.generation` changed (the repository bumps it when
//!   `spec` changes, never for status), or `deletion_timestamp` did (a delete held by
//!   finalizers); for documents without a generation, a change of `spec`. Status-only writes,
//!   a reconciler's own included, trigger nothing.
//! - `Labels`, `Annotations`, `Finalizers`: that part of `metadata` changed.
//! - `Field(path)` (`"field:status.phase"`): the value at that dotted path changed (a
//!   custom predicate evaluated here, on the decoded documents, with no Python call per
//!   change).
//! - `Any`: every change.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::selector::lookup;
use crate::watch::{Change, ChangeType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    Generation,
    Labels,
    Annotations,
    Finalizers,
    Field(String),
    Any,
}

impl Predicate {
    /// From its name: `generation`, `labels`, `annotations`, `finalizers`, `any`, or
    /// `field:<path>`.
    pub fn parse(name: &str) -> Result<Self> {
        if let Some(path) = name.strip_prefix("field:") {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return Err(Error::invalid(format!(
                    "{name:?}: field: needs a dotted path, as field:status.phase"
                )));
            }
            return Ok(Predicate::Field(path.to_owned()));
        }
        Ok(match name {
            "generation" => Predicate::Generation,
            "labels" => Predicate::Labels,
            "annotations" => Predicate::Annotations,
            "finalizers" => Predicate::Finalizers,
            "any" => Predicate::Any,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown predicate {name:?}: generation, labels, annotations, finalizers, any or field:<path>"
                )))
            }
        })
    }

    fn passes(&self, before: &Value, after: &Value) -> bool {
        let meta = |doc: &Value, field: &str| doc.get("metadata").and_then(|m| m.get(field)).cloned();
        let changed = |field: &str| meta(before, field) != meta(after, field);
        match self {
            Predicate::Any => true,
            Predicate::Labels => changed("labels"),
            Predicate::Annotations => changed("annotations"),
            Predicate::Finalizers => changed("finalizers"),
            Predicate::Field(path) => lookup(before, path) != lookup(after, path),
            Predicate::Generation => {
                let no_generation =
                    meta(before, "generation").is_none() && meta(after, "generation").is_none();
                changed("generation")
                    || changed("deletion_timestamp")
                    || (no_generation && before.get("spec") != after.get("spec"))
            }
        }
    }
}

/// Whether `change` (as a watcher without a query sees it) triggers a reconcile.
pub fn triggers(predicates: &[Predicate], change: &Change) -> bool {
    match change.kind {
        ChangeType::Bookmark => false,
        ChangeType::Added | ChangeType::Deleted => true,
        ChangeType::Modified => match (&change.previous, &change.value) {
            (Some(before), Some(after)) => predicates.iter().any(|p| p.passes(before, after)),
            _ => true,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn modified(before: Value, after: Value) -> Change {
        Change {
            kind: ChangeType::Modified,
            key: "/p/a".into(),
            value: Some(after),
            previous: Some(before),
            revision: 2,
            error: None,
        }
    }

    #[test]
    fn generation_ignores_status_and_sees_spec_and_deletion() {
        let base =
            json!({"metadata": {"name": "a", "generation": 1}, "spec": {"x": 1}, "status": {"p": "A"}});
        let mut status = base.clone();
        status["status"]["p"] = json!("B");
        let mut spec = base.clone();
        spec["metadata"]["generation"] = json!(2);
        spec["spec"]["x"] = json!(2);
        let mut deleting = base.clone();
        deleting["metadata"]["deletion_timestamp"] = json!("2026-01-01T00:00:00Z");
        let p = [Predicate::Generation];
        assert!(!triggers(&p, &modified(base.clone(), status.clone())));
        assert!(triggers(&p, &modified(base.clone(), spec)));
        assert!(triggers(&p, &modified(base.clone(), deleting)));
        assert!(triggers(&[Predicate::Any], &modified(base.clone(), status)));
        let unversioned = json!({"metadata": {"name": "a"}, "spec": {"x": 1}});
        let mut respecced = unversioned.clone();
        respecced["spec"]["x"] = json!(3);
        assert!(triggers(&p, &modified(unversioned, respecced)));
    }

    #[test]
    fn metadata_predicates_see_their_own_part() {
        let base = json!({"metadata": {"name": "a", "generation": 1, "labels": {"l": "1"}}});
        let mut labelled = base.clone();
        labelled["metadata"]["labels"]["l"] = json!("2");
        let mut annotated = base.clone();
        annotated["metadata"]["annotations"] = json!({"a": "b"});
        let mut finalized = base.clone();
        finalized["metadata"]["finalizers"] = json!(["x"]);
        assert!(!triggers(&[Predicate::Generation], &modified(base.clone(), labelled.clone())));
        assert!(triggers(&[Predicate::Labels], &modified(base.clone(), labelled.clone())));
        assert!(!triggers(&[Predicate::Labels], &modified(base.clone(), annotated.clone())));
        assert!(triggers(&[Predicate::Annotations], &modified(base.clone(), annotated)));
        assert!(triggers(&[Predicate::Finalizers], &modified(base.clone(), finalized.clone())));
        assert!(triggers(&[Predicate::Generation, Predicate::Finalizers], &modified(base, finalized)));
        assert!(Predicate::parse("spec").is_err());
        assert!(Predicate::parse("field:").is_err() && Predicate::parse("field:status..phase").is_err());
    }

    #[test]
    fn a_field_predicate_sees_its_path_only() {
        let base =
            json!({"metadata": {"name": "a", "generation": 1}, "status": {"phase": "Pending", "n": 1}});
        let mut phase = base.clone();
        phase["status"]["phase"] = json!("Ready");
        let mut count = base.clone();
        count["status"]["n"] = json!(2);
        let p = [Predicate::parse("field:status.phase").expect("a field predicate")];
        assert!(triggers(&p, &modified(base.clone(), phase)));
        assert!(!triggers(&p, &modified(base, count)));
    }
}
