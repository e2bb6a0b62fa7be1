//! Asia/Kolkata wall-clock times. IST is a fixed +05:30 with no daylight
//! saving, so a fixed offset is exact and no time-zone database is needed.

use chrono::{DateTime, FixedOffset, NaiveTime, Utc};

/// The +05:30 offset.
pub fn offset() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 1800).expect("+05:30 is valid")
}

/// The first moment strictly after `now` at which the IST wall clock shows
/// `time` (today's, or tomorrow's if today's has passed).
pub fn next_at(now: DateTime<Utc>, time: NaiveTime) -> DateTime<Utc> {
    let ist = offset();
    let local = now.with_timezone(&ist);
    let today = local.date_naive().and_time(time);
    let candidate = today
        .and_local_timezone(ist)
        .single()
        .expect("fixed offsets are unambiguous")
        .with_timezone(&Utc);
    if candidate > now {
        candidate
    } else {
        candidate + chrono::Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_cutoff_is_today_or_tomorrow_in_ist() {
        let six = NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        // 05:00 IST → 06:00 IST the same day.
        assert_eq!(
            next_at(utc("2026-11-24T05:00:00+05:30"), six),
            utc("2026-11-24T06:00:00+05:30")
        );
        // 09:00 IST → 06:00 IST the next day.
        assert_eq!(
            next_at(utc("2026-11-24T09:00:00+05:30"), six),
            utc("2026-11-25T06:00:00+05:30")
        );
        // Exactly at the cut-off: the next one.
        assert_eq!(
            next_at(utc("2026-11-24T06:00:00+05:30"), six),
            utc("2026-11-25T06:00:00+05:30")
        );
        // 23:00 UTC is 04:30 IST the next day.
        assert_eq!(
            next_at(utc("2026-11-24T23:00:00Z"), six),
            utc("2026-11-25T06:00:00+05:30")
        );
        let midnight = NaiveTime::from_hms_opt(0, 0, 0).unwrap();
        assert_eq!(
            next_at(utc("2026-11-24T23:59:59+05:30"), midnight),
            utc("2026-11-25T00:00:00+05:30")
        );
        // Kotak's fallback expiry: 00:00 IST is 18:30 UTC the day before.
        assert_eq!(
            next_at(utc("2026-11-24T20:00:00+05:30"), NaiveTime::MIN).to_rfc3339(),
            "2026-11-24T18:30:00+00:00"
        );
    }
}
