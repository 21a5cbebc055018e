//! Prometheus metrics (`/metrics`, or its own listener at `METRICS_ADDR`): requests by route
//! template, method and status with their latency, and the OAuth events an operator watches.
//! Label values are route templates and fixed words, never raw paths, tokens or client input.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::metric_handles::Handles;

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

/// Applied to each route, where axum has named the route a request matched: names it in the
/// request's span (made before routing, in `request_id`), and counts each answered request with
/// its latency by route template.
#[derive(Clone, Default)]
pub struct TrackLayer(Arc<Handles<Box<str>, Arc<RouteMetrics>>>);

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner, routes: self.0.clone() }
    }
}

/// One route template's handles.
pub struct RouteMetrics {
    route: Box<str>,
    answered: Handles<(&'static str, u16), Counter>,
    latency: Handles<&'static str, Histogram>,
}

impl RouteMetrics {
    fn record(&self, method: &'static str, status: u16, took: Duration) {
        let route = &self.route;
        let answered = self.answered.get(&(method, status), || {
            let status_label = status.to_string();
            let handle = metrics::counter!("http_requests_total", "route" => route.to_string(), "method" => method, "status" => status_label);
            ((method, status), handle)
        });
        answered.increment(1);
        let latency = self.latency.get(method, || {
            (method, metrics::histogram!("http_request_duration_seconds", "route" => route.to_string(), "method" => method))
        });
        latency.record(took.as_secs_f64());
    }
}

#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    routes: Arc<Handles<Box<str>, Arc<RouteMetrics>>>,
}

impl<S> tower::Service<Request> for Tracked<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = super::request_id::route_template(&request);
        tracing::Span::current().record("route", route);
        let metrics = self.routes.get(route, || {
            let handles = RouteMetrics { route: route.into(), answered: Handles::default(), latency: Handles::default() };
            (route.into(), Arc::new(handles))
        });
        let method = method_label(request.method());
        TrackedFuture { inner: self.inner.call(request), metrics, method, started: Instant::now() }
    }
}

pin_project_lite::pin_project! {
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        metrics: Arc<RouteMetrics>,
        method: &'static str,
        started: Instant,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &answer {
            this.metrics.record(this.method, response.status().as_u16(), this.started.elapsed());
        }
        Poll::Ready(answer)
    }
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
