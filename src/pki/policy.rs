//! What may go into a certificate: subject names (agent names become a DNS
//! or IP subject alternative name, dispatcher ids only a common name) and
//! validity periods, with RFC 3339 rendering of expiry times.

use std::net::IpAddr;

use rcgen::{DistinguishedName, DnType, SanType};
use time::{Duration, OffsetDateTime};

use super::PkiError;

/// `not_before` is set this far in the past to tolerate clock skew between hosts.
pub(super) const BACKDATE: Duration = Duration::minutes(5);
/// RFC 5280's upper bound for a common name.
const MAX_CN_LEN: usize = 64;

pub(super) fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// The subject alternative name for `name`: an IP address if it is one, a
/// DNS name if it is a valid one, otherwise none.
pub(super) fn san_for(name: &str) -> Option<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Some(SanType::IpAddress(ip));
    }
    rustls_pki_types::DnsName::try_from(name).ok()?;
    name.try_into().ok().map(SanType::DnsName)
}

pub fn check_agent_name(name: &str) -> Result<(), PkiError> {
    if san_for(name).is_none() {
        return Err(PkiError::InvalidName {
            kind: "agent name",
            name: name.to_string(),
            reason: "an agent certificate needs a valid DNS name or IP address \
                     (letters, digits, '-' and '.', no empty labels)",
        });
    }
    Ok(())
}

pub(super) fn check_dispatcher_id(id: &str) -> Result<(), PkiError> {
    let reason = if id.is_empty() {
        "it is empty"
    } else if id.len() > MAX_CN_LEN {
        "it is longer than 64 bytes"
    } else if id.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(PkiError::InvalidName { kind: "dispatcher id", name: id.to_string(), reason })
}

/// Now, truncated to whole seconds (certificates carry no fractions).
pub(super) fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    OffsetDateTime::from_unix_timestamp(now.unix_timestamp()).unwrap_or(now)
}

pub(super) fn not_after(now: OffsetDateTime, days: u32) -> Result<OffsetDateTime, PkiError> {
    if days == 0 {
        return Err(PkiError::InvalidDays { days, reason: "use at least 1 day".into() });
    }
    now.checked_add(Duration::days(i64::from(days)))
        .ok_or_else(|| PkiError::InvalidDays { days, reason: "the expiry date is out of range; use fewer days".into() })
}

pub(super) use crate::timefmt::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_the_right_san() {
        assert!(matches!(san_for("web-01.example"), Some(SanType::DnsName(_))));
        assert!(matches!(san_for("web1"), Some(SanType::DnsName(_))));
        assert!(matches!(san_for("10.0.0.7"), Some(SanType::IpAddress(_))));
        assert!(matches!(san_for("::1"), Some(SanType::IpAddress(_))));
        for bad in ["", "a..b", ".a", "a b", "caf\u{e9}"] {
            assert!(san_for(bad).is_none(), "{bad:?}");
            assert!(check_agent_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_dispatcher_id("dispatcher one").is_ok());
        for bad in ["", "a\nb", &"x".repeat(65)] {
            assert!(check_dispatcher_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validity_and_rfc3339() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(not_after(t, 1).unwrap()), "2023-11-15T22:13:20Z");
        assert!(not_after(t, 0).is_err());
        assert!(not_after(t, u32::MAX).is_err());
        assert_eq!(now_utc().nanosecond(), 0);
    }
}
