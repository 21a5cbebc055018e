//! What the upstream login adds to the consent step: remembered approvals, a request resumed
//! after the trip to the upstream, a request refused on the user's behalf, and the upstream
//! grant kept with the authorization family.

use url::Url;

use crate::error::{OAuthError, StorageError};
use crate::identity::{ClientId, Subject};
use crate::login::{RememberedConsent, UpstreamGrant};
use crate::ports::{FamilyId, PendingAuthorization, lifetime_end};
use crate::resource::ResourceUri;
use crate::scope::Scope;
use crate::secret::{TokenDigest, generate_secret};

use super::AuthorizationServer;
use super::authorize::{ConsentError, ConsentPrompt, SignedIn};
use super::clients::LookupError;

impl AuthorizationServer {
    /// Whether `subject` approved this client for these scopes and this resource before, and
    /// the approval is still remembered. A client is therefore always shown once: nothing is
    /// remembered before the user approved it on the page.
    pub async fn remembers(
        &self,
        subject: &Subject,
        client_id: &ClientId,
        scope: &Scope,
        resource: &ResourceUri,
    ) -> Result<bool, StorageError> {
        if self.policy.consent_ttl.is_zero() {
            return Ok(false);
        }
        let key = RememberedConsent::key(subject, client_id, scope, resource);
        let remembered = self.stores.consents.recall(&key).await?;
        Ok(remembered.is_some_and(|r| r.expires_at > self.clock.now() && &r.subject == subject))
    }

    /// The pending request under `pending`, taken and parked again under fresh secrets for the
    /// consent page shown after the upstream login. Its end does not move.
    #[tracing::instrument(name = "oauth.resume", level = "debug", skip_all)]
    pub async fn resume(&self, pending: &TokenDigest) -> Result<ConsentPrompt, ConsentError> {
        let unavailable = ConsentError::Unavailable;
        let request = self.stores.pending.take(pending).await.map_err(unavailable)?.ok_or(ConsentError::Expired)?;
        let client = match self.find_client(&request.client_id).await {
            Ok(Some(client)) => client,
            Ok(None) | Err(LookupError::Document(_)) => return Err(ConsentError::Expired),
            Err(LookupError::Storage(e)) => return Err(unavailable(e)),
        };
        let (request_id, csrf_token) = (generate_secret(), generate_secret());
        let parked = PendingAuthorization { csrf_digest: TokenDigest::of(&csrf_token), ..request };
        self.stores.pending.insert(&TokenDigest::of(&request_id), &parked).await.map_err(unavailable)?;
        Ok(ConsentPrompt::new(&client, request_id, csrf_token, parked))
    }

    /// Ends the pending request under `pending` with `error`, for the client's redirect URI.
    #[tracing::instrument(name = "oauth.refuse", level = "debug", skip_all)]
    pub async fn refuse(&self, pending: &TokenDigest, error: &OAuthError) -> Result<Url, ConsentError> {
        let request = self.stores.pending.take(pending).await.map_err(ConsentError::Unavailable)?.ok_or(ConsentError::Expired)?;
        Ok(self.error_redirect(&request.redirect_uri, error, request.state.as_deref()))
    }

    pub(super) async fn keep_signed_in_approval(
        &self,
        pending: &PendingAuthorization,
        family: &FamilyId,
        signed_in: &SignedIn,
    ) -> Result<(), StorageError> {
        let now = self.clock.now();
        if let (Some(tokens), Some(key)) = (&signed_in.tokens, &self.policy.vault_key) {
            let grant = UpstreamGrant {
                identity: signed_in.identity.clone(),
                tokens: key.seal(tokens, family.as_str()),
                expires_at: lifetime_end(now, self.policy.lifetimes.refresh),
            };
            self.stores.upstream_tokens.put(family, &grant).await?;
        }
        if !self.policy.consent_ttl.is_zero() {
            let subject = &signed_in.identity.subject;
            let key = RememberedConsent::key(subject, &pending.client_id, &pending.scope, &pending.resource);
            let consent = RememberedConsent {
                subject: subject.clone(),
                client_id: pending.client_id.clone(),
                approved_at: now,
                expires_at: lifetime_end(now, self.policy.consent_ttl),
            };
            self.stores.consents.remember(&key, &consent).await?;
        }
        Ok(())
    }
}
