//! Log line timestamps, as tracing-subscriber's `SystemTime` writes them (RFC 3339, UTC,
//! microseconds), with the date and time of day formatted once a second per thread instead of
//! field by field for every line: every request writes an access line, and its timestamp took
//! about 2,400 instructions of a small request's (README, Benchmarks).

use std::cell::Cell;
use std::fmt::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

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
