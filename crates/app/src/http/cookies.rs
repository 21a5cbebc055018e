//! The cookies of the browser pages (consent CSRF, login session, sign-in binding): always
//! HttpOnly, Secure when the server is reached over https.

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
    let cookie = Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .secure(state.settings.issuer.as_str().starts_with("https://"))
        .same_site(same_site)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("cookie names and base64url values are valid header text")
}

/// The value of the cookie `name` the browser sent, if any.
pub fn value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}
