//! The audit trail: one structured event per authorization fact (a sign-in, a consent, a
//! registration, a code issued or redeemed, a rotation, a reuse detected, a revocation, a
//! refused introspection), under the tracing target `audit`. The binary writes that target as
//! JSON lines to `AUDIT_LOG`; the request's span adds the time, the request id and the client
//! address. Never a secret: subjects and client ids only.

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Login,
    Consent,
    ClientRegistered,
    ClientDeleted,
    CodeIssued,
    CodeRedeemed,
    CodeReuseDetected,
    RefreshRotated,
    RefreshReuseDetected,
    Revocation,
    IntrospectionRefused,
    RateLimited,
    /// An operator's command through the admin API.
    AdminAction,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Consent => "consent",
            Self::ClientRegistered => "client_registered",
            Self::ClientDeleted => "client_deleted",
            Self::CodeIssued => "code_issued",
            Self::CodeRedeemed => "code_redeemed",
            Self::CodeReuseDetected => "code_reuse_detected",
            Self::RefreshRotated => "refresh_rotated",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::Revocation => "revocation",
            Self::IntrospectionRefused => "introspection_refused",
            Self::RateLimited => "rate_limited",
            Self::AdminAction => "admin_action",
        }
    }
}

/// Records `event` for `subject` (empty when unknown) and `client_id`, with its result and,
/// for a refusal, its reason.
pub fn record(event: Event, subject: &str, client_id: &str, result: &str, reason: &str) {
    tracing::info!(target: "audit", event = event.as_str(), subject, client_id, result, reason, "audit");
}
