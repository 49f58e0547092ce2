//! The one error type of the core, and the `Result` alias every module uses.
//!
//! The PyO3 layer maps each variant to a Python exception class named by [`Error::kind`]
//! (`src/py/errors.rs`); the mapping of names is tested here, without Python.

use std::fmt;

/// Result of every fallible operation of the core.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong, with the structured fields the Python exceptions carry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The key does not exist (used where absence is an error, never by `get`).
    #[error("{key:?} not found")]
    NotFound { key: String },
    /// A create found the key already present.
    #[error("{key:?} already exists")]
    AlreadyExists { key: String },
    /// A compare-and-swap found another version than the one expected.
    #[error("conflict on {key:?}: expected resource_version {expected}, found {}", Actual(*actual))]
    Conflict {
        key: String,
        expected: i64,
        /// The key's mod_revision now, `None` when the key is gone.
        actual: Option<i64>,
    },
    /// A fenced write (see `store::fence`) found its holder's record gone or attached to
    /// another lease: the shard it was made for is another replica's now. Nothing written.
    #[error("{key:?} not written: this replica no longer holds {fence:?} (its lease was lost, and the shard may be another replica's)")]
    Fenced { key: String, fence: String },
    /// etcd could not be reached, or answered that it cannot serve (no leader, shutting down).
    #[error("etcd unavailable: {message}")]
    Unavailable { message: String, code: Option<String> },
    /// etcd's database is full (its `NOSPACE` alarm): writes are refused until an operator
    /// frees space and disarms the alarm. Not a lost connection: never retried.
    #[error(
        "etcd's database is full (NOSPACE alarm: {message}); writes are refused until an operator \
         compacts and defragments etcd and disarms the alarm (`etcdctl alarm disarm`), or raises \
         --quota-backend-bytes; reads, watches and deletes still work"
    )]
    QuotaExceeded { message: String, code: Option<String> },
    /// The call did not complete within its deadline.
    #[error("etcd did not answer {operation} within {seconds}s")]
    Timeout { operation: String, seconds: f64 },
    /// The revision asked for was compacted: relist, then watch from the new revision.
    #[error("revision {requested} was compacted (compact revision {compacted}); relist and watch again")]
    Expired { requested: i64, compacted: i64 },
    /// A watcher that did not read its events: more than `backlog` waited for it, so it was
    /// ended (the others sharing its etcd watch go on). Every change up to `revision` was
    /// delivered to it: watch again after that revision (or relist).
    #[error(
        "the watcher fell behind: more than {backlog} events waited unread, so it was ended; \
         watch again after resource_version {revision} (or list again)"
    )]
    FellBehind { revision: i64, backlog: usize },
    /// A resource name or namespace that Kubernetes would refuse.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// A label or field selector that does not parse.
    #[error("invalid selector {selector:?} at position {position}: expected {expected}")]
    InvalidSelector { selector: String, position: usize, expected: String },
    /// Any other argument the caller got wrong.
    #[error("{message}")]
    InvalidArgument { message: String },
    /// A document too large for etcd's request limit, refused before sending.
    #[error("{key:?} is {size} bytes encoded, over the limit of {limit} bytes")]
    TooLarge { key: String, size: usize, limit: usize },
    /// A value that cannot be encoded, or stored bytes that cannot be decoded.
    #[error("{}{message}", key.as_deref().map(|k| format!("{k:?}: ")).unwrap_or_default())]
    Serialization { key: Option<String>, message: String },
    /// etcd refused the credentials or the permission.
    #[error("permission denied: {message}")]
    PermissionDenied { message: String, code: Option<String> },
    /// The client was closed; no further calls are possible.
    #[error("the client is closed")]
    Closed,
    /// A client (or a repository, watch, cache or lease of one) made in another process, of
    /// which this one is a fork: its connections and the threads that served them are the
    /// parent's.
    #[error(
        "EtcdClient made in process {pid} before a fork, used in process {here}: make a new client in this process"
    )]
    Forked { pid: u32, here: u32 },
    /// Any other error etcd answered with.
    #[error("etcd error: {message}")]
    Etcd { message: String, code: Option<String> },
}

struct Actual(Option<i64>);

impl fmt::Display for Actual {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "{v}"),
            None => f.write_str("no resource"),
        }
    }
}

impl Error {
    /// The name of the Python exception class for this error (`etcd_resources.<kind>`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NotFoundError",
            Error::AlreadyExists { .. } => "AlreadyExistsError",
            Error::Conflict { .. } => "ConflictError",
            Error::Fenced { .. } => "FencedError",
            Error::Unavailable { .. } => "UnavailableError",
            Error::QuotaExceeded { .. } => "QuotaExceededError",
            Error::Timeout { .. } => "EtcdTimeoutError",
            Error::Expired { .. } => "ExpiredError",
            Error::FellBehind { .. } => "WatchFellBehindError",
            Error::InvalidName { .. } => "InvalidNameError",
            Error::InvalidSelector { .. } => "InvalidSelectorError",
            Error::InvalidArgument { .. } => "InvalidArgumentError",
            Error::TooLarge { .. } => "TooLargeError",
            Error::Serialization { .. } => "SerializationError",
            Error::PermissionDenied { .. } => "PermissionDeniedError",
            Error::Closed => "ClosedError",
            Error::Forked { .. } => "ForkedError",
            Error::Etcd { .. } => "EtcdResourcesError",
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument { message: message.into() }
    }

    pub(crate) fn serialization(key: Option<&str>, message: impl fmt::Display) -> Self {
        Error::Serialization { key: key.map(str::to_owned), message: message.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_names_a_distinct_class() {
        let all = [
            Error::NotFound { key: "k".into() },
            Error::AlreadyExists { key: "k".into() },
            Error::Conflict { key: "k".into(), expected: 1, actual: Some(2) },
            Error::Fenced { key: "k".into(), fence: "f".into() },
            Error::Unavailable { message: "m".into(), code: None },
            Error::QuotaExceeded { message: "m".into(), code: None },
            Error::Timeout { operation: "get".into(), seconds: 1.0 },
            Error::Expired { requested: 1, compacted: 5 },
            Error::FellBehind { revision: 7, backlog: 10 },
            Error::InvalidName { name: "N".into(), reason: "r".into() },
            Error::InvalidSelector { selector: "s".into(), position: 0, expected: "e".into() },
            Error::invalid("m"),
            Error::TooLarge { key: "k".into(), size: 2, limit: 1 },
            Error::serialization(None, "m"),
            Error::PermissionDenied { message: "m".into(), code: None },
            Error::Closed,
            Error::Forked { pid: 1, here: 2 },
        ];
        let mut kinds: Vec<_> = all.iter().map(Error::kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), all.len());
        assert!(kinds.iter().all(|k| k.ends_with("Error")));
    }

    #[test]
    fn messages_carry_the_fields() {
        let e = Error::Conflict { key: "/w/a".into(), expected: 4, actual: None };
        assert_eq!(e.to_string(), "conflict on \"/w/a\": expected resource_version 4, found no resource");
        let e = Error::serialization(Some("/w/a"), "bad json");
        assert_eq!(e.to_string(), "\"/w/a\": bad json");
        let e = Error::FellBehind { revision: 41, backlog: 1000 };
        assert_eq!(
            e.to_string(),
            "the watcher fell behind: more than 1000 events waited unread, so it was ended; watch again \
             after resource_version 41 (or list again)"
        );
        let e = Error::Forked { pid: 10, here: 11 };
        assert_eq!(
            e.to_string(),
            "EtcdClient made in process 10 before a fork, used in process 11: make a new client in this process"
        );
    }
}
