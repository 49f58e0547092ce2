//! Stored documents that cannot be read (garbage written by another tool, a half-restored
//! backup): every path that meets one skips it, and reports it here. Each is logged once per
//! key and revision (a listing repeated every second does not repeat the warning; the same key
//! broken again at a later revision is logged again), and counted.
//!
//! The revision is in the error's message ([`at`]), so the message is what is remembered.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::Error;
use crate::events::{self, Level};

/// Messages remembered at most; then the memory starts again (a key may be logged twice).
const REMEMBERED: usize = 10_000;

struct Seen {
    messages: HashSet<String>,
    skipped: u64,
    distinct: u64,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);

/// How often unreadable documents were skipped, and how many distinct (key, revision) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub skipped: u64,
    pub distinct: u64,
}

/// The error of the document at `revision`, its message naming the revision.
pub fn at(e: Error, revision: i64) -> Error {
    match e {
        Error::Serialization { key, message } if !message.contains("resource_version") => {
            Error::Serialization { key, message: format!("{message} (resource_version {revision})") }
        }
        other => other,
    }
}

/// The lock this module takes, for the bindings to hold across forks (see `crate::process`).
pub fn fork_lock() -> &'static dyn crate::process::ForkLock {
    &SEEN
}

/// Count one skip of `e`; whether it is the first of this key and revision (to be logged).
pub fn first(e: &Error) -> bool {
    let mut guard = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    let seen = guard.get_or_insert_with(|| Seen { messages: HashSet::new(), skipped: 0, distinct: 0 });
    seen.skipped += 1;
    let message = e.to_string();
    if seen.messages.contains(&message) {
        return false;
    }
    if seen.messages.len() >= REMEMBERED {
        seen.messages.clear();
    }
    seen.messages.insert(message);
    seen.distinct += 1;
    true
}

/// The warning logged for a skipped document.
pub fn warning(e: &Error) -> String {
    format!("skipped an unreadable stored document: {e}")
}

/// Skip the document at `revision` with error `e` where no caller logs it (the informer
/// cache): counted, and logged through [`events`] the first time.
pub fn skipped(e: Error, revision: i64) {
    report(&at(e, revision));
}

/// Count, and log through [`events`] the first time, an error that names its revision.
pub fn report(e: &Error) {
    if first(e) {
        events::emit(Level::Warning, warning(e));
    }
}

/// The counts so far (in this process).
pub fn counts() -> Counts {
    let guard = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .as_ref()
        .map_or_else(Counts::default, |seen| Counts { skipped: seen.skipped, distinct: seen.distinct })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_once_per_key_and_revision_counted_every_time() {
        let bad = |rev| at(Error::serialization(Some("/unreadable-test/a"), "expected value"), rev);
        let before = counts();
        assert!(first(&bad(7)));
        assert!(!first(&bad(7)));
        assert!(first(&bad(8)), "broken again at a later revision: logged again");
        assert!(bad(7).to_string().contains("(resource_version 7)"));
        let after = counts();
        assert!(after.skipped >= before.skipped + 3 && after.distinct >= before.distinct + 2);
        assert_eq!(at(at(bad(7), 9), 10).to_string(), bad(7).to_string(), "named once");
    }
}
