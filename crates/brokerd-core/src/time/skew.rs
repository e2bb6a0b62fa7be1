//! Clock skew against a broker: its HTTP `Date` header minus our clock.
//! TOTP codes depend on a correct clock, so a skew is worth saying out loud.

use chrono::{DateTime, Utc};

/// The broker's clock minus ours, in whole seconds, from a `Date` header
/// (RFC 7231 IMF-fixdate). `None` when the header is missing or unreadable.
pub fn skew_secs(date_header: Option<&str>, local: DateTime<Utc>) -> Option<i64> {
    let remote = DateTime::parse_from_rfc2822(date_header?.trim()).ok()?;
    Some((remote.with_timezone(&Utc) - local).num_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_imf_fixdate() {
        let local = DateTime::parse_from_rfc3339("2026-11-24T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            skew_secs(Some("Tue, 24 Nov 2026 03:00:07 GMT"), local),
            Some(7)
        );
        assert_eq!(
            skew_secs(Some("Tue, 24 Nov 2026 02:59:50 GMT"), local),
            Some(-10)
        );
        assert_eq!(skew_secs(Some("yesterday"), local), None);
        assert_eq!(skew_secs(None, local), None);
    }
}
