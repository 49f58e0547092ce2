//! Stored documents: decoding JSON or YAML bytes into one normal shape, encoding in the
//! repository's format, and the metadata fields the repository manages.
//!
//! The normal shape is Neuroglia's `Resource.to_dict()`: top-level `apiVersion`, `kind`,
//! `metadata` (snake_case keys), `spec`, `status`. Reads accept camelCase metadata keys
//! (`resourceVersion`, `creationTimestamp`, ...) and `api_version`, so documents written by
//! Kubernetes tools or earlier versions read the same.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The encoding a repository writes. Reads detect the encoding of each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Yaml,
}

impl Format {
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            other => Err(Error::invalid(format!("unknown format {other:?}; use \"json\" or \"yaml\""))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

/// Whether stored bytes are a JSON object (else they are read as YAML).
pub fn is_json_object(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Decode stored bytes (JSON or YAML) into a document object.
pub fn decode(key: &str, bytes: &[u8]) -> Result<Value> {
    let value: Value = if is_json_object(bytes) {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::serialization(Some(key), format!("invalid JSON: {e}")))?
    } else {
        serde_yaml_ng::from_slice(bytes)
            .map_err(|e| Error::serialization(Some(key), format!("neither JSON nor valid YAML: {e}")))?
    };
    if !value.is_object() {
        return Err(Error::serialization(Some(key), "the stored document is not an object"));
    }
    Ok(value)
}

/// Encode a document in `format`.
pub fn encode(key: &str, doc: &Value, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Json => serde_json::to_vec(doc).map_err(|e| Error::serialization(Some(key), e)),
        Format::Yaml => serde_yaml_ng::to_string(doc)
            .map(String::into_bytes)
            .map_err(|e| Error::serialization(Some(key), e)),
    }
}

/// `resourceVersion` -> `resource_version`.
pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bring a decoded document to the normal shape (see the module doc).
pub fn normalize(doc: &mut Value) {
    let Some(obj) = doc.as_object_mut() else {
        return;
    };
    if !obj.contains_key("apiVersion") {
        if let Some(v) = obj.remove("api_version") {
            obj.insert("apiVersion".into(), v);
        }
    }
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        if meta.keys().any(|k| k.bytes().any(|b| b.is_ascii_uppercase())) {
            let old = std::mem::take(meta);
            for (k, v) in old {
                let k = if k.bytes().any(|b| b.is_ascii_uppercase()) { snake_case(&k) } else { k };
                meta.entry(k).or_insert(v);
            }
        }
    }
}

/// The `metadata` object, created if missing. Fails when `metadata` is not an object.
pub fn metadata_mut(doc: &mut Value) -> Result<&mut Map<String, Value>> {
    let obj = doc.as_object_mut().ok_or_else(|| Error::invalid("a resource must be an object"))?;
    let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    meta.as_object_mut().ok_or_else(|| Error::invalid("metadata must be an object"))
}

/// A string field of `metadata`, if present and a string.
pub fn meta_str<'a>(doc: &'a Value, field: &str) -> Option<&'a str> {
    doc.get("metadata")?.get(field)?.as_str()
}

/// The labels of a document (empty when absent).
pub fn labels(doc: &Value) -> Option<&Map<String, Value>> {
    doc.get("metadata")?.get("labels")?.as_object()
}

/// The finalizers of a document.
pub fn finalizers(doc: &Value) -> Vec<String> {
    doc.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// `metadata.resource_version` as etcd's mod_revision: a string of digits, or absent.
pub fn resource_version(doc: &Value) -> Result<Option<i64>> {
    match doc.get("metadata").and_then(|m| m.get("resource_version")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| Error::invalid(format!("resource_version must be a revision number, got {s:?}"))),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("resource_version must be a revision number, got {n}"))),
        Some(other) => Err(Error::invalid(format!("resource_version must be a string, got {other}"))),
    }
}

/// Set `metadata.resource_version` to a mod_revision.
pub fn set_resource_version(doc: &mut Value, revision: i64) {
    if let Ok(meta) = metadata_mut(doc) {
        meta.insert("resource_version".into(), Value::String(revision.to_string()));
    }
}

/// Decode a stored key-value into the normal shape with its resource_version.
pub fn read(key: &str, bytes: &[u8], mod_revision: i64) -> Result<Value> {
    let mut doc = decode(key, bytes)?;
    normalize(&mut doc);
    set_resource_version(&mut doc, mod_revision);
    Ok(doc)
}

/// [`read`] for a key-value from the store.
pub fn read_kv(kv: &crate::store::KeyValue) -> Result<Value> {
    read(&String::from_utf8_lossy(&kv.key), &kv.value, kv.mod_revision)
}

/// The current time as ISO 8601 text in UTC, the way Python's `isoformat()` writes it.
pub fn now_iso() -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    now.format(&format).unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_json_and_yaml_alike() {
        let j = read("k", br#"{"kind":"LabWorker","metadata":{"name":"a"}}"#, 7).unwrap();
        let y = read("k", b"kind: LabWorker\nmetadata:\n  name: a\n", 7).unwrap();
        assert_eq!(j, y);
        assert_eq!(meta_str(&j, "resource_version"), Some("7"));
    }

    #[test]
    fn camel_case_metadata_becomes_snake_case() {
        let doc = read(
            "k",
            br#"{"api_version":"v1","metadata":{"name":"a","creationTimestamp":"t","resourceVersion":"3","labels":{"labTrack":"x"}}}"#,
            9,
        )
        .unwrap();
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["metadata"]["creation_timestamp"], "t");
        assert_eq!(doc["metadata"]["resource_version"], "9", "the stored version never wins");
        assert_eq!(doc["metadata"]["labels"]["labTrack"], "x", "labels are user data, untouched");
    }

    #[test]
    fn garbage_is_a_serialization_error_naming_the_key() {
        for bad in [&b"{not json"[..], b"- a list", b"\"text\"", b"[1]"] {
            let err = read("/w/bad", bad, 1).unwrap_err();
            assert!(matches!(&err, Error::Serialization { key: Some(k), .. } if k == "/w/bad"), "{err}");
        }
    }

    #[test]
    fn yaml_round_trips() {
        let doc = json!({"kind": "LabWorker", "spec": {"n": 3, "tags": ["a", "b"], "x": null}});
        let bytes = encode("k", &doc, Format::Yaml).unwrap();
        assert!(!bytes.starts_with(b"{"));
        assert_eq!(decode("k", &bytes).unwrap(), doc);
    }

    #[test]
    fn resource_versions_parse_strictly() {
        assert_eq!(resource_version(&json!({"metadata": {"resource_version": "12"}})).unwrap(), Some(12));
        assert_eq!(resource_version(&json!({"metadata": {}})).unwrap(), None);
        assert!(resource_version(&json!({"metadata": {"resource_version": "v1"}})).is_err());
    }

    #[test]
    fn timestamps_look_like_python_isoformat() {
        let t = now_iso();
        assert_eq!(t.len(), "2026-11-26T06:21:28.123456+00:00".len(), "{t}");
        assert!(t.ends_with("+00:00"));
    }
}
