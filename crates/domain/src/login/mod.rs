//! Signing users in at their own identity provider: the login records and their ports, the
//! access policy, the login key that seals upstream tokens, the provider port with the rules
//! for what it answers, and the login service that runs one trip to the upstream.

mod identity;
mod ports;
mod provider;
mod service;
mod vault;

pub use identity::{AccessPolicy, Refusal, UpstreamIdentity};
pub use ports::{
    ConsentStore, LoginAttempt, LoginAttemptStore, LoginSession, LoginSessionStore, RememberedConsent, UpstreamGrant,
    UpstreamTokenStore,
};
pub use provider::{ClaimMapping, IdTokenExpectations, IdentityProvider, UpstreamError, check_id_token};
pub use service::{Callback, Login, LoginError, LoginSettings, LoginStart, SignedInBrowser, UpstreamUse, attempt_tag};
pub use vault::{SealedTokens, UpstreamTokens, VaultKey, VaultKeyError};
