//! The extractors every OAuth endpoint takes its input through: parameters (query or form
//! body) as [`RequestParams`] for the domain to parse, and the registration's JSON body.
//! Rejections are OAuth JSON errors with the right status, so a malformed or oversized body
//! never falls through to axum's plain-text answers.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use mcp_oauth_domain::OAuthError;
use mcp_oauth_domain::params::RequestParams;

use super::error::{OAuthResponse, plain_json_error};

fn content_type_is(request: &Request, expected: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

/// Why a body could not be read.
pub enum BodyRejection {
    TooLarge,
    Invalid(OAuthError),
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        match self {
            Self::TooLarge => plain_json_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large"),
            Self::Invalid(error) => OAuthResponse(error).into_response(),
        }
    }
}

async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, BodyRejection> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BodyRejection::TooLarge
        } else {
            BodyRejection::Invalid(OAuthError::invalid_request("the request body could not be read"))
        }
    })
}

/// An `application/x-www-form-urlencoded` body as ordered name/value pairs.
pub struct FormParams(pub RequestParams);

impl<S: Send + Sync> FromRequest<S> for FormParams {
    type Rejection = BodyRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, "application/x-www-form-urlencoded") {
            return Err(BodyRejection::Invalid(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )));
        }
        let body = read_body(request, state).await?;
        let pairs = url::form_urlencoded::parse(&body).into_owned().collect();
        Ok(Self(RequestParams::new(pairs)))
    }
}

/// The query string as ordered name/value pairs (GET /authorize). Reading it cannot fail:
/// what the pairs mean is the domain's to judge.
pub struct QueryParams(pub RequestParams);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        Ok(Self(RequestParams::new(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect())))
    }
}

/// A JSON body, decoded into `T`. Only client registration (RFC 7591) takes JSON, so a
/// well-formed body of the wrong shape is `invalid_client_metadata`; a syntax error is
/// `invalid_request`.
pub struct JsonBody<T>(pub T);

fn decode_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    shape_error: impl FnOnce(String) -> OAuthError,
) -> Result<T, OAuthError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => shape_error(e.to_string()),
        _ => OAuthError::invalid_request(format!("the body is not valid JSON: {e}")),
    })
}

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = BodyRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !content_type_is(&request, "application/json") {
            return Err(BodyRejection::Invalid(OAuthError::invalid_request("the body must be application/json")));
        }
        let body = read_body(request, state).await?;
        let value = decode_json(&body, |e| OAuthError::new(mcp_oauth_domain::ErrorCode::InvalidClientMetadata, e))
            .map_err(BodyRejection::Invalid)?;
        Ok(Self(value))
    }
}
