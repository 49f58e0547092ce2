//! Reading a range as one consistent snapshot, in bounded chunks.
//!
//! The first chunk is read at the newest revision and fixes it; every later chunk is read at
//! that same revision, starting after the last key seen. Memory held at once is one chunk plus
//! what the caller keeps.

use crate::error::Result;
use crate::store::{KeyValue, RangeRequest, Store};

/// Keys fetched per request.
pub const CHUNK: i64 = 500;

/// Visit every key in `[start, end)` at one revision (0: the newest), `chunk` keys per request.
/// Returns the revision read at.
pub async fn scan<S, F>(
    store: &S,
    start: &[u8],
    end: &[u8],
    revision: i64,
    chunk: i64,
    mut visit: F,
) -> Result<i64>
where
    S: Store + ?Sized,
    F: FnMut(KeyValue) -> Result<()>,
{
    let mut req = RangeRequest {
        key: start.to_vec(),
        range_end: end.to_vec(),
        limit: chunk,
        revision,
        ..Default::default()
    };
    loop {
        let resp = store.range(req.clone()).await?;
        if req.revision == 0 {
            req.revision = resp.revision;
        }
        let next = resp.kvs.last().map(|kv| {
            let mut k = kv.key.clone();
            k.push(0);
            k
        });
        for kv in resp.kvs {
            visit(kv)?;
        }
        match next {
            Some(k) if resp.more => req.key = k,
            _ => return Ok(req.revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::prefix_end;

    #[tokio::test]
    async fn chunks_see_one_snapshot() {
        let s = MemoryStore::new();
        for i in 0..25 {
            s.put(format!("/p/{i:03}").into_bytes(), b"v".to_vec(), 0).await.unwrap();
        }
        let mut seen = Vec::new();
        let store = s.clone();
        let rev = scan(&s, b"/p/", &prefix_end(b"/p/"), 0, 7, |kv| {
            seen.push(kv.key);
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
        // Writes after the snapshot revision stay invisible when reading at it.
        store.put(b"/p/999".to_vec(), b"v".to_vec(), 0).await.unwrap();
        let mut count = 0;
        scan(&s, b"/p/", &prefix_end(b"/p/"), rev, 7, |_| {
            count += 1;
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(count, 25);
    }
}
