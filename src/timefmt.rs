//! Timestamps as operators read them: RFC 3339 in UTC with whole seconds
//! (`2026-11-30T07:09:20Z`). The one helper every role uses for dates in
//! files, registry entries and messages; and round-trip times with the
//! precision they deserve ([`round_trip`]).

use time::OffsetDateTime;

/// `t` as `YYYY-MM-DDTHH:MM:SSZ`, in UTC.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Now, as [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// Seconds since the Unix epoch, as [`rfc3339`]; out-of-range values are
/// shown as the raw number.
pub fn unix_rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .map(rfc3339)
        .unwrap_or_else(|| format!("{secs} (UNIX time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_in_utc_with_whole_seconds() {
        assert_eq!(unix_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(unix_rfc3339(u64::MAX), format!("{} (UNIX time)", u64::MAX));
        assert!(now_rfc3339().ends_with('Z'));
    }
}

/// A round-trip time with sensible precision: whole microseconds under a
/// millisecond (`87 µs`, loopback), two decimals under 10 ms (`1.25 ms`),
/// one under a second (`42.3 ms`), then seconds (`1.50 s`).
pub fn round_trip(d: std::time::Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 999.5 {
        format!("{us:.0} µs")
    } else if us < 9_995.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us < 999_950.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

#[cfg(test)]
mod round_trip_tests {
    use super::round_trip;
    use std::time::Duration;

    #[test]
    fn precision_follows_the_size() {
        assert_eq!(round_trip(Duration::from_nanos(87_400)), "87 µs");
        assert_eq!(round_trip(Duration::from_nanos(999_400)), "999 µs");
        assert_eq!(round_trip(Duration::from_nanos(999_600)), "1.00 ms");
        assert_eq!(round_trip(Duration::from_micros(1_254)), "1.25 ms");
        assert_eq!(round_trip(Duration::from_micros(42_345)), "42.3 ms");
        assert_eq!(round_trip(Duration::from_millis(1_500)), "1.50 s");
        assert_eq!(round_trip(Duration::ZERO), "0 µs");
    }
}
