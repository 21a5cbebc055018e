//! Request parameters as name/value pairs, read one at a time: OAuth parameters must not be
//! repeated (RFC 6749 section 3.1), so a repeated one is an error, not a silent choice.

use crate::error::OAuthError;

#[derive(Debug, Clone, Default)]
pub struct RequestParams {
    pairs: Vec<(String, String)>,
}

impl RequestParams {
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The parameter's value; an empty value counts as absent (RFC 6749 section 3.1).
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => Ok(Some(value).filter(|v| !v.is_empty())),
            (Some(_), Some(_)) => Err(OAuthError::invalid_request(format!("{name} must not be repeated"))),
        }
    }

    pub fn owned(&self, name: &str) -> Result<Option<String>, OAuthError> {
        self.single(name).map(|v| v.map(str::to_owned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_are_absent() {
        let params = RequestParams::new(vec![
            ("a".into(), "1".into()),
            ("b".into(), "".into()),
            ("c".into(), "1".into()),
            ("c".into(), "2".into()),
        ]);
        assert_eq!(params.single("a").unwrap(), Some("1"));
        assert_eq!(params.single("b").unwrap(), None);
        assert_eq!(params.single("missing").unwrap(), None);
        assert!(params.single("c").is_err());
    }
}
