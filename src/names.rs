//! Kubernetes name rules: resource names are DNS-1123 subdomains, namespaces DNS-1123 labels.
//! A valid name has no `/`, so a key built from it can never leave its prefix; and a prefix
//! always ends in `/` ([`normalize_prefix`]), so no prefix holds another's keys.

use crate::error::{Error, Result};

/// Longest DNS-1123 subdomain (a resource name).
pub const MAX_NAME: usize = 253;
/// Longest DNS-1123 label (a namespace).
pub const MAX_LABEL: usize = 63;

fn invalid(name: &str, reason: impl Into<String>) -> Error {
    Error::InvalidName { name: name.to_owned(), reason: reason.into() }
}

fn check_label(whole: &str, part: &str) -> Result<()> {
    let bytes = part.as_bytes();
    if bytes.is_empty() {
        return Err(invalid(whole, "empty segment between dots"));
    }
    if let Some(c) = part.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        let reason = if c.is_ascii_uppercase() {
            format!("{c:?} is upper case; names are lower case")
        } else {
            format!("{c:?} is not allowed; use lower case letters, digits, '-' and '.'")
        };
        return Err(invalid(whole, reason));
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err(invalid(whole, "must start and end with a letter or digit"));
    }
    Ok(())
}

/// Check a resource name (DNS-1123 subdomain).
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid(name, "must not be empty"));
    }
    if name.len() > MAX_NAME {
        return Err(invalid(name, format!("longer than {MAX_NAME} characters ({})", name.len())));
    }
    name.split('.').try_for_each(|part| check_label(name, part))
}

/// Check a namespace (DNS-1123 label).
pub fn validate_namespace(namespace: &str) -> Result<()> {
    if namespace.is_empty() {
        return Err(invalid(namespace, "a namespace must not be empty"));
    }
    if namespace.len() > MAX_LABEL {
        return Err(invalid(namespace, format!("longer than {MAX_LABEL} characters ({})", namespace.len())));
    }
    if namespace.contains('.') {
        return Err(invalid(namespace, "a namespace cannot contain '.'"));
    }
    check_label(namespace, namespace)
}

/// A key prefix as every class that takes one keeps it: ending in exactly one `/`, the way
/// the Python backend this package replaces normalised it (`prefix.rstrip("/") + "/"`), so its
/// data is read where it wrote it. `"/x"` and `"/x/"` are the same prefix, and neither covers
/// `"/x-other/..."`. `"/"` (every key under `/`) is allowed; an empty prefix (the whole
/// keyspace, other tools' keys included) is refused.
pub fn normalize_prefix(prefix: &str) -> Result<String> {
    if prefix.is_empty() {
        return Err(Error::invalid("the key prefix must not be empty (use \"/\" for every key under /)"));
    }
    Ok(format!("{}/", prefix.trim_end_matches('/')))
}

/// Check a name prefix used for listing (`keys(pattern)`): a possibly empty start of a name.
pub fn validate_name_prefix(prefix: &str) -> Result<()> {
    if let Some(c) = prefix.chars().find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '.')) {
        return Err(invalid(prefix, format!("{c:?} cannot appear in a name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_names() {
        for ok in ["a", "worker-1", "w.example.com", "0abc", &"a".repeat(253)] {
            validate_name(ok).unwrap();
        }
        validate_namespace("labs-1").unwrap();
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "Worker",
            "a b",
            "../etc",
            "a/b",
            "-a",
            "a-",
            "a..b",
            ".a",
            "a.",
            "wörker",
            "a_b",
            &"a".repeat(254),
        ] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{bad:?} was accepted");
        }
        for bad in ["", "a.b", "A", &"a".repeat(64)] {
            assert!(validate_namespace(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prefixes_end_in_one_slash() {
        for (given, kept) in [
            ("/x", "/x/"),
            ("/x/", "/x/"),
            ("/x//", "/x/"),
            ("/lab-workers", "/lab-workers/"),
            ("/a/b", "/a/b/"),
            ("/", "/"),
            ("//", "/"),
            // No leading `/` is added: the Python backend did not add one either.
            ("lab-workers", "lab-workers/"),
        ] {
            assert_eq!(normalize_prefix(given).unwrap(), kept, "{given:?}");
        }
        assert!(matches!(normalize_prefix(""), Err(Error::InvalidArgument { .. })));
        // The point of it: one prefix's key range never holds another's keys.
        let x = normalize_prefix("/x").unwrap();
        assert!(!"/x-other/a".starts_with(&x));
        assert!("/x/a".starts_with(&x));
    }

    #[test]
    fn reasons_are_specific() {
        let msg = validate_name("Worker").unwrap_err().to_string();
        assert!(msg.contains("upper case"), "{msg}");
        assert!(validate_name_prefix("work").is_ok());
        assert!(validate_name_prefix("a/").is_err());
    }
}
