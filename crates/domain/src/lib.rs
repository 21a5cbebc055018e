//! The core of mcp-oauth-server: entities, the five storage ports and the OAuth 2.1 rules.
//!
//! Nothing here performs I/O. HTTP lives in `mcp-oauth-app`, bytes at rest in `mcp-oauth-adapters`.

pub mod audit;
pub mod client;
pub mod clock;
pub mod error;
pub mod grace;
pub mod grant;
pub mod identity;
pub mod inventory;
pub mod login;
pub mod metadata_document;
pub mod params;
pub mod pkce;
pub mod ports;
pub mod rate_limit;
pub mod redirect_uri;
pub mod resource;
pub mod scope;
pub mod secret;
pub mod service;
pub mod validation;

pub use error::{ErrorCode, OAuthError, StorageError};
