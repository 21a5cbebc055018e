//! The upstream sign-in over HTTP: the trip to the identity provider, its callback
//! (`BASE_URI/login/callback`, the redirect URI to register there), the browser's login
//! session cookie and `/logout`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use cookie::SameSite;
use mcp_oauth_domain::login::{Callback, Login, LoginError, LoginSession, UpstreamError, attempt_tag};
use mcp_oauth_domain::{ErrorCode, OAuthError};

use super::authorize::{found, present_signed_in};
use super::extract::QueryParams;
use super::{AppState, cookies};
use crate::pages;

const SESSION_COOKIE: &str = "mcp_oauth_login";
const CALLBACK_PATH: &str = "/login/callback";

fn attempt_cookie_name(tag: &str) -> String {
    format!("mcp_oauth_login_attempt_{tag}")
}

/// Lax, so that the upstream's redirect back (a cross-site navigation) carries it.
fn cookie(state: &AppState, name: String, value: String, path: &'static str, max_age_secs: i64) -> HeaderValue {
    cookies::set(state, name, value, path, SameSite::Lax, max_age_secs)
}

fn unavailable_page(what: &str, cause: &str) -> Response {
    tracing::warn!(cause, "{what}");
    pages::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The sign-in cannot be completed right now. Try again shortly.",
        Some("temporarily_unavailable"),
    )
}

/// The browser's live login session and its cookie value, if it has one.
pub(super) async fn signed_in(
    state: &AppState,
    login: &Login,
    headers: &HeaderMap,
) -> Result<Option<(String, LoginSession)>, Response> {
    let Some(secret) = cookies::value(state, headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match login.session(&secret).await {
        Ok(session) => Ok(session.map(|s| (secret, s))),
        Err(cause) => Err(unavailable_page("login session lookup failed", &cause.to_string())),
    }
}

/// Sends the browser to the upstream for the pending request `request_id`.
pub(super) async fn start(state: &AppState, login: &Login, request_id: &str) -> Response {
    match login.begin(request_id).await {
        Ok(start) => {
            let mut response = found(&start.redirect);
            let max_age = i64::try_from(state.auth.policy().lifetimes.pending_auth.as_secs()).unwrap_or(i64::MAX);
            let binding = cookie(state, attempt_cookie_name(&start.tag), start.browser_secret, CALLBACK_PATH, max_age);
            response.headers_mut().append(header::SET_COOKIE, binding);
            response
        }
        Err(LoginError::Upstream(error)) => unavailable_page("the identity provider cannot be used", &error.to_string()),
        Err(error) => unavailable_page("a sign-in could not be started", &error.to_string()),
    }
}

pub async fn callback(State(state): State<Arc<AppState>>, headers: HeaderMap, QueryParams(params): QueryParams) -> Response {
    let Some(login) = state.login.clone() else {
        return pages::error(StatusCode::NOT_FOUND, "This server does not sign users in at an identity provider.", None);
    };
    let field = |name: &str| params.single(name).ok().flatten().map(str::to_owned);
    let callback = Callback {
        state: field("state"),
        code: field("code"),
        error: field("error"),
        error_description: field("error_description"),
    };
    let tag = callback.state.as_deref().map(attempt_tag).unwrap_or_default();
    let binding = cookies::value(&state, &headers, &attempt_cookie_name(&tag));
    let outcome = login.complete(&callback, binding.as_deref()).await;
    let mut response = match outcome {
        Ok(signed) => match state.auth.resume(&signed.pending).await {
            Ok(prompt) => {
                let mut response = present_signed_in(&state, &login, prompt, &signed.session_secret, signed.session).await;
                let max_age = i64::try_from(state.settings.config.login.login_session_ttl.as_secs()).unwrap_or(i64::MAX);
                let session = cookie(&state, SESSION_COOKIE.into(), signed.session_secret, "/", max_age);
                response.headers_mut().append(header::SET_COOKIE, session);
                response
            }
            Err(error) => pages::error(StatusCode::BAD_REQUEST, &error.to_string(), None),
        },
        Err(error) => refused(&state, error).await,
    };
    if binding.is_some() {
        let spent = cookie(&state, attempt_cookie_name(&tag), String::new(), CALLBACK_PATH, 0);
        response.headers_mut().append(header::SET_COOKIE, spent);
    }
    response
}

/// The page (or the client redirect) for a callback that signed nobody in.
async fn refused(state: &AppState, error: LoginError) -> Response {
    let page = |status, message: &str| pages::error(status, message, None);
    match error {
        LoginError::UnknownAttempt => {
            tracing::warn!("login callback with an unknown, expired or used state");
            page(
                StatusCode::BAD_REQUEST,
                "This sign-in is unknown, has expired, or was already used. Start again from your application.",
            )
        }
        LoginError::OtherBrowser => {
            tracing::warn!("login callback from a browser that did not start the sign-in");
            page(
                StatusCode::BAD_REQUEST,
                "This sign-in was started in another browser. Start again from your application in this one.",
            )
        }
        LoginError::Declined { pending } => {
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user declined at the identity provider");
            match state.auth.refuse(&pending, &denied).await {
                Ok(url) => found(&url),
                Err(error) => page(StatusCode::BAD_REQUEST, &error.to_string()),
            }
        }
        LoginError::Refused { pending, reason } => {
            let denied = OAuthError::new(ErrorCode::AccessDenied, "the user is not allowed to sign in to this server");
            match state.auth.refuse(&pending, &denied).await {
                Ok(url) => pages::refusal(&reason, &url),
                Err(error) => page(StatusCode::FORBIDDEN, &format!("{reason} {error}")),
            }
        }
        LoginError::Upstream(UpstreamError::Unavailable(cause)) => {
            unavailable_page("the identity provider is unavailable", &cause)
        }
        LoginError::Upstream(error) => {
            tracing::warn!(cause = %error, "sign-in at the identity provider failed verification");
            page(
                StatusCode::BAD_REQUEST,
                "The identity provider's answer could not be verified, so nobody was signed in. Start again from your application.",
            )
        }
        LoginError::Storage(cause) => unavailable_page("sign-in storage failed", &cause.to_string()),
    }
}

pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let (Some(login), Some(secret)) = (&state.login, cookies::value(&state, &headers, SESSION_COOKIE))
        && let Err(cause) = login.logout(&secret).await
    {
        return unavailable_page("sign-out failed", &cause.to_string());
    }
    let mut response = pages::message("Signed out", "You are signed out of this server.");
    let cleared = cookie(&state, SESSION_COOKIE.into(), String::new(), "/", 0);
    response.headers_mut().append(header::SET_COOKIE, cleared);
    response
}
