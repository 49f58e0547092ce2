//! Reading a range as one consistent snapshot, in bounded chunks.
//!
//! The first chunk is read at the newest revision (or the one given) and fixes it; every
//! later chunk is read at that same revision, starting after the last key seen. Memory held at
//! once is one chunk plus what the caller keeps.

use crate::error::{Error, Result};
use crate::projection::Projection;
use crate::selector::Query;
use crate::store::{KeyValue, RangeRequest, Store};

/// Keys fetched by a listing's first request (also the first chunk of a streamed listing;
/// smaller and larger first chunks were no faster: docs/benchmarks.md, "Figures behind the
/// code"). Later requests ask for more while the responses stay small: see [`scan_chunks`].
pub const CHUNK: i64 = 500;

/// Chunks a streamed listing keeps ready ahead of its consumer.
pub const AHEAD: usize = 2;

/// A chunk doubles while the previous response held less than this many bytes...
const GROW_BELOW: usize = 2 << 20;
/// ... up to this many keys (a listing built whole; see [`STREAM_MAX_CHUNK`]).
pub const MAX_CHUNK: i64 = 8_000;
/// The most keys a chunk of a streamed listing grows to: its consumer holds a chunk's objects
/// at a time, so this bounds its memory (figures: docs/benchmarks.md, "Figures behind the
/// code").
pub const STREAM_MAX_CHUNK: i64 = 1_000;

/// How the chunks of a scan grow: the first asks for `first` keys, each next one for twice as
/// many while the last response was full and under `grow_below` bytes, up to `max` keys. When
/// the first response counts fewer than `large_from` keys in the range, the scan grows as a
/// listing does instead (0: never).
#[derive(Debug, Clone, Copy)]
pub struct Chunks {
    pub first: i64,
    pub max: i64,
    pub grow_below: usize,
    pub large_from: i64,
}

impl Chunks {
    /// A listing's: up to `max` keys, small responses (2 MiB: about 1,000 LabWorkers).
    pub const fn listing(max: i64) -> Chunks {
        Chunks { first: CHUNK, max, grow_below: GROW_BELOW, large_from: 0 }
    }

    /// The informer cache's first listing: from 75,000 keys, up to 20,000 keys and 64 MiB a
    /// response (each limited request makes etcd walk the rest of the range: on 100,000
    /// LabWorkers the sync took 1.14 s against 1.75 s in a listing's chunks); below, a
    /// listing's chunks, faster and leaner there (10,000: 0.10 s and 4.5 KiB of RSS per
    /// resource against 0.16 s and 6.5 KiB; 50,000: 0.70 s and 3.2 KiB against 1.01 s and 4.6
    /// KiB). docs/benchmarks.md, "Figures behind the code".
    pub const SYNC: Chunks = Chunks { first: CHUNK, max: 20_000, grow_below: 64 << 20, large_from: 75_000 };
}

/// Whether a stored key-value matches `query`, reading only the parts of it `projection`
/// keeps (nothing when `None`, which [`Projection::of`] gives unfiltered queries). Bytes that
/// cannot be read do not match and are collected in `unreadable` (reported, never fatal for a
/// listing); unread documents are checked when the caller decodes them.
pub fn matches(
    query: &Query,
    projection: Option<&Projection>,
    kv: &KeyValue,
    unreadable: &mut Vec<Error>,
) -> bool {
    let Some(projection) = projection else { return true };
    let key = String::from_utf8_lossy(&kv.key);
    match projection.read(&key, &kv.value, kv.mod_revision) {
        Ok(doc) => query.matches(&doc),
        Err(e) => {
            unreadable.push(crate::unreadable::at(e, kv.mod_revision));
            false
        }
    }
}

/// Where a scan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEnd {
    /// The revision every chunk was read at.
    pub revision: i64,
    /// The first key not visited when the visitor stopped early (`None`: the range is done).
    pub resume: Option<Vec<u8>>,
}

/// Visit the keys in `[start, end)` in order at one revision (0: the newest), `chunk` keys
/// per request, until the visitor returns `false` (that key counts as not visited).
pub async fn scan<S, F>(
    store: &S,
    start: &[u8],
    end: &[u8],
    revision: i64,
    chunk: i64,
    mut visit: F,
) -> Result<ScanEnd>
where
    S: Store + ?Sized,
    F: FnMut(KeyValue) -> Result<bool>,
{
    let mut visit_all = |kvs: Vec<KeyValue>| -> Result<Option<Vec<u8>>> {
        for kv in kvs {
            let key = kv.key.clone();
            if !visit(kv)? {
                return Ok(Some(key));
            }
        }
        Ok(None)
    };
    let chunks = Chunks { first: chunk, ..Chunks::listing(MAX_CHUNK) };
    scan_chunks(store, start, end, revision, chunks, |kvs, _| std::future::ready(visit_all(kvs))).await
}

