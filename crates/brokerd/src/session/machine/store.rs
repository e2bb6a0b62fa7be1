//! The store gate's outcomes (ARCHITECTURE invariant 4): a refusal enters
//! `store_unavailable` (announced once per outage, probed again from
//! `backoff_initial` doubling to a minute); an acceptance ends the outage.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{error, info};

use super::{Answer, Effect, GateBy, Machine, Out, Phase, Session};
use crate::session::events::EventKind;
use crate::store::AuditEvent;

/// The slowest pace of probes during a long outage.
pub(crate) const PROBE_MAX: Duration = Duration::from_secs(60);

/// The `last_error` code of an outage (and its marker: an outage is
/// announced once, until a probe or a published session clears it).
const OUTAGE: &str = "store_unavailable";

/// How the message of an outage begins when it started with a login whose
/// session the store refused (the login was spent, not saved).
pub(crate) const SPENT: &str = "login spent: the broker accepted the login but the session could not be stored, \
                     so it was discarded; ";

impl<S: Session> Machine<S> {
    /// Records an outage (phase, `last_error`), announced once (the
    /// "still" of later refusals is logged by the shell, with the error).
    pub(super) fn store_refused(
        &mut self,
        now: DateTime<Utc>,
        by: GateBy,
        message: String,
        out: &mut Out,
    ) -> Answer<S> {
        let first = !self.in_outage();
        let probes = match by {
            GateBy::Probe(Phase::StoreUnavailable { probes, .. }) => probes + 1,
            GateBy::Probe(_) | GateBy::LoginTask | GateBy::Submission => 0,
        };
        let until = Self::after(now, probe_delay(self.policy.backoff_initial, probes));
        let ours = match by {
            GateBy::LoginTask => true,
            GateBy::Submission => self.phase != Phase::LoggingIn,
            GateBy::Probe(stamp) => self.phase == stamp,
        };
        if ours {
            self.phase = Phase::StoreUnavailable { until, probes };
        }
        self.last_error = Some((OUTAGE, message.clone()));
        let k = &self.key;
        if first {
            let (generation, expires_at) = match self.valid(now) {
                Some(s) => (s.generation(), Some(s.expires_at())),
                None => (self.generation, None),
            };
            error!(broker = %k.broker, account = %k.account, api = %k.api,
                   serving_until = %expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(), "{message}");
            // Often refused too (the disk is full), which is logged.
            out.push(Effect::Audit {
                generation: Some(generation),
                event: AuditEvent::StoreUnavailable,
                detail: message,
            });
            out.push(Effect::Publish {
                kind: EventKind::StoreUnavailable,
                generation,
                expires_at,
            });
        }
        Answer::Outage { first, until }
    }

    /// A reservation succeeded: an outage, if there was one, is over.
    pub(super) fn store_accepted(
        &mut self,
        now: DateTime<Utc>,
        by: GateBy,
        out: &mut Out,
    ) -> Answer<S> {
        if let GateBy::Probe(stamp) = by
            && self.phase == stamp
        {
            // The schedule decides from here whether a login is due, unless
            // early deaths reached the conflict threshold during the
            // outage: then `conflict` first, not a login.
            self.phase = Phase::Idle;
            self.settle_conflict(now, out);
        }
        if !self.in_outage() {
            return Answer::None;
        }
        self.last_error = None;
        let k = &self.key;
        info!(broker = %k.broker, account = %k.account, api = %k.api, "the store accepts writes again; logins resume");
        out.push(Effect::Audit {
            generation: None,
            event: AuditEvent::StoreRecovered,
            detail: "the store accepts writes again; logins resume".to_string(),
        });
        Answer::None
    }

    /// The schedule's re-probe when an outage's wait is over. While the
    /// probe runs, the phase says when to look again should it never
    /// report back; the probe acts only if the phase is still this one (an
    /// operator's `login` or a submission may have acted).
    pub(super) fn begin_store_probe(&mut self, now: DateTime<Utc>, probes: u32, out: &mut Out) {
        let stamp = Phase::StoreUnavailable {
            until: Self::after(now, PROBE_MAX),
            probes,
        };
        self.phase = stamp;
        out.push(Effect::StartProbe { stamp });
    }

    /// Whether the last login was spent: accepted by the broker, then
    /// refused by the store (so a submission's request token is used up).
    pub fn login_spent(&self) -> bool {
        self.last_error
            .as_ref()
            .is_some_and(|(code, message)| *code == OUTAGE && message.starts_with(SPENT))
    }

    /// Whether the slot is in a store outage that was already announced.
    fn in_outage(&self) -> bool {
        self.last_error
            .as_ref()
            .is_some_and(|(code, _)| *code == OUTAGE)
    }
}

/// How long to wait before probe number `probes + 1` of an outage.
fn probe_delay(initial: Duration, probes: u32) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(probes.min(16)))
        .min(PROBE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_double_from_the_initial_delay_up_to_a_minute() {
        let s = Duration::from_secs;
        let initial = Duration::from_millis(500);
        assert_eq!(probe_delay(initial, 0), initial);
        assert_eq!(probe_delay(initial, 3), s(4));
        assert_eq!(probe_delay(initial, 7), PROBE_MAX);
        assert_eq!(probe_delay(initial, u32::MAX), PROBE_MAX);
    }
}
