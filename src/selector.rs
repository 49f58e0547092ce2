//! Kubernetes label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
//! joined by commas (AND). Parsed once, evaluated on the labels of stored documents.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One requirement on one label key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

fn label<'a>(labels: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    labels?.get(key)?.as_str()
}

impl Requirement {
    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        match self {
            Requirement::Equals(k, v) => label(labels, k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(labels, k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(labels, k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => !label(labels, k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => labels.is_some_and(|m| m.contains_key(k)),
            Requirement::NotExists(k) => !labels.is_some_and(|m| m.contains_key(k)),
        }
    }
}

impl LabelSelector {
    /// Equality on each pair (a Python `dict` selector).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        LabelSelector { requirements: pairs.into_iter().map(|(k, v)| Requirement::Equals(k, v)).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a document's labels satisfy every requirement.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Parse the Kubernetes selector grammar.
    pub fn parse(text: &str) -> Result<Self> {
        Parser { text, pos: 0 }.selector()
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

impl Parser<'_> {
    fn fail<T>(&self, expected: &str) -> Result<T> {
        Err(Error::InvalidSelector {
            selector: self.text.to_owned(),
            position: self.pos,
            expected: expected.to_owned(),
        })
    }

    fn skip_ws(&mut self) {
        while self.rest().starts_with(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
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

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        let len = self.rest().find(|c: char| !is_word(c)).unwrap_or(self.rest().len());
        self.pos += len;
        &self.text[start..self.pos]
    }

    fn key(&mut self) -> Result<String> {
        let key = self.word().to_owned();
        if key.is_empty() {
            return self.fail("a label key");
        }
        Ok(key)
    }

    fn selector(mut self) -> Result<LabelSelector> {
        let mut requirements = Vec::new();
        self.skip_ws();
        if self.rest().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_ws();
            if self.rest().is_empty() {
                return Ok(LabelSelector { requirements });
            }
            if !self.eat(",") {
                return self.fail("',' or the end of the selector");
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement> {
        if self.eat("!") {
            let key = self.key()?;
            return Ok(Requirement::NotExists(key));
        }
        let key = self.key()?;
        self.skip_ws();
        if self.eat("==") || self.eat("=") {
            return Ok(Requirement::Equals(key, self.value()?));
        }
        if self.eat("!=") {
            return Ok(Requirement::NotEquals(key, self.value()?));
        }
        let save = self.pos;
        match self.word() {
            "in" => Ok(Requirement::In(key, self.set()?)),
            "notin" => Ok(Requirement::NotIn(key, self.set()?)),
            "" => Ok(Requirement::Exists(key)),
            _ => {
                self.pos = save;
                self.skip_ws();
                self.fail("'=', '==', '!=', 'in', 'notin', ',' or the end of the selector")
            }
        }
    }

    fn value(&mut self) -> Result<String> {
        let value = self.word().to_owned();
        if value.contains('/') {
            return self.fail("a label value (letters, digits, '-', '_', '.')");
        }
        self.skip_ws();
        if !(self.rest().is_empty() || self.rest().starts_with(',')) {
            return self.fail("',' or the end of the selector after the value");
        }
        Ok(value)
    }

    fn set(&mut self) -> Result<Vec<String>> {
        if !self.eat("(") {
            return self.fail("'(' to open the set of values");
        }
        let mut values = Vec::new();
        loop {
            let v = self.word().to_owned();
            if v.contains('/') {
                return self.fail("a label value");
            }
            values.push(v);
            if self.eat(")") {
                return Ok(values);
            }
            if !self.eat(",") {
                return self.fail("',' or ')' in the set of values");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    fn matches(s: &str, labels: Value) -> bool {
        sel(s).matches(labels.as_object())
    }

    #[test]
    fn every_form_parses() {
        use Requirement::*;
        let s = sel(" env = prod, tier==web,x!=y , k in (a, b),j notin(c),e, !f ");
        assert_eq!(
            s.requirements,
            vec![
                Equals("env".into(), "prod".into()),
                Equals("tier".into(), "web".into()),
                NotEquals("x".into(), "y".into()),
                In("k".into(), vec!["a".into(), "b".into()]),
                NotIn("j".into(), vec!["c".into()]),
                Exists("e".into()),
                NotExists("f".into()),
            ]
        );
        assert!(sel("").is_empty());
        assert_eq!(sel("example.com/app=x").requirements[0], Equals("example.com/app".into(), "x".into()));
    }

    #[test]
    fn kubernetes_semantics() {
        let l = json!({"lab-track": "ccna", "env": "prod"});
        assert!(matches("lab-track=ccna", l.clone()));
        assert!(matches("missing!=x", l.clone()), "!= holds when the key is absent");
        assert!(matches("missing notin (x)", l.clone()), "notin holds when the key is absent");
        assert!(!matches("missing in (x)", l.clone()));
        assert!(matches("env in (dev,prod),lab-track", l.clone()));
        assert!(!matches("!env", l.clone()));
        assert!(matches("", l));
        assert!(!matches("env", json!(null)));
    }

    #[test]
    fn errors_point_at_the_position() {
        for (text, pos) in [("a=b c", 4), ("a in b", 5), ("a in (b", 7), ("=x", 0), ("a b", 2), ("a=b,", 4)] {
            match LabelSelector::parse(text) {
                Err(Error::InvalidSelector { position, .. }) => {
                    assert_eq!(position, pos, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
