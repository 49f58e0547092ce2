//! Deletes while etcd's database is full (its `NOSPACE` alarm).
//!
//! etcd refuses, during the alarm, every put and every transaction holding a put. Before
//! 3.5.7 (etcd-io/etcd#13429, fixed by #14884) it refuses every transaction whatever it holds, as long as the database file is over
//! the quota (`backendQuota.Available` adds the request's cost, 0 for a delete, to the size and
//! compares it with the quota), while a plain `DeleteRange` always passes. A delete that
//! compares the key's mod_revision is a transaction, so it would be refused too, and a service
//! could not free the space it filled.
//!
//! So when such a delete is refused with `NOSPACE`, it is made of two requests: a read that
//! checks the revision (else `Conflict`, nothing written), then a plain delete asking for the
//! previous value. Between the two nobody can write the key: every put is refused while the
//! alarm holds. Only an operator who disarms the alarm within that round trip, followed by a
//! write to this very key inside it, would make the delete remove a newer version; the
//! previous value etcd returns shows it, and it is logged as an error with both revisions.

use etcd_client::{Client, DeleteOptions, GetOptions};

use super::EtcdStore;
use crate::error::{Error, Result};
use crate::events::{self, Level};

/// Delete `key` (only at mod_revision `expected`, when given) with requests etcd accepts
/// during the alarm. Returns the deleting revision, `None` when the key was absent.
pub(super) async fn delete(store: &EtcdStore, key: Vec<u8>, expected: Option<i64>) -> Result<Option<i64>> {
    let name = String::from_utf8_lossy(&key).into_owned();
    if let Some(expected) = expected {
        let get = |mut c: Client| {
            let key = key.clone();
            async move { c.get(key, Some(GetOptions::new().with_keys_only())).await }
        };
        let resp = store.call("delete_check", get).await?;
        let actual = resp.kvs().first().map(|kv| kv.mod_revision());
        if actual != Some(expected) {
            return Err(Error::Conflict { key: name, expected, actual });
        }
    }
    let del = |mut c: Client| {
        let key = key.clone();
        async move { c.delete(key, Some(DeleteOptions::new().with_prev_key())).await }
    };
    let resp = store.call("delete_nospace", del).await?;
    let Some(prev) = resp.prev_kvs().first() else { return Ok(None) };
    if let Some(expected) = expected.filter(|e| *e != prev.mod_revision()) {
        events::emit(
            Level::Error,
            format!(
                "{name:?} was deleted at resource_version {} though {expected} was expected: etcd's \
                 NOSPACE alarm was disarmed and the key written between the check and the delete",
                prev.mod_revision()
            ),
        );
    }
    Ok(Some(resp.header().map_or(0, |h| h.revision())))
}

#[cfg(test)]
mod tests {
    use super::super::errors::map_error;
    use crate::error::Error;

    fn status(code: tonic::Code, message: &str) -> etcd_client::Error {
        etcd_client::Error::GRpcStatus(tonic::Status::new(code, message))
    }

    #[test]
    fn nospace_is_its_own_error_and_other_exhaustion_stays_unavailable() {
        let full =
            map_error(status(tonic::Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded"));
        assert!(
            matches!(&full, Error::QuotaExceeded { code: Some(c), .. } if c == "ResourceExhausted"),
            "{full}"
        );
        assert!(!super::super::breaker::unreachable(&full), "not a lost connection");
        assert!(full.to_string().contains("etcdctl alarm disarm"), "{full}");
        let busy = map_error(status(tonic::Code::ResourceExhausted, "etcdserver: too many requests"));
        assert!(matches!(busy, Error::Unavailable { .. }), "{busy}");
    }
}
