//! Server-rendered pages: the consent form and error pages. Askama escapes every value.

use std::sync::LazyLock;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f5f5f7;color:#1d1d1f;margin:0}\
main{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:12px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.4rem}code{background:#eee;padding:0 .25rem;border-radius:4px;word-break:break-all}\
.notice{background:#fff4d6;border:1px solid #f0c36d;padding:.75rem;border-radius:8px}\
label{display:block;margin-top:1rem;font-weight:600}input[type=text]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
.buttons{display:flex;gap:.75rem;margin-top:1.25rem}button{padding:.6rem 1.4rem;font-size:1rem;border-radius:8px;border:0;background:#0060df;color:#fff}\
button.secondary{background:#e0e0e5;color:#1d1d1f}";

/// The CSP hash of the one inline style, so the policy needs no 'unsafe-inline'.
static STYLE_HASH: LazyLock<String> = LazyLock::new(|| format!("'sha256-{}'", STANDARD.encode(Sha256::digest(STYLE))));

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub style: &'a str,
    pub action: &'a str,
    pub client_name: &'a str,
    /// The host of the client's metadata document: verified, unlike `client_name`.
    pub verified_origin: Option<&'a str>,
    /// Every redirect URI of that client is on this device (MCP "Localhost Redirect URI Risks").
    pub local_redirects_only: bool,
    /// The redirect URI's host, or for a private-use scheme the scheme (`cursor:`).
    pub redirect_to: &'a str,
    pub redirect_is_app: bool,
    pub scope: &'a str,
    pub resource: &'a str,
    pub request_id: &'a str,
    pub csrf_token: &'a str,
    /// Who is signed in at the upstream ("alice@example.com, via idp.example"); `None` with the
    /// development login.
    pub signed_in: Option<&'a str>,
    /// The development login on a URL others can reach.
    pub dev_login_exposed: bool,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    style: &'a str,
    title: &'a str,
    message: &'a str,
    code: Option<&'a str>,
    /// Where the user may go on (a link, never a form).
    next: Option<&'a str>,
}

/// Headers every page carries; `form_target` is the CSP source (an origin, or a private-use
/// scheme) the consent form's response may redirect to, which `form-action` must allow.
fn page_response(status: StatusCode, html: String, form_target: Option<&str>) -> Response {
    let form_action = match form_target {
        Some(origin) => format!("form-action 'self' {origin}"),
        None => "form-action 'none'".to_owned(),
    };
    let csp = format!("default-src 'none'; style-src {}; {form_action}; frame-ancestors 'none'; base-uri 'none'", *STYLE_HASH);
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

pub fn consent(page: ConsentPage<'_>, redirect_source: &str) -> Response {
    match page.render() {
        Ok(html) => page_response(StatusCode::OK, html, Some(redirect_source)),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("The page could not be rendered: {e}"), None),
    }
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub style: &'static str,
    pub title: &'static str,
    /// `BASE_URI/mcp`, where this process serves MCP.
    pub mcp_url: Option<String>,
    pub mode: &'static str,
    pub storage: &'static str,
    /// The metadata documents this process publishes, by name.
    pub metadata: Vec<(&'static str, String)>,
}

pub fn home(page: &HomePage) -> Response {
    match page.render() {
        Ok(html) => page_response(StatusCode::OK, html, None),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("The page could not be rendered: {e}"), None),
    }
}

pub fn error(status: StatusCode, message: &str, code: Option<&str>) -> Response {
    let page = ErrorPage { style: STYLE, title: "Authorization error", message, code, next: None };
    page_response(status, page.render().unwrap_or_else(|_| "Authorization error".to_owned()), None)
}

/// The access policy's refusal, with a link that tells the application (`access_denied`).
pub fn refusal(message: &str, back_to_client: &url::Url) -> Response {
    let page = ErrorPage {
        style: STYLE,
        title: "Not allowed",
        message,
        code: Some("access_denied"),
        next: Some(back_to_client.as_str()),
    };
    page_response(StatusCode::FORBIDDEN, page.render().unwrap_or_else(|_| "Not allowed".to_owned()), None)
}

/// A plain notice ("You are signed out").
pub fn message(title: &str, message: &str) -> Response {
    let page = ErrorPage { style: STYLE, title, message, code: None, next: None };
    page_response(StatusCode::OK, page.render().unwrap_or_else(|_| title.to_owned()), None)
}

pub fn style() -> &'static str {
    STYLE
}
