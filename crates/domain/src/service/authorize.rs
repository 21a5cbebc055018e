//! The authorization endpoint and the consent decision (RFC 6749 section 4.1, RFC 9207).

use url::Url;

use crate::audit::{self, Event};
use crate::client::Client;
use crate::error::{ErrorCode, OAuthError, StorageError};
use crate::identity::{ClientId, Subject};
use crate::login::{UpstreamIdentity, UpstreamTokens};
use crate::metadata_document::DocumentUrl;
use crate::params::RequestParams;
use crate::pkce::CodeChallenge;
use crate::ports::{AuthorizationGrant, FamilyId, PendingAuthorization};
use crate::redirect_uri::{RedirectKind, RedirectUri};
use crate::resource::ResourceUri;
use crate::scope::Scope;
use crate::secret::{TokenDigest, generate_secret, secrets_equal};

use super::AuthorizationServer;
use super::clients::LookupError;

pub const MAX_STATE_LEN: usize = 2048;

/// Why /authorize could not proceed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: tell the user, never redirect.
    Page(OAuthError),
    /// No client has this id (any more): the user's application must register again.
    UnknownClient,
    /// The client is known and the redirect URI verified: send the error there.
    Redirect(Url),
}

/// What the consent page shows, and the two secrets that bind its form to the request.
#[derive(Debug)]
pub struct ConsentPrompt {
    pub request_id: String,
    pub csrf_token: String,
    pub client_id: ClientId,
    pub client_name: String,
    /// For a client known by its metadata document, the host that published it: the one
    /// thing about the client that is verified rather than self-declared.
    pub verified_origin: Option<String>,
    /// Every redirect URI of the client is on this machine or an app's private-use scheme:
    /// any local program could claim to be this client (MCP "Localhost Redirect URI Risks").
    pub local_redirects_only: bool,
    pub redirect_uri: RedirectUri,
    pub scope: Scope,
    pub resource: ResourceUri,
}

