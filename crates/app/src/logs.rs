//! How log lines are chosen and stamped: on every request the access line passes both, so
//! each costs every request (README, Benchmarks).
//!
//! - [`directives_filter`]: `RUST_LOG` as tracing-subscriber's `Targets` where it is a list of
//!   targets and levels (as it nearly always is), and as `EnvFilter` only where it names spans
//!   or fields. `EnvFilter` looks each span up in a locked map every time the span is entered,
//!   left, recorded or closed, in case a directive names it.
//! - [`UtcMicros`]: timestamps as tracing-subscriber's `SystemTime` writes them (RFC 3339, UTC,
//!   microseconds), with the date and time of day formatted once a second per thread instead
//!   of field by field for every line (about 2,400 instructions a line).

use std::cell::Cell;
use std::fmt::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::registry::LookupSpan;

/// `RUST_LOG`'s directives as a per-layer filter; `info` if they cannot be read.
pub fn directives_filter<S>(directives: &str) -> Box<dyn Filter<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // `Targets` reads a span directive (`[request]=debug`) as a strange target, not an error.
    let names_spans = directives.contains(['[', '{']);
    if !names_spans && let Ok(targets) = directives.parse::<Targets>() {
        return targets.boxed();
    }
    FilterExt::<S>::boxed(EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info")))
}

/// `YYYY-MM-DDTHH:MM:SS`.
const SECOND_LEN: usize = 19;

#[derive(Clone, Copy, Default)]
pub struct UtcMicros;

impl FormatTime for UtcMicros {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_timestamp(w, SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default())
    }
}

fn write_timestamp(w: &mut impl Write, since_epoch: Duration) -> fmt::Result {
    thread_local! {
        static SECOND: Cell<(u64, [u8; SECOND_LEN])> = const { Cell::new((u64::MAX, [0; SECOND_LEN])) };
    }
    let seconds = since_epoch.as_secs();
    let cached = SECOND.with(|cached| {
        let (at, text) = cached.get();
        if at == seconds {
            return Some(text);
        }
        let text: [u8; SECOND_LEN] = format_second(seconds).as_bytes().try_into().ok()?;
        cached.set((seconds, text));
        Some(text)
    });
    match cached {
        Some(text) => w.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)?,
        // Past the year 9999 the width changes; no server runs then, but it stays correct.
        None => w.write_str(&format_second(seconds))?,
    }
    let mut micros = *b".000000Z";
    let mut value = since_epoch.subsec_micros();
    for digit in micros[1..7].iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
    w.write_str(std::str::from_utf8(&micros).map_err(|_| fmt::Error)?)
}

fn format_second(seconds: u64) -> String {
    match i64::try_from(seconds).ok().and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
        Some(at) => at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        // Beyond chrono's range (262,000 years): the seconds themselves.
        None => seconds.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    /// The targets and levels of the events a filter lets through.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let metadata = event.metadata();
            self.0.lock().unwrap().push(format!("{} {}", metadata.target(), metadata.level()));
        }
    }

    macro_rules! every_level {
        ($target:literal) => {
            tracing::trace!(target: $target, "t");
            tracing::debug!(target: $target, "d");
            tracing::info!(target: $target, "i");
            tracing::warn!(target: $target, "w");
            tracing::error!(target: $target, "e");
        };
    }

    fn seen_through(filter: Box<dyn Filter<tracing_subscriber::Registry> + Send + Sync>) -> Vec<String> {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(filter));
        tracing::subscriber::with_default(subscriber, || {
            every_level!("access");
            every_level!("rmcp::service");
            every_level!("mcp_oauth_app::http::oauth");
            every_level!("hyper");
        });
        seen.0.lock().unwrap().clone()
    }

    #[test]
    fn targets_and_levels_filter_as_env_filter_does() {
        for directives in
            ["info,rmcp=warn", "debug", "warn,access=off", "info,mcp_oauth_app=trace,hyper=error", "off", "bogus=loud"]
        {
            let reference = FilterExt::<tracing_subscriber::Registry>::boxed(
                EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new("info")),
            );
            assert_eq!(seen_through(directives_filter(directives)), seen_through(reference), "{directives}");
        }
        assert!(seen_through(directives_filter("warn,access=off")).iter().all(|e| !e.starts_with("access")));
    }

    #[test]
    fn directives_naming_spans_or_fields_keep_env_filter() {
        // A span directive reaches events inside that span only.
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone().with_filter(directives_filter("warn,[request]=debug")));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "hyper", "outside");
            let _entered = tracing::info_span!("request").entered();
            tracing::debug!(target: "hyper", "inside");
        });
        assert_eq!(*seen.0.lock().unwrap(), ["hyper DEBUG"]);
    }

    fn stamp(since_epoch: Duration) -> String {
        let mut out = String::new();
        write_timestamp(&mut out, since_epoch).unwrap();
        out
    }

    #[test]
    fn a_timestamp_is_written_as_tracing_subscribers_system_time_writes_it() {
        assert_eq!(stamp(Duration::new(1_796_564_569, 123_456_789)), "2026-12-06T13:42:49.123456Z");
        assert_eq!(stamp(Duration::new(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(stamp(Duration::new(951_782_400, 7_000)), "2000-02-29T00:00:00.000007Z");
    }

    #[test]
    fn the_cached_second_is_replaced_when_the_second_changes() {
        assert_eq!(stamp(Duration::new(1_796_564_569, 999_999_000)), "2026-12-06T13:42:49.999999Z");
        assert_eq!(stamp(Duration::new(1_796_564_570, 0)), "2026-12-06T13:42:50.000000Z");
        assert_eq!(stamp(Duration::new(1_796_564_569, 1_000)), "2026-12-06T13:42:49.000001Z");
    }
}
