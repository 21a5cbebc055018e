//! OAuth scopes (RFC 6749 section 3.3): a set of space-delimited tokens.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest scope string taken: far above any real request, and it bounds what a pending
/// authorization, a token record and a consent page carry.
pub const MAX_SCOPE_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeSyntaxError {
    #[error("scope must be space-delimited tokens of printable ASCII without quotes or backslashes")]
    Characters,
    #[error("scope is longer than {MAX_SCOPE_LEN} bytes")]
    TooLong,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(BTreeSet<String>);

fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, ScopeSyntaxError> {
        if raw.len() > MAX_SCOPE_LEN {
            return Err(ScopeSyntaxError::TooLong);
        }
        let mut tokens = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            if !token.chars().all(is_scope_char) {
                return Err(ScopeSyntaxError::Characters);
            }
            tokens.insert(token.to_owned());
        }
        Ok(Self(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.iter().cloned().collect::<Vec<_>>().join(" "))
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeSyntaxError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Scope> for String {
    fn from(value: Scope) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sets_and_rejects_bad_characters() {
        let scope = Scope::parse("mcp  mcp:read mcp").unwrap();
        assert_eq!(scope.to_string(), "mcp mcp:read");
        assert!(Scope::parse("mcp").unwrap().is_subset_of(&scope));
        assert!(!scope.is_subset_of(&Scope::parse("mcp").unwrap()));
        assert_eq!(Scope::parse("a\"b"), Err(ScopeSyntaxError::Characters));
        assert_eq!(Scope::parse("a\\b"), Err(ScopeSyntaxError::Characters));
        assert!(Scope::parse("").unwrap().is_empty());
        let longest = vec!["s"; MAX_SCOPE_LEN / 2].join(" ");
        assert!(Scope::parse(&longest).is_ok());
        assert_eq!(Scope::parse(&format!("{longest} xx")), Err(ScopeSyntaxError::TooLong));
    }
}