impl ConsentPrompt {
    pub(super) fn new(client: &Client, request_id: String, csrf_token: String, pending: PendingAuthorization) -> Self {
        let verified_origin = DocumentUrl::parse(client.client_id.as_str()).map(|url| url.host().to_owned());
        let local_redirects_only =
            verified_origin.is_some() && client.metadata.redirect_uris.iter().all(|uri| uri.kind() != RedirectKind::Https);
        Self {
            request_id,
            csrf_token,
            client_id: client.client_id.clone(),
            client_name: client.display_name().to_owned(),
            verified_origin,
            local_redirects_only,
            redirect_uri: pending.redirect_uri,
            scope: pending.scope,
            resource: pending.resource,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentDecision {
    /// The development login: the user typed a name.
    Approve {
        subject: String,
    },
    /// A user signed in at the upstream identity provider.
    ApproveSignedIn(Box<SignedIn>),
    Deny,
}

/// Who approved, as the upstream vouched, and the upstream's tokens from that login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub identity: UpstreamIdentity,
    pub tokens: Option<UpstreamTokens>,
}

/// A consent form post that cannot be honoured: shown to the user as a page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    #[error("This authorization request has expired or was already answered. Start again from your application.")]
    Expired,
    #[error("The form could not be verified. Start again from your application.")]
    Forged,
    #[error("{0}")]
    BadInput(&'static str),
    /// Storage failed; the cause is logged, never shown.
    #[error("The server cannot complete this request right now. Try again shortly.")]
    Unavailable(StorageError),
}

impl AuthorizationServer {
    fn authorization_response(&self, redirect_uri: &RedirectUri, params: &[(&str, &str)], state: Option<&str>) -> Url {
        let mut all = params.to_vec();
        if let Some(state) = state {
            all.push(("state", state));
        }
        all.push(("iss", self.policy.issuer.as_str()));
        redirect_uri.with_params(all)
    }

    pub fn error_redirect(&self, redirect_uri: &RedirectUri, error: &OAuthError, state: Option<&str>) -> Url {
        self.authorization_response(
            redirect_uri,
            &[("error", error.code.as_str()), ("error_description", &error.description)],
            state,
        )
    }

    /// Validates an authorization request and parks it until the user decides.
    #[tracing::instrument(name = "oauth.authorize", level = "debug", skip_all)]
    pub async fn authorize(&self, params: &RequestParams) -> Result<ConsentPrompt, AuthorizeError> {
        let page = |e: &str| AuthorizeError::Page(OAuthError::invalid_request(e.to_owned()));

        let client_id = params.single("client_id").map_err(AuthorizeError::Page)?.ok_or_else(|| page("client_id is required"))?;
        let client = match self.find_client(&ClientId::from(client_id)).await {
            Ok(Some(client)) => client,
            Ok(None) => return Err(AuthorizeError::UnknownClient),
            Err(LookupError::Storage(e)) => return Err(AuthorizeError::Page(e.into())),
            Err(LookupError::Document(reason)) => return Err(page(&reason)),
        };
        let lifetimes = &self.policy.lifetimes;
        self.keep_client(&client, lifetimes.client.max(lifetimes.pending_auth + lifetimes.code)).await;
        let presented =
            params.single("redirect_uri").map_err(AuthorizeError::Page)?.ok_or_else(|| page("redirect_uri is required"))?;
        if client.redirect_uri_for(presented).is_none() {
            return Err(page("redirect_uri is not registered for this client"));
        }
        let redirect_uri = RedirectUri::parse(presented).map_err(|e| page(&e.to_string()))?;

        // From here on errors go back to the verified redirect URI.
        // An over-long state is refused without being echoed back.
        let raw_state = params.single("state");
        let state = raw_state.clone().ok().flatten().filter(|s| s.len() <= MAX_STATE_LEN);
        let redirect = |e: OAuthError| AuthorizeError::Redirect(self.error_redirect(&redirect_uri, &e, state));
        if raw_state.clone().map_err(redirect)?.is_some_and(|s| s.len() > MAX_STATE_LEN) {
            return Err(redirect(OAuthError::invalid_request(format!("state is longer than {MAX_STATE_LEN} bytes"))));
        }
        let single = |name: &str| params.single(name).map_err(redirect);

        match single("response_type")? {
            Some("code") => {}
            None => {
                return Err(redirect(OAuthError::invalid_request("response_type is required")));
            }
            Some(_) => {
                return Err(redirect(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )));
            }
        }
        let code_challenge = CodeChallenge::parse(single("code_challenge")?, single("code_challenge_method")?)
            .map_err(|e| redirect(OAuthError::invalid_request(e.to_string())))?;
        let scope = self.requested_scope(single("scope")?, client.metadata.scope.as_ref()).map_err(redirect)?;
        let resource = self.requested_resource(params).map_err(redirect)?;

        let request_id = generate_secret();
        let csrf_token = generate_secret();
        let pending = PendingAuthorization {
            client_id: client.client_id.clone(),
            redirect_uri,
            code_challenge,
            scope,
            resource,
            state: state.map(str::to_owned),
            csrf_digest: TokenDigest::of(&csrf_token),
            created_at: self.clock.now(),
            expires_at: self.lifetime_end(self.policy.lifetimes.pending_auth),
        };
        if let Err(e) = self.stores.pending.insert(&TokenDigest::of(&request_id), &pending).await {
            return Err(AuthorizeError::Redirect(self.error_redirect(
                &pending.redirect_uri,
                &e.into(),
                pending.state.as_deref(),
            )));
        }
        Ok(ConsentPrompt::new(&client, request_id, csrf_token, pending))
    }

    fn requested_scope(&self, raw: Option<&str>, registered: Option<&Scope>) -> Result<Scope, OAuthError> {
        let allowed = registered.unwrap_or(&self.policy.scopes);
        let requested = match raw {
            None => return Ok(allowed.clone()),
            Some(raw) => Scope::parse(raw).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?,
        };
        if requested.is_empty() {
            return Ok(allowed.clone());
        }
        if !requested.is_subset_of(allowed) || !requested.is_subset_of(&self.policy.scopes) {
            return Err(OAuthError::new(ErrorCode::InvalidScope, format!("scope may only contain: {allowed}")));
        }
        Ok(requested)
    }

    fn requested_resource(&self, params: &RequestParams) -> Result<ResourceUri, OAuthError> {
        let invalid_target = |d: String| OAuthError::new(ErrorCode::InvalidTarget, d);
        let raw = params.single("resource").map_err(|_| invalid_target("one resource per request is supported".into()))?;
        self.resolve_resource(raw).map_err(invalid_target)
    }

    /// Resolves an RFC 8707 `resource` parameter; without one, a server that protects a
    /// single resource uses it.
    pub(super) fn resolve_resource(&self, raw: Option<&str>) -> Result<ResourceUri, String> {
        let resources = &self.policy.resources;
        match raw {
            None if resources.len() == 1 => Ok(resources[0].clone()),
            None => Err("resource is required".into()),
            Some(raw) => ResourceUri::parse(raw)
                .ok()
                .filter(|r| resources.contains(r))
                .ok_or_else(|| format!("resource must be one of: {}", join(resources))),
        }
    }

    /// Applies the user's decision: a code on approval, `access_denied` on denial, both
    /// delivered by redirect. `csrf_cookie` and `csrf_field` must be the token issued with the
    /// page.
    #[tracing::instrument(name = "oauth.decide", level = "debug", skip_all)]
    pub async fn decide(
        &self,
        request_id: &str,
        csrf_field: &str,
        csrf_cookie: Option<&str>,
        decision: ConsentDecision,
    ) -> Result<Url, ConsentError> {
        let unavailable = ConsentError::Unavailable;
        let key = TokenDigest::of(request_id);
        let approved = match &decision {
            ConsentDecision::Approve { subject } => {
                Some(Subject::parse(subject).map_err(|e| ConsentError::BadInput(e.message()))?)
            }
            ConsentDecision::ApproveSignedIn(signed_in) => Some(signed_in.identity.subject.clone()),
            ConsentDecision::Deny => None,
        };
        // Only one decision per request, however many posts race here. Taken before the CSRF
        // token is checked against it (one round trip, not two); a forged post puts it back.
        let pending = self.stores.pending.take(&key).await.map_err(unavailable)?.ok_or(ConsentError::Expired)?;
        let csrf_ok =
            csrf_cookie.is_some_and(|cookie| secrets_equal(cookie, csrf_field)) && pending.csrf_digest.matches(csrf_field);
        if !csrf_ok {
            self.stores.pending.insert(&key, &pending).await.map_err(unavailable)?;
            return Err(ConsentError::Forged);
        }
        let state = pending.state.as_deref();
        let dev_subject = match &decision {
            ConsentDecision::Approve { subject } => Some(subject.as_str()),
            _ => None,
        };
        if let Some(subject) = dev_subject {
            audit::record(Event::Login, subject, pending.client_id.as_str(), "signed_in", "development login");
        }
        let consented = if approved.is_some() { "approved" } else { "denied" };
        let who = approved.as_ref().map_or("", Subject::as_str);
        audit::record(Event::Consent, who, pending.client_id.as_str(), consented, "");
        let Some(subject) = approved else {
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
            return Ok(self.error_redirect(&pending.redirect_uri, &denied, state));
        };
        let code = generate_secret();
        let grant = AuthorizationGrant {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.as_str().to_owned(),
            code_challenge: pending.code_challenge.clone(),
            scope: pending.scope.clone(),
            resource: pending.resource.clone(),
            subject,
            family: FamilyId::generate(),
            issued_at: self.clock.now(),
            expires_at: self.lifetime_end(self.policy.lifetimes.code),
        };
        // The upstream grant and the remembered approval are written before the code exists,
        // so that no token is ever issued without them.
        if let ConsentDecision::ApproveSignedIn(signed_in) = &decision
            && let Err(e) = self.keep_signed_in_approval(&pending, &grant.family, signed_in).await
        {
            return Ok(self.error_redirect(&pending.redirect_uri, &e.into(), state));
        }
        if let Err(e) = self.stores.codes.insert(&TokenDigest::of(&code), &grant).await {
            return Ok(self.error_redirect(&pending.redirect_uri, &e.into(), state));
        }
        audit::record(Event::CodeIssued, grant.subject.as_str(), grant.client_id.as_str(), "issued", "");
        Ok(self.authorization_response(&pending.redirect_uri, &[("code", &code)], state))
    }
}

fn join(resources: &[ResourceUri]) -> String {
    resources.iter().map(ResourceUri::as_str).collect::<Vec<_>>().join(", ")
}
