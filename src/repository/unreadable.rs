//! Removing a resource whose stored document cannot be read (issue #22). Refused by default,
//! naming the key and the opt-in, as Kubernetes refuses until asked for its "unsafe deletion
//! of corrupt objects"; with the opt-in, deleted with a compare on the mod_revision read, so a
//! repair written meanwhile is not deleted (`Conflict` instead).

use super::{Removal, Repository};
use crate::document;
use crate::error::{Error, Result};
use crate::informer;
use crate::listing;
use crate::store::{prefix_end, KeyValue};

/// A stored document under the prefix that cannot be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub key: String,
    pub mod_revision: i64,
    /// Why it cannot be read.
    pub reason: String,
}

/// Keys read per request by [`Repository::unreadable`].
const CHUNK: i64 = 500;

impl Repository {
    /// Every stored document under the prefix that cannot be read (one snapshot, read in
    /// chunks; every document is decoded, so this costs a full listing).
    pub async fn unreadable(&self) -> Result<Vec<Unreadable>> {
        let store = self.client.store()?;
        let prefix = self.config.prefix.as_bytes();
        let mut found = Vec::new();
        listing::scan(&**store, prefix, &prefix_end(prefix), 0, CHUNK, |kv| {
            if let Err(e) = document::read_kv(&kv) {
                let reason = match e {
                    Error::Serialization { message, .. } => message,
                    other => other.to_string(),
                };
                let key = String::from_utf8_lossy(&kv.key).into_owned();
                found.push(Unreadable { key, mod_revision: kv.mod_revision, reason });
            }
            Ok(true)
        })
        .await?;
        Ok(found)
    }

    pub(super) async fn remove_unreadable(
        &self,
        key: &str,
        current: &KeyValue,
        error: Error,
        delete: bool,
    ) -> Result<Removal> {
        let why = match &error {
            Error::Serialization { message, .. } => message.clone(),
            other => other.to_string(),
        };
        if !delete {
            return Err(Error::serialization(
                Some(key),
                format!(
                    "the stored document cannot be read ({why}), so its finalizers cannot be \
                     honoured; to delete it anyway, remove it with delete_unreadable=True"
                ),
            ));
        }
        self.memo.forget(key.as_bytes());
        let store = self.client.store()?;
        let deleted = store.delete(key.as_bytes().to_vec(), Some(current.mod_revision)).await;
        match deleted {
            Ok(revision) => {
                if let Some(revision) = revision {
                    informer::note(&self.client, key.as_bytes(), revision);
                }
                crate::events::emit(
                    crate::events::Level::Warning,
                    format!(
                        "deleted the unreadable document {key:?} at resource_version {} on request ({why})",
                        current.mod_revision
                    ),
                );
                Ok(Removal::Deleted)
            }
            // Written meanwhile (a repair, perhaps): not deleted, whatever it holds now.
            Err(Error::Conflict { actual, .. }) => {
                Err(Error::Conflict { key: key.to_owned(), expected: current.mod_revision, actual })
            }
            Err(e) => Err(e),
        }
    }
}
