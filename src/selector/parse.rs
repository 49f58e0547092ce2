//! The selector grammar, for labels and for fields:
//!
//! ```text
//! selector    := "" | requirement ("," requirement)*
//! requirement := "!" key | key | key ("=" | "==" | "!=") value | key ("in" | "notin") "(" values ")"
//!              | key (">" | "<") number
//!              | key ["+" unit "(" key ")"] (">" | "<") timestamp      (fields only)
//! values      := value ("," value)*
//! ```
//!
//! This is Kubernetes' label selector grammar (`k8s.io/apimachinery/pkg/labels`), whose parser
//! tests `tests` transcribes. White space (space, tab, CR, LF) is allowed around every token.
//! Label keys and values follow Kubernetes' rules (`[prefix/]name`, names and values of at most
//! 63 characters); a label's number is an integer (`strconv.ParseInt`: a valid label value that
//! fits an `i64`). Field keys are dotted paths, field values any characters but white space,
//! `,`, `(` and `)`, which a `\` escapes; a field's number is an integer or a decimal
//! (`20`, `-3`, `7.5`, `1e3`). A field's `<` or `>` with an ISO 8601 timestamp compares times,
//! with an optional stored amount of `seconds`, `minutes` or `hours` added (see `time.rs`).

use super::time::{TimeBound, Unit};
use super::{Num, Op, Requirement};
use crate::error::{Error, Result};
use crate::names;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Labels,
    Fields,
}

pub(super) fn parse(text: &str, mode: Mode) -> Result<Vec<Requirement>> {
    let mut p = Parser { text, pos: 0, value_start: 0, mode };
    let mut requirements = Vec::new();
    p.skip_ws();
    if p.at_end() {
        return Ok(requirements);
    }
    loop {
        requirements.push(p.requirement()?);
        p.skip_ws();
        if p.at_end() {
            return Ok(requirements);
        }
        if !p.eat(",") {
            return p.fail("',' or the end of the selector");
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// Where the last value read began (errors about a value point there).
    value_start: usize,
    mode: Mode,
}

/// White space between tokens: what Kubernetes' lexer skips.
pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_key_char(c: char, mode: Mode) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '_' | '.')
        || (mode == Mode::Labels && c == '/')
        || (mode == Mode::Fields && c == '/')
}

/// A Kubernetes label name or value: at most 63 characters, alphanumeric at both ends,
/// `-`, `_`, `.` between.
fn valid_label_part(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() <= names::MAX_LABEL
        && (b.is_empty()
            || (b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))))
}

fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    !name.is_empty()
        && valid_label_part(name)
        && prefix.is_none_or(|p| !p.is_empty() && names::validate_name(p).is_ok())
}

