//! Lists, pages and counts: every read of many resources goes through a [`Query`] evaluated
//! in Rust on the decoded documents, at one revision, in bounded chunks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::Repository;
use crate::error::{Error, Result};
use crate::informer::Consistency;
use crate::listing::{self, AHEAD, CHUNK};
use crate::names;
use crate::projection::Projection;
use crate::selector::Query;
use crate::store::{prefix_end, KeyValue, RangeRequest};

/// A listing: the matching documents as stored (decoded by the consumer: for Python straight
/// into Python objects, see [`crate::document::read_kv`] otherwise), the revision they were
/// read at, and the stored documents that could not be read (reported, never fatal).
#[derive(Debug, Default)]
pub struct Listing {
    pub items: Vec<KeyValue>,
    pub revision: i64,
    pub unreadable: Vec<Error>,
}

/// One page of a listing; every page of a listing is read at the same revision.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<KeyValue>,
    pub revision: i64,
    /// Where the next page starts; `None` on the last page.
    pub continue_token: Option<String>,
    pub unreadable: Vec<Error>,
}

/// One part of a streamed listing (see [`Repository::list_chunks`]).
#[derive(Debug, Default)]
pub struct Chunk {
    pub items: Vec<KeyValue>,
    pub unreadable: Vec<Error>,
    /// Whether this is the listing's last chunk.
    pub last: bool,
}

/// Documents read from the informer cache (shared with it, not copied).
pub type Cached = Vec<std::sync::Arc<crate::informer::Entry>>;

/// What a continue token carries: the snapshot revision and the next key.
#[derive(Serialize, Deserialize)]
struct Continue {
    v: u8,
    rv: i64,
    start: String,
}

fn bad_token(why: &str) -> Error {
    Error::invalid(format!("invalid continue_token: {why}; start the listing again without one"))
}

impl Repository {
    /// The key range a query covers.
    fn range_of(&self, query: &Query) -> Result<(String, Vec<u8>)> {
        let start = match (&query.namespace, self.config.namespaced) {
            (Some(ns), true) => {
                names::validate_namespace(ns)?;
                format!("{}{ns}/", self.config.prefix)
            }
            (Some(ns), false) => {
                names::validate_namespace(ns)?;
                self.config.prefix.clone()
            }
            (None, _) => self.config.prefix.clone(),
        };
        let end = prefix_end(start.as_bytes());
        Ok((start, end))
    }

    /// Every resource matching the query, read at one revision.
    pub async fn list(&self, query: &Query) -> Result<Listing> {
        let (start, end) = self.range_of(query)?;
        let store = self.client.store()?;
        let mut listing = Listing::default();
        let projection = Projection::of(query);
        let done = listing::scan(&**store, start.as_bytes(), &end, 0, CHUNK, |kv| {
            if listing::matches(query, projection.as_ref(), &kv, &mut listing.unreadable) {
                listing.items.push(kv);
            }
            Ok(true)
        })
        .await?;
        listing.revision = done.revision;
        Ok(listing)
    }

