//! Requests to other servers (the identity provider, an authorization server's introspection
//! and JWKS, metadata-document hosts), each counted and timed:
//! `outbound_requests_total{peer, call, outcome}` and
//! `outbound_request_duration_seconds{peer, call}` (until the answer's headers), in a
//! debug-level `outbound` span. Labels are fixed words; never a URL, which may carry input.

use std::time::Instant;

use tracing::Instrument;

/// Sends `request` to `peer` for `call`, measured.
pub async fn send(
    peer: &'static str,
    call: &'static str,
    request: reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    let started = Instant::now();
    let answer = request.send().instrument(tracing::debug_span!("outbound", peer, call)).await;
    let outcome = match &answer {
        Ok(response) if response.status().is_success() => "ok",
        Ok(response) if response.status().is_redirection() => "redirect",
        Ok(response) if response.status().is_client_error() => "client_error",
        Ok(_) => "server_error",
        Err(error) if error.is_timeout() => "timeout",
        Err(_) => "unreachable",
    };
    metrics::counter!("outbound_requests_total", "peer" => peer, "call" => call, "outcome" => outcome).increment(1);
    metrics::histogram!("outbound_request_duration_seconds", "peer" => peer, "call" => call)
        .record(started.elapsed().as_secs_f64());
    answer
}
