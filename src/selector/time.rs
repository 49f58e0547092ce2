//! Time conditions in field selectors: a stored timestamp, optionally plus a stored amount of
//! time, earlier or later than an instant.
//!
//! ```text
//! status.start_time<2026-12-04T14:00:00+01:00
//! status.start_time+minutes(spec.duration_minutes)<2026-12-04T14:00:00+01:00
//! ```
//!
//! Timestamps are ISO 8601 as Python's `datetime.isoformat()` writes them
//! (`YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]]`, then `Z`, `±HH:MM[:SS[.ffffff]]` or nothing). A stored
//! timestamp without an offset (a naive `datetime`) is read in the bound's offset: a service
//! that writes `datetime.now()` and compares with `datetime.now()` passes its local time as
//! the bound, and gets what its own comparison gives. The added amount is a JSON number (an
//! integer or a decimal) of `seconds`, `minutes` or `hours`. A field that is absent, `null`,
//! or not a timestamp (or an amount that is not a number) never matches, as with `<` on
//! numbers. Instants are compared in microseconds, Python's precision.

use std::fmt;

use serde_json::Value;
use time::{Date, Month};

use super::lookup;

/// Microseconds in a second.
const MICROS: i128 = 1_000_000;

/// The unit of an added amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Minutes,
    Hours,
}

impl Unit {
    pub(super) fn parse(word: &str) -> Option<Unit> {
        match word {
            "seconds" => Some(Unit::Seconds),
            "minutes" => Some(Unit::Minutes),
            "hours" => Some(Unit::Hours),
            _ => None,
        }
    }

    fn micros(self) -> f64 {
        match self {
            Unit::Seconds => 1e6,
            Unit::Minutes => 60e6,
            Unit::Hours => 3600e6,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Minutes => "minutes",
            Unit::Hours => "hours",
        }
    }
}

/// A point in time, as microseconds since the Unix epoch, with the offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The wall-clock time read as UTC, in microseconds since the epoch.
    local: i128,
    /// The UTC offset in microseconds; `None` for a naive timestamp.
    offset: Option<i128>,
}

impl Stamp {
    /// Parse an ISO 8601 timestamp as `datetime.isoformat()` writes it.
    pub fn parse(text: &str) -> Option<Stamp> {
        let b = text.as_bytes();
        if b.len() < 16 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let year: i32 = digits(&text[0..4])?;
        let month = Month::try_from(digits::<u8>(&text[5..7])?).ok()?;
        let day = Date::from_calendar_date(year, month, digits(&text[8..10])?).ok()?;
        let (clock, offset) = split_offset(&text[11..])?;
        let seconds = clock_micros(clock)?;
        let days = i128::from(
            day.to_julian_day() - Date::from_calendar_date(1970, Month::January, 1).ok()?.to_julian_day(),
        );
        let offset = match offset {
            None => None,
            Some("Z" | "z") => Some(0),
            Some(o) => {
                let sign = if o.starts_with('-') { -1 } else { 1 };
                Some(sign * clock_micros(&o[1..])?)
            }
        };
        Some(Stamp { local: days * 86_400 * MICROS + seconds, offset })
    }

    /// The instant, reading a naive timestamp in `assumed` (microseconds east of UTC).
    pub fn instant(&self, assumed: i128) -> i128 {
        self.local - self.offset.unwrap_or(assumed)
    }
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The clock and the offset (`Z`, `+01:00`, ...) of the part after the date.
fn split_offset(rest: &str) -> Option<(&str, Option<&str>)> {
    match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => Some((&rest[..i], Some(&rest[i..]))),
        None => Some((rest, None)),
    }
}

/// `HH:MM[:SS[.ffffff]]` in microseconds.
fn clock_micros(clock: &str) -> Option<i128> {
    let (whole, frac) = match clock.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (clock, None),
    };
    let mut parts = whole.split(':');
    let hours: i128 = digits(parts.next()?)?;
    let minutes: i128 = digits(parts.next()?)?;
    let seconds: i128 = parts.next().map_or(Some(0), digits)?;
    if parts.next().is_some() || hours > 24 || minutes > 59 || seconds > 60 {
        return None;
    }
    let mut micros = ((hours * 60 + minutes) * 60 + seconds) * MICROS;
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 {
            return None;
        }
        let f6 = format!("{f:0<6}");
        micros += digits::<i128>(&f6[..6])?;
    }
    Some(micros)
}

/// `<` or `>` on a time: the stored timestamp at the requirement's key, plus an optional
/// stored amount, compared with `bound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeBound {
    /// The bound as written (shown back by `Display`).
    pub text: String,
    stamp: Stamp,
    /// `+unit(path)`: an amount read from the document, added to the timestamp.
    pub plus: Option<(Unit, String)>,
}

impl TimeBound {
    /// A bound from its text; `None` when it is not a timestamp.
    pub fn parse(text: &str, plus: Option<(Unit, String)>) -> Option<TimeBound> {
        Stamp::parse(text).map(|stamp| TimeBound { text: text.to_owned(), stamp, plus })
    }

    /// The timestamp at `key` (plus the amount) relative to the bound, when both are there.
    pub fn compare(&self, doc: &Value, key: &str) -> Option<std::cmp::Ordering> {
        let Value::String(stored) = lookup(doc, key)? else { return None };
        let assumed = self.stamp.offset.unwrap_or(0);
        let mut at = Stamp::parse(stored)?.instant(assumed);
        if let Some((unit, path)) = &self.plus {
            let amount = lookup(doc, path)?.as_f64().filter(|f| f.is_finite())?;
            at += (amount * unit.micros()).round() as i128;
        }
        Some(at.cmp(&self.stamp.instant(assumed)))
    }

    /// The paths a document must hold for the comparison (beside the key).
    pub fn extra_path(&self) -> Option<&str> {
        self.plus.as_ref().map(|(_, path)| path.as_str())
    }
}

/// `+minutes(spec.duration_minutes)` (nothing without an amount).
impl fmt::Display for TimeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.plus {
            Some((unit, path)) => write!(f, "+{}({path})", unit.name()),
            None => Ok(()),
        }
    }
}
