//! GET /authorize shows the consent page; POST /authorize applies the user's decision.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cookie::SameSite;
use mcp_oauth_domain::ErrorCode;
use mcp_oauth_domain::login::{Login, LoginSession};
use mcp_oauth_domain::redirect_uri::RedirectKind;
use mcp_oauth_domain::secret::TokenDigest;
use mcp_oauth_domain::service::{AuthorizeError, ConsentDecision, ConsentError, ConsentPrompt, SignedIn};

use super::extract::{FormParams, QueryParams};
use super::{AppState, cookies};
use crate::config::LoginSetup;
use crate::pages::{self, ConsentPage};

const AUTHORIZE_PATH: &str = "/authorize";

/// A 302 Found, the status RFC 6749 section 4.1.2 examples and most clients expect.
pub(super) fn found(url: &url::Url) -> Response {
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => pages::error(StatusCode::BAD_REQUEST, "The redirect URI cannot be used.", Some("invalid_request")),
    }
}

/// One cookie per pending request, so two consent tabs do not overwrite each other's token.
fn csrf_cookie_name(request_id: &str) -> String {
    format!("mcp_oauth_csrf_{}", &TokenDigest::of(request_id).to_hex()[..16])
}

/// Strict: the consent form is posted from this server's own page.
fn csrf_cookie(state: &AppState, name: String, value: String, max_age_secs: i64) -> HeaderValue {
    cookies::set(state, name, value, AUTHORIZE_PATH, SameSite::Strict, max_age_secs)
}

pub async fn show(State(state): State<Arc<AppState>>, headers: HeaderMap, QueryParams(params): QueryParams) -> Response {
    match state.auth.authorize(&params).await {
        Ok(prompt) => present(&state, &headers, prompt).await,
        Err(AuthorizeError::Redirect(url)) => found(&url),
        Err(AuthorizeError::UnknownClient) => {
            pages::error(StatusCode::BAD_REQUEST, &unknown_client(&state), Some("invalid_client"))
        }
        Err(AuthorizeError::Page(error)) => {
            crate::http::error::log_oauth_error(&error);
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let status = if error.code == ErrorCode::TemporarilyUnavailable { status } else { StatusCode::BAD_REQUEST };
            pages::error(status, &error.description, Some(error.code.as_str()))
        }
    }
}

