//! The client: one per process, owning the store (a connection to etcd, or the embedded
//! store) and its closed state. Cheap to clone; every clone is the same client.
//!
//! A client belongs to the process that made it: in a child forked from that process every
//! call fails with `Forked` at once (its connections and the runtime that served them are the
//! parent's), and nothing of it is torn down there (see `crate::process`).

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::process::{self, Local};
use crate::store::etcd::{EtcdConfig, EtcdStore};
use crate::store::known::{Hold, Known};
use crate::store::memory::MemoryStore;
use crate::store::SharedStore;

/// Cancelled when the process shuts down: the parent of every client's own token. One per
/// process: a forked child makes its own and never touches (cancels, or drops) its parent's.
static PROCESS: Mutex<Option<(u32, CancellationToken)>> = Mutex::new(None);

/// The lock this module's tasks take, for the bindings to hold across forks (see `crate::process`).
pub fn fork_lock() -> &'static dyn process::ForkLock {
    &PROCESS
}

/// A new token under this process's shutdown token.
fn process_child_token() -> CancellationToken {
    let pid = process::id();
    let mut current = PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    match current.as_ref() {
        Some((owner, token)) if *owner == pid => token.child_token(),
        _ => {
            let token = CancellationToken::new();
            let child = token.child_token();
            // The parent's token, if any, is left as it is: see `crate::process`.
            std::mem::forget(current.replace((pid, token)));
            child
        }
    }
}

/// Close every client of this process (at interpreter exit): calls in flight end with
/// `Closed`, watches end, later calls fail with `Closed`. Clients a forked child inherited
/// from its parent are left alone.
pub fn close_all() {
    let pid = process::id();
    let current = PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, token)) = current.as_ref() {
        if *owner == pid {
            token.cancel();
        }
    }
}

/// The endpoint that selects the embedded store.
pub const MEMORY_ENDPOINT: &str = "memory://";

/// etcd's default request limit (`--max-request-bytes`): larger documents are refused before
/// they are sent.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 1536 * 1024;

/// Options of a client; the defaults suit a local etcd.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How to reach etcd (unused by the embedded store but for `timeout`).
    pub etcd: EtcdConfig,
    /// Documents larger than this are refused before they are sent.
    pub max_document_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { etcd: EtcdConfig::default(), max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES }
    }
}

struct Inner {
    store: SharedStore,
    /// The same store, seen as what remembers the newest revision (`watch_start`).
    known: Arc<Known>,
    endpoints: Vec<String>,
    options: ClientOptions,
    shutdown: CancellationToken,
    /// The first prefix a repository or backend of this client works under: where
    /// `current_revision` reads when it is given none (a user whose etcd role covers only its
    /// prefix may read nothing else).
    prefix: std::sync::OnceLock<String>,
    /// The figures of this client's watchers (`crate::fanout`).
    watches: crate::metrics::WatchCounters,
}

/// A handle on the store, shared by every repository made from it.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Local<Inner>>,
}

impl Client {
    /// A client for `endpoints`; does no I/O. `["memory://"]` selects a new embedded store.
    pub fn new(endpoints: Vec<String>, options: ClientOptions) -> Result<Self> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(Error::invalid("no endpoints given; use \"memory://\" for the embedded store"));
        }
        if options.etcd.timeout.is_zero() || options.etcd.connect_timeout.is_zero() {
            return Err(Error::invalid("timeouts must be positive"));
        }
        let shutdown = process_child_token();
        let store: SharedStore = if endpoints.iter().any(|e| e == MEMORY_ENDPOINT) {
            if endpoints.len() > 1 {
                return Err(Error::invalid("\"memory://\" cannot be mixed with etcd endpoints"));
            }
            Arc::new(MemoryStore::new())
        } else {
            for e in &endpoints {
                if let Some((scheme, _)) = e.split_once("://") {
                    if scheme != "http" && scheme != "https" {
                        return Err(Error::invalid(format!(
                            "endpoint {e:?}: the scheme must be http or https (or use memory://)"
                        )));
                    }
                }
            }
            Arc::new(EtcdStore::new(endpoints.clone(), options.etcd.clone(), shutdown.clone()))
        };
        let known = Arc::new(Known::new(store));
        let inner = Inner {
            store: known.clone(),
            known,
            endpoints,
            options,
            shutdown,
            prefix: std::sync::OnceLock::new(),
            watches: Default::default(),
        };
        Ok(Client { inner: Arc::new(Local::new(inner)) })
    }

    /// The store, or `Closed` once the client is closed (`Forked` in a forked child).
    pub fn store(&self) -> Result<&SharedStore> {
        self.check()?;
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        Ok(&self.inner.store)
    }

    /// Where a watch asked for "from now on" at this call starts, so that it sees every change
    /// made after the call (see [`Known::watch_start`]); keep the `Hold` until it is open.
    pub fn watch_start(&self) -> (i64, Option<Hold>) {
        self.inner.known.watch_start()
    }

    /// `Err(Forked)` in a process forked from the one that made this client.
    pub fn check(&self) -> Result<()> {
        self.inner.check()
    }

    /// The process that made this client.
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// An identity of this client (all its clones), for per-client registries.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }

    /// Remember that this client works under `prefix` (normalised); the first one counts.
    pub fn note_prefix(&self, prefix: &str) {
        let _ = self.inner.prefix.set(prefix.to_owned());
    }

    /// The first prefix this client worked under, if any.
    pub fn known_prefix(&self) -> Option<&str> {
        self.inner.prefix.get().map(String::as_str)
    }

    /// The figures of this client's watchers: shared and catch-up etcd watches, subscribers.
    pub fn watch_counters(&self) -> &crate::metrics::WatchCounters {
        &self.inner.watches
    }

    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    pub fn is_memory(&self) -> bool {
        self.inner.endpoints.first().is_some_and(|e| e == MEMORY_ENDPOINT)
    }

    /// Whether the client refuses calls: closed, or inherited from the parent of a fork.
    pub fn is_closed(&self) -> bool {
        !self.inner.is_here() || self.inner.shutdown.is_cancelled()
    }

    /// Cancelled when the client closes; watches end on it. Only in the process that made
    /// the client (`Forked` elsewhere).
    pub fn shutdown(&self) -> Result<&CancellationToken> {
        self.check()?;
        Ok(&self.inner.shutdown)
    }

    /// Refuse further calls and end every open watch. Idempotent. In a forked child it does
    /// nothing: the client is the parent's, and already refuses calls there.
    pub fn close(&self) {
        if self.inner.is_here() {
            self.inner.shutdown.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_without_io() {
        let c = Client::new(vec!["127.0.0.1:1, 127.0.0.1:2".into()], ClientOptions::default()).unwrap();
        assert_eq!(c.endpoints(), ["127.0.0.1:1", "127.0.0.1:2"]);
        assert!(!c.is_memory());
        assert!(Client::new(vec![], ClientOptions::default()).is_err());
        assert!(Client::new(vec!["memory://".into(), "x:1".into()], ClientOptions::default()).is_err());
        assert!(Client::new(vec!["redis://x:1".into()], ClientOptions::default()).is_err());
    }

    #[test]
    fn a_closed_client_refuses_calls() {
        let c = Client::new(vec![MEMORY_ENDPOINT.into()], ClientOptions::default()).unwrap();
        assert!(c.store().is_ok());
        c.clone().close();
        assert_eq!(c.store().err(), Some(Error::Closed));
        assert!(c.shutdown().unwrap().is_cancelled());
    }
}
