//! Prometheus metrics (`/metrics`, or its own listener at `METRICS_ADDR`): requests by route
//! template, method and status with their latency, and the OAuth events an operator watches.
//! Label values are route templates and fixed words, never raw paths, tokens or client input.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The process's recorder, installed on first use: one per process, shared by every server
/// built in it (the split deployment runs two).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histograms are folded into their buckets by upkeep; without it they only grow.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .as_ref()
}

/// Installs the recorder, so that what happens before the first scrape is counted.
pub fn install() {
    if handle().is_none() {
        tracing::warn!("metrics are off: another recorder holds this process");
    }
}

/// The process's own figures (resident memory, CPU seconds, open files, threads), read at
/// each scrape.
fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

pub async fn scrape() -> Response {
    match handle() {
        Some(handle) => {
            process().collect();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are off").into_response(),
    }
}

/// Methods as labels: the standard ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Counts each answered request and records its latency, by route template.
pub async fn track(request: Request, next: Next) -> Response {
    let route = super::request_id::route_template(&request).to_owned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A grant type as a label: the two this server knows, or `other`.
pub fn grant_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    }
}

/// Counts the audit trail's events (`oauth_events_total{event, result}`): logins, consents,
/// codes, rotations, reuse detections, revocations, admin actions. The audit module is where
/// each of those facts is recorded once, so the counts come from there; both labels are fixed
/// words, never the subject or client.
pub struct AuditEvents;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AuditEvents {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "audit" {
            return;
        }
        let mut labels = AuditLabels::default();
        event.record(&mut labels);
        metrics::counter!("oauth_events_total", "event" => labels.event, "result" => labels.result).increment(1);
    }
}

#[derive(Default)]
struct AuditLabels {
    event: String,
    result: String,
}

impl tracing::field::Visit for AuditLabels {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "event" => self.event = value.to_owned(),
            "result" => self.result = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::{handle, install};
    use tracing_subscriber::prelude::*;

    #[test]
    fn audit_events_are_counted() {
        install();
        let filter = tracing_subscriber::EnvFilter::new("info");
        let logs = tracing_subscriber::fmt::layer().with_filter(filter).boxed();
        let subscriber = tracing_subscriber::registry().with(logs).with(super::AuditEvents);
        tracing::subscriber::with_default(subscriber, || {
            mcp_oauth_domain::audit::record(mcp_oauth_domain::audit::Event::Login, "alice", "c", "signed_in", "");
        });
        let rendered = handle().unwrap().render();
        assert!(rendered.contains(r#"oauth_events_total{event="login",result="signed_in"} 1"#), "{rendered}");
    }
}