/// Hand the keys in `[start, end)` to `each`, one response at a time, all read at one
/// revision (0: the newest), with whether more follow. `each` returns the first key it did not
/// take to stop there, `None` to go on.
///
/// The chunks grow as `chunks` says. etcd (3.5)
/// answers a range request with a limit by walking every key left in the range, to count
/// them: 500-key chunks of 100,000 LabWorkers cost it 200 such walks (what that cost the
/// cache's first listing: docs/benchmarks.md, "Figures behind the code").
pub async fn scan_chunks<S, F, Fut>(
    store: &S,
    start: &[u8],
    end: &[u8],
    revision: i64,
    chunks: Chunks,
    mut each: F,
) -> Result<ScanEnd>
where
    S: Store + ?Sized,
    F: FnMut(Vec<KeyValue>, bool) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Vec<u8>>>>,
{
    let mut req = RangeRequest {
        key: start.to_vec(),
        range_end: end.to_vec(),
        limit: chunks.first,
        revision,
        ..Default::default()
    };
    let mut chunks = chunks;
    let mut first = true;
    loop {
        let resp = store.range(req.clone()).await?;
        if req.revision == 0 {
            req.revision = resp.revision;
        }
        if std::mem::take(&mut first) && resp.count < chunks.large_from {
            chunks = Chunks { first: chunks.first, ..Chunks::listing(MAX_CHUNK) };
        }
        let bytes: usize = resp.kvs.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
        if resp.kvs.len() as i64 == req.limit && bytes < chunks.grow_below {
            req.limit = (req.limit * 2).min(chunks.max.max(chunks.first));
        }
        let next = resp.kvs.last().map(|kv| {
            let mut k = kv.key.clone();
            k.push(0);
            k
        });
        let more = resp.more && next.is_some();
        if let Some(resume) = each(resp.kvs, more).await? {
            return Ok(ScanEnd { revision: req.revision, resume: Some(resume) });
        }
        match next {
            Some(k) if more => req.key = k,
            _ => return Ok(ScanEnd { revision: req.revision, resume: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::prefix_end;

    #[tokio::test]
    async fn large_chunks_only_from_their_size_on() {
        let s = MemoryStore::new();
        for i in 0..30 {
            s.put(format!("/p/{i:03}").into_bytes(), b"v".to_vec(), 0).await.unwrap();
        }
        let end = prefix_end(b"/p/");
        let sizes = |large_from| {
            let s = &s;
            let end = &end;
            async move {
                let mut sizes = Vec::new();
                let chunks = Chunks { first: 2, max: 4, grow_below: usize::MAX, large_from };
                scan_chunks(s, b"/p/", end, 0, chunks, |kvs, _| {
                    sizes.push(kvs.len());
                    std::future::ready(Ok(None))
                })
                .await
                .unwrap();
                sizes
            }
        };
        // 30 keys: large chunks (at most 4) from 30 on; a listing's (growing past 4) from 31.
        assert_eq!(sizes(30).await, vec![2, 4, 4, 4, 4, 4, 4, 4]);
        assert_eq!(sizes(31).await, vec![2, 4, 8, 16]);
    }

    #[tokio::test]
    async fn chunks_see_one_snapshot_and_stop_where_asked() {
        let s = MemoryStore::new();
        for i in 0..25 {
            s.put(format!("/p/{i:03}").into_bytes(), b"v".to_vec(), 0).await.unwrap();
        }
        let end = prefix_end(b"/p/");
        let mut seen = Vec::new();
        let done = scan(&s, b"/p/", &end, 0, 7, |kv| {
            seen.push(kv.key);
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(done.resume, None);

        // Writes after the snapshot revision stay invisible when reading at it.
        s.put(b"/p/999".to_vec(), b"v".to_vec(), 0).await.unwrap();
        let mut count = 0;
        let stopped = scan(&s, b"/p/", &end, done.revision, 7, |_| {
            count += 1;
            Ok(count < 10)
        })
        .await
        .unwrap();
        assert_eq!(stopped.resume, Some(b"/p/009".to_vec()));
        let mut rest = 0;
        scan(&s, &stopped.resume.unwrap(), &end, done.revision, 7, |_| {
            rest += 1;
            Ok(true)
        })
        .await
        .unwrap();
        assert_eq!(rest, 16, "resumed at the same revision: /p/999 is not there");
    }
}