/// What the browser gets for a parked request: with the development login, the consent page;
/// with an upstream login, the trip to the upstream unless the browser is signed in, then the
/// consent page, or straight back to the client when the user approved this before.
async fn present(state: &AppState, headers: &HeaderMap, prompt: ConsentPrompt) -> Response {
    let Some(login) = &state.login else {
        return consent_page(state, prompt, None);
    };
    let session = match super::login::signed_in(state, login, headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match session {
        Some((secret, session)) => present_signed_in(state, login, prompt, &secret, session).await,
        None => super::login::start(state, login, &prompt.request_id).await,
    }
}

/// The consent step for a signed-in user: skipped when the approval is remembered.
pub(super) async fn present_signed_in(
    state: &AppState,
    login: &Login,
    prompt: ConsentPrompt,
    session_secret: &str,
    session: LoginSession,
) -> Response {
    let subject = &session.identity.subject;
    match state.auth.remembers(subject, &prompt.client_id, &prompt.scope, &prompt.resource).await {
        Ok(true) => {
            let tokens = login.session_tokens(session_secret, &session);
            let decision = ConsentDecision::ApproveSignedIn(Box::new(SignedIn { identity: session.identity, tokens }));
            let csrf = prompt.csrf_token.clone();
            match state.auth.decide(&prompt.request_id, &csrf, Some(&csrf), decision).await {
                Ok(url) => found(&url),
                Err(error) => consent_error(error),
            }
        }
        Ok(false) => {
            let signed_in = format!("{}, via {}", session.identity.display(), login.provider_name());
            consent_page(state, prompt, Some(&signed_in))
        }
        Err(cause) => consent_error(ConsentError::Unavailable(cause)),
    }
}

fn consent_page(state: &AppState, prompt: ConsentPrompt, signed_in: Option<&str>) -> Response {
    let scope = prompt.scope.to_string();
    let resource = prompt.resource.to_string();
    let redirect_is_app = prompt.redirect_uri.kind() == RedirectKind::PrivateUse;
    let redirect_to = if redirect_is_app { format!("{}:", prompt.redirect_uri.scheme()) } else { prompt.redirect_uri.host() };
    let dev_login_exposed = matches!(state.settings.login, LoginSetup::Dev { exposed: true });
    let page = ConsentPage {
        style: pages::style(),
        // Relative, so the post reaches the host that set the CSRF cookie, even when the user
        // opened the page on another name for this server.
        action: "authorize",
        client_name: &prompt.client_name,
        verified_origin: prompt.verified_origin.as_deref(),
        local_redirects_only: prompt.local_redirects_only,
        redirect_to: &redirect_to,
        redirect_is_app,
        scope: &scope,
        resource: &resource,
        request_id: &prompt.request_id,
        csrf_token: &prompt.csrf_token,
        signed_in,
        dev_login_exposed,
    };
    let mut response = pages::consent(page, &prompt.redirect_uri.csp_source());
    let lifetime = i64::try_from(state.auth.policy().lifetimes.pending_auth.as_secs()).unwrap_or(i64::MAX);
    let cookie = csrf_cookie(state, csrf_cookie_name(&prompt.request_id), prompt.csrf_token, lifetime);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

fn consent_error(error: ConsentError) -> Response {
    let status = match error {
        ConsentError::Expired | ConsentError::BadInput(_) => StatusCode::BAD_REQUEST,
        ConsentError::Forged => StatusCode::FORBIDDEN,
        ConsentError::Unavailable(ref cause) => {
            crate::http::error::log_failure("temporarily_unavailable", &error.to_string(), Some(&cause.to_string()));
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    pages::error(status, &error.to_string(), None)
}

/// What happened to a client this server does not know, and what the user can do about it.
fn unknown_client(state: &AppState) -> String {
    let why = if state.settings.storage.forgets_on_restart() {
        "This server keeps registrations in memory, so it forgets them when it restarts; registrations also expire after 30 days."
    } else {
        "Registrations expire after 30 days, or the registration was removed."
    };
    format!(
        "The application that sent you here is not registered with this server. {why} \
         To continue, remove this server from your application (or sign out of it there) and add it again: \
         the application then registers anew and sends you back here."
    )
}

pub async fn decide(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<FormParams, super::extract::BodyRejection>,
) -> Response {
    let bad_form = |message: &str| pages::error(StatusCode::BAD_REQUEST, message, Some("invalid_request"));
    let Ok(FormParams(params)) = form else {
        return bad_form("The form could not be read. Start again from your application.");
    };
    let field = |name: &str| params.single(name).ok().flatten().unwrap_or_default().to_owned();
    let (request_id, csrf_field) = (field("request_id"), field("csrf_token"));
    if request_id.is_empty() || csrf_field.is_empty() {
        return bad_form("The form is incomplete. Start again from your application.");
    }
    let decision = match (field("decision").as_str(), &state.login) {
        ("approve", None) => ConsentDecision::Approve { subject: field("username") },
        ("approve", Some(login)) => match super::login::signed_in(&state, login, &headers).await {
            Ok(Some((secret, session))) => {
                let tokens = login.session_tokens(&secret, &session);
                ConsentDecision::ApproveSignedIn(Box::new(SignedIn { identity: session.identity, tokens }))
            }
            Ok(None) => {
                return pages::error(
                    StatusCode::BAD_REQUEST,
                    "Your sign-in has ended. Start again from your application.",
                    Some("login_required"),
                );
            }
            Err(response) => return response,
        },
        ("deny", _) => ConsentDecision::Deny,
        _ => return bad_form("Choose Approve or Deny."),
    };
    let cookie_name = csrf_cookie_name(&request_id);
    let cookie = cookies::value(&state, &headers, &cookie_name);
    match state.auth.decide(&request_id, &csrf_field, cookie.as_deref(), decision).await {
        Ok(url) => {
            let mut response = found(&url);
            response.headers_mut().append(header::SET_COOKIE, csrf_cookie(&state, cookie_name, String::new(), 0));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => consent_error(error),
    }
}
