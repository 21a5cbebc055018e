use crate::ports::{Registration, lifetime_end};

use crate::client::{Client, RegistrationRequest};
use crate::error::{ErrorCode, OAuthError};
use crate::identity::ClientId;
use crate::secret::{TokenDigest, generate_secret};

use super::AuthorizationServer;

/// A newly registered client and, for a confidential client, its secret: shown once, never
/// stored.
#[derive(Debug)]
pub struct RegisteredClient {
    pub client: Client,
    pub client_secret: Option<String>,
}

impl AuthorizationServer {
    /// Registers a client, if the registration policy lets `initial_access_token` (the
    /// request's bearer token, RFC 7591 section 3) do so.
    #[tracing::instrument(name = "oauth.register", level = "debug", skip_all)]
    pub async fn register(
        &self,
        request: RegistrationRequest,
        initial_access_token: Option<&str>,
    ) -> Result<RegisteredClient, OAuthError> {
        self.admit_registration(initial_access_token)?;
        let metadata = request.validate(&self.policy.scopes)?;
        let client_secret = metadata.token_endpoint_auth_method.is_confidential().then(generate_secret);
        let issued_at = self.clock.now();
        let client = Client {
            // Client ids are public but unguessable, so nobody can enumerate them.
            client_id: ClientId::generate(),
            secret_digest: client_secret.as_deref().map(TokenDigest::of),
            metadata,
            issued_at,
            expires_at: lifetime_end(issued_at, self.policy.lifetimes.client),
        };
        if self.stores.clients.insert(&client, self.policy.max_clients).await? == Registration::Full {
            tracing::warn!(max = self.policy.max_clients, "registration refused: MAX_CLIENTS clients are registered");
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this server holds as many registered clients as it allows; try again later",
            ));
        }
        let method = if client.auth_method().is_confidential() { "confidential" } else { "public" };
        crate::audit::record(crate::audit::Event::ClientRegistered, "", client.client_id.as_str(), "registered", method);
        Ok(RegisteredClient { client, client_secret })
    }
}
