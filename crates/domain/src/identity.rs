//! Who is who: the identifier of a registered client, and the user a grant is for.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A registered client's identifier (RFC 7591 `client_id`). Any string a request presents can
/// be looked up; only registration makes new ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// A fresh identifier: 256 random bits, base64url.
    pub fn generate() -> Self {
        Self(crate::secret::generate_secret())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ClientId {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for ClientId {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest user identifier accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("Enter a user name to approve.")]
    Empty,
    #[error("The user name must be at most 200 printable characters.")]
    Unusable,
}

impl SubjectError {
    /// What the consent page tells the user.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Empty => "Enter a user name to approve.",
            Self::Unusable => "The user name must be at most 200 printable characters.",
        }
    }
}

/// The user a grant is for: the `sub` of every token descended from it. Trimmed, not empty, at
/// most [`MAX_SUBJECT_LEN`] bytes, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

impl Subject {
    pub fn parse(raw: &str) -> Result<Self, SubjectError> {
        let subject = raw.trim();
        if subject.is_empty() {
            return Err(SubjectError::Empty);
        }
        if subject.len() > MAX_SUBJECT_LEN || subject.chars().any(char::is_control) {
            return Err(SubjectError::Unusable);
        }
        Ok(Self(subject.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Subject {
    type Error = SubjectError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Subject> for String {
    fn from(value: Subject) -> Self {
        value.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_trimmed_bounded_and_printable() {
        assert_eq!(Subject::parse("  alice ").unwrap().as_str(), "alice");
        assert_eq!(Subject::parse("   "), Err(SubjectError::Empty));
        assert_eq!(Subject::parse(&"a".repeat(201)), Err(SubjectError::Unusable));
        assert_eq!(Subject::parse("al\nice"), Err(SubjectError::Unusable));
        assert!(serde_json::from_str::<Subject>("\"\"").is_err(), "nor can one be read back invalid");
        assert_eq!(serde_json::to_string(&Subject::parse("bob").unwrap()).unwrap(), "\"bob\"");
    }

    #[test]
    fn client_ids_are_plain_strings_on_the_wire() {
        let id = ClientId::generate();
        assert_eq!(id.as_str().len(), 43);
        assert_eq!(serde_json::to_string(&ClientId::from("c-1")).unwrap(), "\"c-1\"");
    }
}
