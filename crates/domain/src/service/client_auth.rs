//! Client authentication at the token, introspection and revocation endpoints.

use crate::client::{Client, TokenEndpointAuthMethod};
use crate::error::OAuthError;
use crate::identity::ClientId;
use crate::secret::secrets_equal;

use super::AuthorizationServer;

/// How the client identified itself, as parsed at the HTTP boundary.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientCredentials {
    /// `Authorization: Basic` (client_secret_basic).
    Basic {
        client_id: ClientId,
        secret: String,
    },
    /// `client_id` and `client_secret` in the form body (client_secret_post).
    Post {
        client_id: ClientId,
        secret: String,
    },
    /// `client_id` alone: a public client.
    Public {
        client_id: ClientId,
    },
    Missing,
}

impl ClientCredentials {
    /// The client_id presented, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { client_id, .. } | Self::Post { client_id, .. } | Self::Public { client_id } => Some(client_id.as_str()),
            Self::Missing => None,
        }
    }

    /// Whether a secret was presented: a wrong one is a guess.
    pub fn has_secret(&self) -> bool {
        matches!(self, Self::Basic { .. } | Self::Post { .. })
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { client_id, .. } => write!(f, "Basic({client_id})"),
            Self::Post { client_id, .. } => write!(f, "Post({client_id})"),
            Self::Public { client_id } => write!(f, "Public({client_id})"),
            Self::Missing => f.write_str("Missing"),
        }
    }
}

impl ClientCredentials {
    fn used_basic(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    fn method(&self) -> Option<TokenEndpointAuthMethod> {
        match self {
            Self::Basic { .. } => Some(TokenEndpointAuthMethod::ClientSecretBasic),
            Self::Post { .. } => Some(TokenEndpointAuthMethod::ClientSecretPost),
            Self::Public { .. } => Some(TokenEndpointAuthMethod::None),
            Self::Missing => None,
        }
    }

    fn parts(&self) -> Option<(&ClientId, Option<&str>)> {
        match self {
            Self::Basic { client_id, secret } | Self::Post { client_id, secret } => Some((client_id, Some(secret))),
            Self::Public { client_id } => Some((client_id, None)),
            Self::Missing => None,
        }
    }
}

/// Who is calling the introspection endpoint.
#[derive(Debug)]
pub(super) enum Introspector {
    /// A resource server with a configured credential: it may introspect any token.
    ResourceServer,
    /// A registered confidential client: it may introspect only its own tokens.
    Client(Box<Client>),
}

impl AuthorizationServer {
    /// Authenticates a registered client with the method it registered.
    pub(super) async fn authenticate_client(&self, credentials: &ClientCredentials) -> Result<Client, OAuthError> {
        let basic = credentials.used_basic();
        let (client_id, secret) =
            credentials.parts().ok_or_else(|| OAuthError::invalid_client("client authentication is required", false))?;
        let failed = || OAuthError::invalid_client("client authentication failed", basic);
        let unknown = || OAuthError::invalid_client("this client is not registered; register again", basic);
        let client = match self.find_client(client_id).await {
            Ok(found) => found.ok_or_else(unknown)?,
            Err(super::LookupError::Document(reason)) => return Err(OAuthError::invalid_client(reason, basic)),
            Err(super::LookupError::Storage(e)) => return Err(e.into()),
        };
        if credentials.method() != Some(client.auth_method()) {
            return Err(failed());
        }
        let authenticated = match (secret, &client.secret_digest) {
            (None, None) => true,
            (Some(secret), Some(digest)) => digest.matches(secret),
            _ => false,
        };
        if !authenticated {
            return Err(failed());
        }
        // Whatever it is given here (a refresh token above all) keeps it alive that long.
        let lifetimes = &self.policy.lifetimes;
        self.keep_client(&client, lifetimes.client.max(lifetimes.refresh)).await;
        Ok(client)
    }

    pub(super) async fn authenticate_introspector(&self, credentials: &ClientCredentials) -> Result<Introspector, OAuthError> {
        if let ClientCredentials::Basic { client_id, secret } | ClientCredentials::Post { client_id, secret } = credentials {
            let configured =
                self.policy.resource_servers.iter().find(|rs| secrets_equal(rs.client_id.as_str(), client_id.as_str()));
            if let Some(rs) = configured {
                return if rs.secret_digest.matches(secret) {
                    Ok(Introspector::ResourceServer)
                } else {
                    Err(OAuthError::invalid_client("client authentication failed", credentials.used_basic()))
                };
            }
        }
        let client = self.authenticate_client(credentials).await?;
        if !client.auth_method().is_confidential() {
            return Err(OAuthError::invalid_client("public clients may not introspect tokens", false));
        }
        Ok(Introspector::Client(Box::new(client)))
    }
}