    /// [`list`](Self::list), handed over chunk by chunk as etcd returns them, so the consumer
    /// (the Python thread, making objects) works on one chunk while the next ones are read and
    /// filtered. At most [`AHEAD`] chunks wait; dropping the receiver stops the reading. An
    /// error ends the stream. Chunks grow up to `max_chunk` keys ([`listing::scan_chunks`]):
    /// [`listing::MAX_CHUNK`] for a listing consumed whole, [`listing::STREAM_MAX_CHUNK`] for
    /// one consumed chunk by chunk (the consumer's memory).
    pub fn list_chunks(&self, query: Query, max_chunk: i64) -> tokio::sync::mpsc::Receiver<Result<Chunk>> {
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD);
        let repo = self.clone();
        tokio::spawn(async move {
            if let Err(e) = repo.stream_chunks(&query, max_chunk, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn stream_chunks(
        &self,
        query: &Query,
        max_chunk: i64,
        tx: &tokio::sync::mpsc::Sender<Result<Chunk>>,
    ) -> Result<()> {
        let (start, end) = self.range_of(query)?;
        let store = self.client.store()?;
        let projection = Projection::of(query);
        let chunks = listing::Chunks::listing(max_chunk);
        listing::scan_chunks(&**store, start.as_bytes(), &end, 0, chunks, |kvs, more| {
            let mut chunk = Chunk { last: !more, ..Chunk::default() };
            for kv in kvs {
                if listing::matches(query, projection.as_ref(), &kv, &mut chunk.unreadable) {
                    chunk.items.push(kv);
                }
            }
            async move {
                match tx.send(Ok(chunk)).await {
                    Ok(()) => Ok(None),
                    Err(_) => Ok(Some(Vec::new())), // the consumer is gone: stop reading
                }
            }
        })
        .await?;
        Ok(())
    }

    /// Up to `limit` matching resources, from where `continue_token` says (the start when
    /// `None`), all pages at the revision of the first. A token whose revision was compacted
    /// fails with `Expired`.
    pub async fn list_page(&self, query: &Query, limit: usize, continue_token: Option<&str>) -> Result<Page> {
        if limit == 0 {
            return Err(Error::invalid("limit must be at least 1"));
        }
        let (start, end) = self.range_of(query)?;
        let (from, revision) = match continue_token {
            None => (start.clone().into_bytes(), 0),
            Some(token) => {
                let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad_token("not base64"))?;
                let c: Continue = serde_json::from_slice(&bytes).map_err(|_| bad_token("malformed"))?;
                if c.v != 1 || c.rv <= 0 || !c.start.starts_with(&start) {
                    return Err(bad_token("it belongs to another listing"));
                }
                (c.start.into_bytes(), c.rv)
            }
        };
        // Unfiltered, a chunk of `limit` keys is exactly a page.
        let chunk = if query.labels.is_empty() && query.fields.is_empty() && query.namespace.is_none() {
            (limit as i64).min(CHUNK)
        } else {
            CHUNK
        };
        let store = self.client.store()?;
        let mut page = Page::default();
        let projection = Projection::of(query);
        let done = listing::scan(&**store, &from, &end, revision, chunk, |kv| {
            if page.items.len() >= limit {
                return Ok(false);
            }
            if listing::matches(query, projection.as_ref(), &kv, &mut page.unreadable) {
                page.items.push(kv);
            }
            Ok(true)
        })
        .await?;
        page.revision = done.revision;
        page.continue_token = match done.resume {
            Some(next) => {
                let start = String::from_utf8(next).map_err(|_| bad_token("a key is not UTF-8"))?;
                let json = serde_json::to_vec(&Continue { v: 1, rv: done.revision, start })
                    .map_err(|e| Error::serialization(None, e))?;
                Some(URL_SAFE_NO_PAD.encode(json))
            }
            None => None,
        };
        Ok(page)
    }

    /// Matching resources from the informer cache, once it is as fresh as `consistency`
    /// asks. `None` when this repository has no cache.
    pub async fn list_cached(&self, query: &Query, consistency: Consistency) -> Result<Option<Cached>> {
        let Some(informer) = self.informer().await? else { return Ok(None) };
        self.range_of(query)?; // validates the namespace
        informer.wait(consistency).await?;
        Ok(Some(informer.list(query)))
    }

    /// How many resources match, from the informer cache (see `list_cached`).
    pub async fn count_cached(&self, query: &Query, consistency: Consistency) -> Result<Option<i64>> {
        let Some(informer) = self.informer().await? else { return Ok(None) };
        self.range_of(query)?;
        informer.wait(consistency).await?;
        Ok(Some(informer.count(query) as i64))
    }

    /// How many resources match, without building them for Python; with no filter beyond the
    /// key range, one count-only request.
    pub async fn count(&self, query: &Query) -> Result<i64> {
        let (start, end) = self.range_of(query)?;
        let store = self.client.store()?;
        let range_is_exact = query.labels.is_empty()
            && query.fields.is_empty()
            && (query.namespace.is_none() || self.config.namespaced);
        if range_is_exact {
            let req = RangeRequest {
                key: start.into_bytes(),
                range_end: end,
                count_only: true,
                ..Default::default()
            };
            return Ok(store.range(req).await?.count);
        }
        let mut count = 0;
        let mut unreadable = Vec::new();
        let projection = Projection::of(query);
        listing::scan(&**store, start.as_bytes(), &end, 0, CHUNK, |kv| {
            if listing::matches(query, projection.as_ref(), &kv, &mut unreadable) {
                count += 1;
            }
            Ok(true)
        })
        .await?;
        unreadable.iter().for_each(crate::unreadable::report);
        Ok(count)
    }
}
