//! Who the upstream identity provider says the user is, and the access policy that decides
//! whether that user may sign in here at all.

use serde::{Deserialize, Serialize};

use crate::identity::Subject;

/// The user as the upstream identity provider vouched for them, mapped to our `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamIdentity {
    /// Our `sub`: the claim named by `UPSTREAM_SUBJECT_CLAIM`, stable across logins.
    pub subject: Subject,
    /// The upstream's own `sub` (OIDC) or user id (GitHub).
    pub upstream_subject: String,
    /// Present only when the upstream says it is verified; an unverified address is dropped.
    pub verified_email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// Which provider vouched ("Okta", "accounts.google.com"), for the consent page.
    pub provider: String,
}

impl UpstreamIdentity {
    /// How the consent page names the signed-in user.
    pub fn display(&self) -> &str {
        self.verified_email.as_deref().or(self.name.as_deref()).unwrap_or(self.subject.as_str())
    }
}

/// `ALLOWED_USERS`, `ALLOWED_EMAIL_DOMAINS`, `ALLOWED_GROUPS`. A user is admitted when every
/// list is empty, or when they match any entry of any list that is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Subjects or (verified) email addresses, compared case-insensitively for emails.
    pub users: Vec<String>,
    /// Domains of verified email addresses (`example.com` admits `a@example.com` only, not
    /// `a@sub.example.com`).
    pub email_domains: Vec<String>,
    pub groups: Vec<String>,
}

/// Why the policy refused a user; shown on the refusal page and logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

impl AccessPolicy {
    pub fn is_open(&self) -> bool {
        self.users.is_empty() && self.email_domains.is_empty() && self.groups.is_empty()
    }

    pub fn admit(&self, identity: &UpstreamIdentity) -> Result<(), Refusal> {
        if self.is_open() {
            return Ok(());
        }
        let email = identity.verified_email.as_deref().map(str::to_ascii_lowercase);
        let by_user = self.users.iter().any(|allowed| {
            allowed == identity.subject.as_str() || email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(allowed))
        });
        let by_domain = email.as_deref().and_then(|e| e.rsplit_once('@')).is_some_and(|(_, domain)| {
            self.email_domains.iter().any(|allowed| allowed.trim_start_matches('@').eq_ignore_ascii_case(domain))
        });
        let by_group = identity.groups.iter().any(|g| self.groups.contains(g));
        if by_user || by_domain || by_group {
            return Ok(());
        }
        Err(Refusal(format!("{} is not allowed to sign in to this server.", identity.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str, email: Option<&str>, groups: &[&str]) -> UpstreamIdentity {
        UpstreamIdentity {
            subject: Subject::parse(subject).unwrap(),
            upstream_subject: subject.into(),
            verified_email: email.map(str::to_owned),
            name: None,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            provider: "idp".into(),
        }
    }

    #[test]
    fn an_open_policy_admits_anyone_the_upstream_authenticated() {
        assert!(AccessPolicy::default().admit(&identity("x", None, &[])).is_ok());
    }

    #[test]
    fn users_domains_and_groups_each_admit() {
        let policy = AccessPolicy {
            users: vec!["alice".into(), "Bob@Example.org".into()],
            email_domains: vec!["example.com".into()],
            groups: vec!["mcp-users".into()],
        };
        assert!(policy.admit(&identity("alice", None, &[])).is_ok(), "by subject");
        assert!(policy.admit(&identity("u2", Some("bob@example.org"), &[])).is_ok(), "by email, any case");
        assert!(policy.admit(&identity("u3", Some("carol@EXAMPLE.com"), &[])).is_ok(), "by domain");
        assert!(policy.admit(&identity("u4", None, &["mcp-users"])).is_ok(), "by group");
        let refused = policy.admit(&identity("u5", Some("eve@sub.example.com"), &["other"])).unwrap_err();
        assert!(refused.0.contains("eve@sub.example.com"), "{refused}");
        assert!(policy.admit(&identity("u6", Some("eve@evil.com"), &[])).is_err());
    }
}
