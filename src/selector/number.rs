//! Numbers for `<` and `>`: integers exactly, decimals as `f64`, in one total order.
//!
//! A label's value is compared as a 64-bit integer (Kubernetes parses it with
//! `strconv.ParseInt`); a field's value when it is a JSON number, integer or decimal. An
//! integer and a decimal compare by their values (`8 < 8.5`, `8 == 8.0`), exactly, even where
//! an `f64` cannot hold the integer. The order is total (decimals are always finite), so a
//! `Num` keys the informer's ordered indexes.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

/// A finite number.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// Any `i64` or `u64`.
    Int(i128),
    /// A finite decimal.
    Float(f64),
}

impl Num {
    /// A JSON number as a `Num`; anything else (strings, `null`, ...) has none.
    pub fn of_json(value: &Value) -> Option<Num> {
        let Value::Number(n) = value else { return None };
        if let Some(i) = n.as_i64() {
            Some(Num::Int(i.into()))
        } else if let Some(u) = n.as_u64() {
            Some(Num::Int(u.into()))
        } else {
            n.as_f64().filter(|f| f.is_finite()).map(Num::Float)
        }
    }

    /// A label value as an integer, as Kubernetes reads one (`strconv.ParseInt(v, 10, 64)`:
    /// an optional sign and decimal digits, in the `i64` range).
    pub fn of_label(text: &str) -> Option<Num> {
        text.parse::<i64>().ok().map(|i| Num::Int(i.into()))
    }

    /// A number written in a field selector: an optional `-`, digits, an optional fraction
    /// (`.` and digits) and exponent (`e` or `E`, an optional sign, digits), finite.
    pub fn parse_decimal(text: &str) -> Option<Num> {
        if !is_decimal(text) {
            return None;
        }
        if let Ok(i) = text.parse::<i64>() {
            return Some(Num::Int(i.into()));
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(Num::Int(u.into()));
        }
        text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Num::Float)
    }
}

/// The JSON number grammar, without its ban on leading zeros.
fn is_decimal(text: &str) -> bool {
    fn digits(s: &str) -> (usize, &str) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        (n, &s[n..])
    }
    let s = text.strip_prefix('-').unwrap_or(text);
    let (n, mut s) = digits(s);
    if n == 0 {
        return false;
    }
    if let Some(rest) = s.strip_prefix('.') {
        let (n, rest) = digits(rest);
        if n == 0 {
            return false;
        }
        s = rest;
    }
    if let Some(rest) = s.strip_prefix(['e', 'E']) {
        let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
        let (n, rest) = digits(rest);
        if n == 0 {
            return false;
        }
        s = rest;
    }
    s.is_empty()
}

/// `i` against a finite `f`, exactly (`|i| < 2^64`).
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    if f >= TWO_64 {
        return Ordering::Less;
    }
    if f <= -TWO_64 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // Exact: |whole| < 2^64, and the fraction of a float is exact too.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)).unwrap_or(Ordering::Equal),
        unequal => unequal,
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(b),
            // Finite, so never unordered; -0.0 and 0.0 are equal, as they are to Int(0).
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(*a, *b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(*b, *a).reverse(),
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

impl fmt::Display for Num {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => write!(f, "{x}"),
        }
    }
}
