//! Timestamps as operators read them: RFC 3339 in UTC with whole seconds
//! (`2026-11-30T07:09:20Z`). The one helper every role uses for dates in
//! files, registry entries and messages.

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
