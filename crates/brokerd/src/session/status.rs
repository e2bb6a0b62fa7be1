//! A point-in-time view of a slot for `status`, metrics and systemd.

use chrono::{DateTime, Utc};
use std::sync::atomic::Ordering;

use super::slot::{Slot, State};
use crate::brokers::SessionKey;

/// Everything `status` shows about one slot. Never secrets.
#[derive(Clone, Debug)]
pub struct SlotStatus {
    /// Which slot.
    pub key: SessionKey,
    /// When this view was taken, on the daemon's clock: what `status` and
    /// the metrics count the seconds left from.
    pub at: DateTime<Utc>,
    /// Its state.
    pub state: State,
    /// Generation of the current session (or the newest issued when none).
    pub generation: u64,
    /// Expiry of the current session.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the last successful login finished.
    pub last_login_at: Option<DateTime<Utc>>,
    /// The last error: a short code and one line.
    pub last_error: Option<(String, String)>,
    /// Seconds until the next automatic attempt (backoff, conflict).
    pub retry_after_secs: Option<u64>,
    /// The app key's own expiry as the broker states it (Jainam).
    pub app_expiry: Option<String>,
    /// Operator warnings (e.g. the app key expires soon).
    pub warnings: Vec<String>,
    /// Serial of the broker client bound to the current session.
    pub client_serial: Option<u64>,
    /// Interactive brokers waiting for a person: where to log in.
    pub login_url: Option<String>,
    /// Counters: logins ok, logins failed, invalidations current, stale, token requests.
    pub counters: [u64; 5],
    /// Logins started in the last hour, as the login budget counts them.
    pub logins_last_hour: u64,
    /// While the slot's login waits for its broker host's turn: how many
    /// calls are ahead of it (`retry_after_secs` is then the estimate).
    pub queued_behind: Option<u64>,
    /// Several daemons sharing the store: this daemon's role, and the host
    /// that leads (None while no daemon does).
    pub ha: Option<(super::machine::Role, Option<String>)>,
}

impl Slot {
    /// The slot as of now.
    pub fn status(&self) -> SlotStatus {
        let (warning_horizon, mut warnings) = {
            let settings = self.settings.lock();
            (
                settings.connector.app_expiry_warning(),
                settings.connector.warnings(),
            )
        };
        let now = self.now();
        let queued = self.queue_place();
        let mut st = self.state.lock();
        let logins_last_hour = st.logins_last_hour(now) as u64;
        let (state, mut retry_after_secs) = st.state(now);
        let queued_behind = match (state, queued) {
            (State::Refreshing, Some((place, _host))) => {
                retry_after_secs = Some(place.estimate.as_secs().max(1));
                Some(place.ahead)
            }
            // A place is kept only while the login waits, and the slot is
            // `refreshing` then; any other state shows none.
            (State::Refreshing, None)
            | (
                State::Empty
                | State::Active
                | State::AuthRequired
                | State::Backoff
                | State::LockedOut
                | State::Conflict
                | State::StoreUnavailable,
                _,
            ) => None,
        };
        let live = st.current();
        let usable = st.valid(now);
        if let (Some(horizon), Some(date)) = (
            warning_horizon,
            live.and_then(|l| l.session.meta.app_expiry.as_deref()),
        ) && let Some(w) = app_expiry_warning(date, horizon, now)
        {
            warnings.push(w);
        }
        let c = &self.counters;
        let mut status = SlotStatus {
            key: self.key.clone(),
            at: now,
            state,
            generation: live.map_or(st.generation(), |l| l.generation),
            expires_at: usable.map(|l| l.expires_at()),
            last_login_at: st.last_login_at(),
            last_error: st.last_error().map(|(c, m)| (c.to_string(), m.clone())),
            retry_after_secs,
            app_expiry: live.and_then(|l| l.session.meta.app_expiry.clone()),
            warnings,
            client_serial: live.map(|l| l.client.serial()),
            login_url: None,
            counters: [
                c.logins_ok.load(Ordering::Relaxed),
                c.logins_failed.load(Ordering::Relaxed),
                c.invalidations_current.load(Ordering::Relaxed),
                c.invalidations_stale.load(Ordering::Relaxed),
                c.token_requests.load(Ordering::Relaxed),
            ],
            logins_last_hour,
            queued_behind,
            ha: None,
        };
        let role = st.role();
        drop(st);
        if let Some(link) = &self.ha {
            // This daemon's own view first: the database's may lag a pass.
            let leader = match role {
                super::machine::Role::Leads => Some(link.host().to_string()),
                super::machine::Role::Follows | super::machine::Role::Detached => {
                    link.leader_of(&self.key).map(|(host, _)| host)
                }
            };
            status.ha = Some((role, leader));
        }
        // Only a slot waiting for a person shows (and so mints) its link,
        // and with several daemons only the leader's (it exchanges it).
        let leads = !matches!(
            role,
            super::machine::Role::Follows | super::machine::Role::Detached
        );
        if self.interactive() && leads && matches!(state, State::AuthRequired | State::Empty) {
            status.login_url = self.login_url();
        }
        status
    }
}

/// A warning when the app key's expiry date (as the broker wrote it) is
/// within `horizon` of `now`. Unparseable dates are shown as they are.
pub fn app_expiry_warning(
    date: &str,
    horizon: std::time::Duration,
    now: DateTime<Utc>,
) -> Option<String> {
    let parsed = DateTime::parse_from_rfc3339(date)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            let day = chrono::NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
            Some(day.and_hms_opt(0, 0, 0)?.and_utc())
        })?;
    let left = parsed - now;
    if left > chrono::Duration::from_std(horizon).ok()? {
        return None;
    }
    Some(if left <= chrono::Duration::zero() {
        format!("the app key expired on {date}: renew it with the broker")
    } else {
        format!(
            "the app key expires on {date} (in {} days): renew it with the broker",
            left.num_days()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn warns_only_inside_the_horizon() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let two_weeks = Duration::from_secs(14 * 86400);
        assert!(
            app_expiry_warning("2026-12-01", two_weeks, now)
                .unwrap()
                .contains("in 7 days")
        );
        assert_eq!(app_expiry_warning("2027-06-01", two_weeks, now), None);
        assert!(
            app_expiry_warning("2026-11-01", two_weeks, now)
                .unwrap()
                .contains("expired")
        );
        assert_eq!(app_expiry_warning("someday", two_weeks, now), None);
    }
}
