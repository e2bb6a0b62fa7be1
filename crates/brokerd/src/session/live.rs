//! A published session: what the slot hands out, immutable once built.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::brokers::{BrokerClient, NewSession};
use crate::config::SessionPolicy;

/// Automatic refreshes never come closer together than this, whatever the
/// token lifetime: short-lived tokens must not cause a login storm.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// One generation of one slot's session, with the client that obtained it.
#[derive(Debug)]
pub struct Live {
    /// Fencing number: strictly increasing per slot, across restarts.
    pub generation: u64,
    /// Token material and metadata.
    pub session: NewSession,
    /// The client bound to this session; dropped with it.
    pub client: BrokerClient,
    /// The session's wire form, built once by the server on first use: the
    /// hot `token` path then copies bytes instead of serialising.
    wire: OnceLock<Box<RawValue>>,
}

impl Live {
    /// Wraps a session (its refresh is the session machine's to plan).
    pub fn new(generation: u64, session: NewSession, client: BrokerClient) -> Self {
        Self {
            generation,
            session,
            client,
            wire: OnceLock::new(),
        }
    }

    /// The expiry.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.session.meta.expires_at
    }

    /// Time left before expiry at `now` (zero when past).
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        (self.expires_at() - now).to_std().unwrap_or(Duration::ZERO)
    }

    /// Whole lifetime the broker granted.
    pub fn lifetime(&self) -> Duration {
        (self.expires_at() - self.session.meta.obtained_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// Age at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> Duration {
        (now - self.session.meta.obtained_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }

    /// The cache of the wire form (filled by the protocol layer).
    pub fn wire_cache(&self) -> &OnceLock<Box<RawValue>> {
        &self.wire
    }
}

/// When to renew a session obtained at `obtained_at` and ending at
/// `expires_at`: `refresh_margin` (plus up to `refresh_jitter`) before
/// expiry, but never sooner than half the lifetime or
/// [`MIN_REFRESH_INTERVAL`] after the login.
pub fn refresh_time(
    obtained_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    policy: &SessionPolicy,
    jitter: f64,
) -> DateTime<Utc> {
    let lifetime = (expires_at - obtained_at)
        .to_std()
        .unwrap_or(Duration::ZERO);
    let ahead = policy.refresh_margin + policy.refresh_jitter.mul_f64(jitter.clamp(0.0, 1.0));
    let by_margin = expires_at - chrono::Duration::from_std(ahead).unwrap_or(chrono::Duration::MAX);
    let floor = obtained_at
        + chrono::Duration::from_std((lifetime / 2).max(MIN_REFRESH_INTERVAL))
            .unwrap_or(chrono::Duration::MAX);
    by_margin.max(floor)
}

/// No proactive refresh before the session ends (a fixed cut-off), yet
/// never sooner than [`MIN_REFRESH_INTERVAL`] after the login: the floor
/// every automatic refresh keeps.
pub fn refresh_at_expiry(obtained_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = obtained_at
        + chrono::Duration::from_std(MIN_REFRESH_INTERVAL).unwrap_or(chrono::Duration::MAX);
    expires_at.max(floor)
}

impl super::machine::Session for std::sync::Arc<Live> {
    fn generation(&self) -> u64 {
        self.generation
    }

    fn obtained_at(&self) -> DateTime<Utc> {
        self.session.meta.obtained_at
    }

    fn expires_at(&self) -> DateTime<Utc> {
        self.session.meta.expires_at
    }
}

/// Whether a new session lasts meaningfully longer than the one it
/// replaces. When it does not (a fixed daily cut-off), renewing it again
/// before it expires would only burn logins.
pub fn extends(
    previous_expiry: Option<DateTime<Utc>>,
    new_expiry: DateTime<Utc>,
    margin: Duration,
) -> bool {
    previous_expiry.is_none_or(|prev| {
        new_expiry > prev + chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_session_extends_only_past_the_old_expiry_plus_the_margin() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let margin = Duration::from_secs(600);
        assert!(extends(None, t("2026-11-24T18:30:00Z"), margin));
        // Same midnight cut-off: no extension.
        assert!(!extends(
            Some(t("2026-11-24T18:30:00Z")),
            t("2026-11-24T18:30:00Z"),
            margin
        ));
        assert!(!extends(
            Some(t("2026-11-24T18:30:00Z")),
            t("2026-11-24T18:35:00Z"),
            margin
        ));
        assert!(extends(
            Some(t("2026-11-24T18:30:00Z")),
            t("2026-11-25T18:30:00Z"),
            margin
        ));
    }
}