impl Parser<'_> {
    fn fail<T>(&self, expected: &str) -> Result<T> {
        Err(Error::InvalidSelector {
            selector: self.text.to_owned(),
            position: self.pos,
            expected: expected.to_owned(),
        })
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches(is_space);
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn key(&mut self) -> Result<String> {
        self.skip_ws();
        let start = self.pos;
        let len = self.rest().find(|c| !is_key_char(c, self.mode)).unwrap_or(self.rest().len());
        let key = &self.text[start..start + len];
        let valid = match self.mode {
            Mode::Labels => valid_label_key(key),
            Mode::Fields => !key.is_empty() && key.split('.').all(|s| !s.is_empty()),
        };
        if !valid {
            return self.fail(match self.mode {
                Mode::Labels => "a label key ([prefix/]name: letters, digits, '-', '_', '.', at most 63)",
                Mode::Fields => "a field path (like status.phase)",
            });
        }
        self.pos += len;
        Ok(key.to_owned())
    }

    fn value(&mut self) -> Result<String> {
        let value = self.raw_value()?;
        if self.mode == Mode::Labels && !valid_label_part(&value) {
            self.pos = self.value_start;
            return self.fail(
                "a label value (at most 63 letters, digits, '-', '_', '.', alphanumeric at both ends)",
            );
        }
        Ok(value)
    }

    /// The number after `>` or `<`: an integer for labels (as Kubernetes), an integer or a
    /// decimal for fields.
    fn bound(&mut self) -> Result<Num> {
        let text = self.raw_value()?;
        let number = match self.mode {
            Mode::Labels if valid_label_part(&text) => Num::of_label(&text),
            Mode::Labels => None,
            Mode::Fields => Num::parse_decimal(&text),
        };
        match number {
            Some(number) => Ok(number),
            None => {
                self.pos = self.value_start;
                self.fail(match self.mode {
                    Mode::Labels => "an integer (like 7)",
                    Mode::Fields => "a number (like 20, -3 or 7.5)",
                })
            }
        }
    }

    /// A value up to white space, `,`, `(` or `)` (field values unescaped); the position
    /// moves past it and `value_start` marks where it began.
    fn raw_value(&mut self) -> Result<String> {
        self.skip_ws();
        let start = self.pos;
        self.value_start = start;
        let mut value = String::new();
        let mut chars = self.rest().char_indices().peekable();
        let mut end = self.rest().len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' if self.mode == Mode::Fields => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => {
                        self.pos = start + i;
                        return self.fail("a character after '\\'");
                    }
                },
                ',' | '(' | ')' => {
                    end = i;
                    break;
                }
                c if is_space(c) => {
                    end = i;
                    break;
                }
                c => value.push(c),
            }
        }
        self.pos = start + end;
        Ok(value)
    }

    fn requirement(&mut self) -> Result<Requirement> {
        if self.eat("!") {
            let key = self.key()?;
            return Ok(Requirement::new(key, Op::NotExists));
        }
        let key = self.key()?;
        self.skip_ws();
        if self.mode == Mode::Fields && self.eat("+") {
            let plus = self.amount()?;
            let after = if self.eat(">") {
                true
            } else if self.eat("<") {
                false
            } else {
                return self.fail("'<' or '>' after the added amount");
            };
            let op = self.ordered(after, Some(plus))?;
            return self.end_of_value(Requirement::new(key, op));
        }
        if self.eat("==") || self.eat("=") {
            let value = self.value()?;
            return self.end_of_value(Requirement::new(key, Op::Equals(value)));
        }
        if self.eat("!=") {
            let value = self.value()?;
            return self.end_of_value(Requirement::new(key, Op::NotEquals(value)));
        }
        if self.eat(">") {
            let op = self.ordered(true, None)?;
            return self.end_of_value(Requirement::new(key, op));
        }
        if self.eat("<") {
            let op = self.ordered(false, None)?;
            return self.end_of_value(Requirement::new(key, op));
        }
        let save = self.pos;
        let word_len = self.rest().find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(self.rest().len());
        match &self.rest()[..word_len] {
            "in" | "notin" => {
                let negate = word_len == 5;
                self.pos += word_len;
                let set = self.set()?;
                Ok(Requirement::new(key, if negate { Op::NotIn(set) } else { Op::In(set) }))
            }
            "" if self.at_end() || self.rest().starts_with(',') => Ok(Requirement::new(key, Op::Exists)),
            _ => {
                self.pos = save;
                self.fail("'=', '==', '!=', '>', '<', 'in', 'notin', ',' or the end of the selector")
            }
        }
    }

    /// The bound after `>` (`after`) or `<`: a timestamp (fields), else a number; with an
    /// added amount, a timestamp.
    fn ordered(&mut self, after: bool, plus: Option<(Unit, String)>) -> Result<Op> {
        let start = self.pos;
        if self.mode == Mode::Fields {
            let text = self.raw_value()?;
            let timed = plus.is_some();
            if let Some(bound) = TimeBound::parse(&text, plus) {
                return Ok(if after { Op::After(Box::new(bound)) } else { Op::Before(Box::new(bound)) });
            }
            if timed {
                self.pos = self.value_start;
                return self.fail("a timestamp (like 2026-12-04T14:00:00+00:00)");
            }
            self.pos = start;
        }
        let bound = self.bound()?;
        Ok(if after { Op::GreaterThan(bound) } else { Op::LessThan(bound) })
    }

    /// `unit(path)` after a `+`: an amount stored at `path`.
    fn amount(&mut self) -> Result<(Unit, String)> {
        self.skip_ws();
        let len = self.rest().find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(self.rest().len());
        let Some(unit) = Unit::parse(&self.rest()[..len]) else {
            return self.fail("seconds(, minutes( or hours( and the path of an amount");
        };
        self.pos += len;
        if !self.eat("(") {
            return self.fail("'(' before the path of the amount");
        }
        let path = self.key()?;
        if !self.eat(")") {
            return self.fail("')' after the path of the amount");
        }
        self.skip_ws();
        Ok((unit, path))
    }

    fn end_of_value(&mut self, r: Requirement) -> Result<Requirement> {
        self.skip_ws();
        if !(self.at_end() || self.rest().starts_with(',')) {
            return self.fail("',' or the end of the selector after the value");
        }
        Ok(r)
    }

    fn set(&mut self) -> Result<Vec<String>> {
        if !self.eat("(") {
            return self.fail("'(' to open the set of values");
        }
        let mut values = Vec::new();
        loop {
            values.push(self.value()?);
            if self.eat(")") {
                return Ok(values);
            }
            if !self.eat(",") {
                self.skip_ws();
                return self.fail("',' or ')' in the set of values");
            }
        }
    }
}
