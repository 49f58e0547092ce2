//! What the runtime writes for a reconciler: its finalizer and its status, each a
//! compare-and-swap on the stored resource, re-read and re-applied when another writer got
//! there first (a spec edit meanwhile never fails a status write, nor is it undone by one).
//!
//! - [`record`] writes `status.observed_generation` (the generation the reconcile saw, on success)
//!   and the `Reconciled` condition (`True` after `done`/`requeue`, `False` with the error
//!   after `retry`/`terminal`; `last_transition` moves only when its status flips). The
//!   condition has the fields of the service's own condition class (`type`, `status`,
//!   `last_transition`, `reason`, `message`), so typed reads rebuild it. Nothing is written
//!   when nothing changes.
//! - [`set_finalizer`] adds or removes one finalizer; removing the last one from a resource
//!   being deleted deletes it (the repository's rule).
//! - [`write_status`] puts a whole `status` onto the stored resource (for hosts whose
//!   reconcilers edit the status in memory).

use serde_json::{json, Map, Value};

use crate::document;
use crate::error::{Error, Result};
use crate::repository::Repository;

/// How many times an edit re-reads after losing a compare-and-swap.
const CONFLICT_RETRIES: usize = 16;

/// The condition the runtime keeps.
pub const RECONCILED: &str = "Reconciled";

/// What an edit did.
#[derive(Debug, Clone, PartialEq)]
pub enum Edited {
    /// Written; the stored document (or `None`: the write deleted it, its last finalizer gone).
    Written(Option<Value>),
    /// Nothing to change; the stored document.
    Unchanged(Value),
    /// The resource is gone.
    Gone,
}

/// The name and namespace of `key` in `repo`.
fn name_of<'a>(repo: &Repository, key: &'a str) -> Result<(&'a str, Option<&'a str>)> {
    let rest = key
        .strip_prefix(repo.config().prefix.as_str())
        .ok_or_else(|| Error::invalid(format!("{key:?} is not under {:?}", repo.config().prefix)))?;
    match rest.split_once('/') {
        Some((namespace, name)) if repo.config().namespaced => Ok((name, Some(namespace))),
        _ => Ok((rest, None)),
    }
}

/// Read `key`, apply `change` (which says whether it changed anything), write it with a
/// compare-and-swap; on a conflict, read again and re-apply.
pub async fn edit(
    repo: &Repository,
    key: &str,
    mut change: impl FnMut(&mut Value) -> Result<bool>,
) -> Result<Edited> {
    let (name, namespace) = name_of(repo, key)?;
    let mut last = None;
    for _ in 0..CONFLICT_RETRIES {
        let Some(mut doc) = repo.get(name, namespace).await? else { return Ok(Edited::Gone) };
        let before = doc.clone();
        if !change(&mut doc)? {
            return Ok(Edited::Unchanged(before));
        }
        let deletes = is_deleting(&doc) && document::finalizers(&doc).is_empty();
        match repo.update(doc).await {
            Ok(doc) => return Ok(Edited::Written(if deletes { None } else { Some(doc) })),
            Err(Error::NotFound { .. }) => return Ok(Edited::Gone),
            Err(e @ Error::Conflict { .. }) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(Error::Conflict { key: key.to_owned(), expected: 0, actual: None }))
}

fn is_deleting(doc: &Value) -> bool {
    doc.get("metadata").and_then(|m| m.get("deletion_timestamp")).is_some_and(|v| !v.is_null())
}

/// The `status` object, made one if absent or `null`.
fn status_mut(doc: &mut Value) -> Result<&mut Map<String, Value>> {
    let obj = doc.as_object_mut().ok_or_else(|| Error::invalid("a resource must be an object"))?;
    let status = obj.entry("status").or_insert_with(|| json!({}));
    if status.is_null() {
        *status = json!({});
    }
    status.as_object_mut().ok_or_else(|| Error::invalid("status must be an object"))
}

/// One reconcile's result, as [`record`] writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    /// The generation the reconcile saw.
    pub generation: Option<i64>,
    pub ok: bool,
    pub reason: String,
    pub message: Option<String>,
}

/// Set `observed_generation` (on success) and the `Reconciled` condition on `doc`; whether
/// anything changed. `now` stamps a transition.
pub fn apply_reconciled(doc: &mut Value, r: &Reconciled, now: &str) -> Result<bool> {
    let status = status_mut(doc)?;
    let mut changed = false;
    if let (true, Some(generation)) = (r.ok, r.generation) {
        if status.get("observed_generation") != Some(&json!(generation)) {
            status.insert("observed_generation".into(), json!(generation));
            changed = true;
        }
    }
    let conditions = status.entry("conditions").or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Value::Array(conditions) = conditions else { return Ok(changed) };
    let flag = if r.ok { "True" } else { "False" };
    let wanted = |c: &Value| {
        c.get("status").and_then(Value::as_str) == Some(flag)
            && c.get("reason").and_then(Value::as_str) == Some(r.reason.as_str())
            && c.get("message").and_then(Value::as_str) == r.message.as_deref()
    };
    let at = conditions.iter().position(|c| c.get("type").and_then(Value::as_str) == Some(RECONCILED));
    match at {
        Some(i) if wanted(&conditions[i]) => Ok(changed),
        Some(i) => {
            let flipped = conditions[i].get("status").and_then(Value::as_str) != Some(flag);
            let transition = match conditions[i].get("last_transition") {
                Some(t) if !flipped => t.clone(),
                _ => json!(now),
            };
            conditions[i] = condition(flag, r, transition);
            Ok(true)
        }
        None => {
            conditions.push(condition(flag, r, json!(now)));
            Ok(true)
        }
    }
}

fn condition(flag: &str, r: &Reconciled, transition: Value) -> Value {
    json!({"type": RECONCILED, "status": flag, "last_transition": transition, "reason": r.reason, "message": r.message})
}

/// Write `r` onto the stored resource (see the module doc).
pub async fn record(repo: &Repository, key: &str, r: &Reconciled) -> Result<Edited> {
    let now = document::now_iso();
    edit(repo, key, |doc| apply_reconciled(doc, r, &now)).await
}

/// Add (`present`) or remove the finalizer `name`.
pub async fn set_finalizer(repo: &Repository, key: &str, name: &str, present: bool) -> Result<Edited> {
    edit(repo, key, |doc| {
        let meta = document::metadata_mut(doc)?;
        let list = meta.entry("finalizers").or_insert_with(|| json!([]));
        if !list.is_array() {
            *list = json!([]);
        }
        let Value::Array(list) = list else { return Ok(false) };
        let has = list.iter().any(|f| f.as_str() == Some(name));
        match (present, has) {
            (true, false) => list.push(json!(name)),
            (false, true) => list.retain(|f| f.as_str() != Some(name)),
            _ => return Ok(false),
        }
        Ok(true)
    })
    .await
}

/// Put `status` onto the stored resource.
pub async fn write_status(repo: &Repository, key: &str, status: &Value) -> Result<Edited> {
    edit(repo, key, |doc| {
        let obj = doc.as_object_mut().ok_or_else(|| Error::invalid("a resource must be an object"))?;
        if obj.get("status") == Some(status) {
            return Ok(false);
        }
        obj.insert("status".into(), status.clone());
        Ok(true)
    })
    .await
}

#[cfg(test)]
mod tests;
