//! The cookies of the browser pages (consent CSRF, login session, sign-in binding): always
//! HttpOnly. Over https they are Secure and carry the `__Host-` prefix, which makes the
//! browser refuse the same name set by a sibling subdomain or over plain http; such a cookie
//! must have `Path=/`, so its own path applies over http only.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};

use super::AppState;

/// A `Set-Cookie` value; a `max_age_secs` of zero deletes the cookie.
pub fn set(
    state: &AppState,
    name: String,
    value: String,
    path: &'static str,
    same_site: SameSite,
    max_age_secs: i64,
) -> HeaderValue {
    let https = is_https(state);
    let (name, path) = if https { (format!("{HOST_PREFIX}{name}"), "/") } else { (name, path) };
    let cookie = Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(https)
        .same_site(same_site)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie names and base64url values are valid header text")
}

const HOST_PREFIX: &str = "__Host-";

fn is_https(state: &AppState) -> bool {
    state.settings.issuer.as_str().starts_with("https://")
}

/// The value of the cookie `name` (as [`set`] named it) the browser sent, if any.
pub fn value(state: &AppState, headers: &HeaderMap, name: &str) -> Option<String> {
    let prefixed;
    let name = if is_https(state) {
        prefixed = format!("{HOST_PREFIX}{name}");
        prefixed.as_str()
    } else {
        name
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}
