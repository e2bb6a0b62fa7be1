//! Never spend a login that cannot be kept. Before every login and every
//! browser submission the slot proves that the store can take the session
//! (`Store::reserve_session`). When it cannot (typically a full disk), the
//! slot makes no broker call: a login whose session is then discarded would
//! end the session brokerd still serves (one session per app key) or burn a
//! person's single-use request token. Instead the slot keeps serving its
//! current session while it is valid, reports `store_unavailable` (status,
//! metrics, one event per outage, audit when the store takes it) and probes
//! the store again by itself, from `backoff_initial` doubling to a minute.
//! When a probe succeeds the outage ends and the usual logic logs in if a
//! session is needed. None of this counts as a failed login.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::{debug, error, info};

use super::error::{ErrorCode, RequestError};
use super::events::{Event, EventKind};
use super::slot::{Phase, Slot, SlotState};
use crate::store::{AuditEvent, StoreError};

/// The slowest pace of probes during a long outage.
const PROBE_MAX: Duration = Duration::from_secs(60);

/// The `last_error` code of an outage (and its marker: an outage is
/// announced once, until a probe or a published session clears it).
const OUTAGE: &str = "store_unavailable";

/// How the message of an outage begins when it started with a login whose
/// session the store refused (the login was spent, not saved).
const SPENT: &str = "login spent: the broker accepted the login but the session could not be stored, \
                     so it was discarded; ";

/// Who asks the gate, which decides what it may do to the phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GateBy {
    /// The login task, which owns the `LoggingIn` phase.
    LoginTask,
    /// A submission, before it starts its exchange: the phase belongs to
    /// whatever the slot is doing (left alone if another login runs).
    Submission,
    /// The driver's probe, valid only while the phase is still the one it
    /// set when it started.
    Probe(Phase),
}

impl Slot {
    /// `Ok` when the session of the next login can be stored. Otherwise
    /// the slot is now in `store_unavailable` and the error says why; the
    /// caller must not call the broker.
    pub(super) async fn store_gate(self: &Arc<Self>, by: GateBy) -> Result<(), RequestError> {
        match self.store.reserve_session(&self.key).await {
            Ok(()) => {
                self.store_recovered(by).await;
                Ok(())
            }
            Err(e) => Err(self.store_outage(&e, by, false).await),
        }
    }

    /// The driver's re-probe when an outage's wait is over. Called with
    /// the state locked; the probe runs as a tracked task.
    pub(super) fn begin_store_probe(self: &Arc<Self>, st: &mut SlotState, probes: u32) {
        // While the probe runs, the phase says when to look again should
        // it never report back; the probe acts only if the phase is still
        // this one (an operator's `login` or a submission may have acted).
        let stamp = Phase::StoreUnavailable {
            until: Instant::now() + PROBE_MAX,
            probes,
        };
        st.phase = stamp;
        let slot = Arc::clone(self);
        self.tasks.spawn(async move {
            // The outcome is in the state; the driver wakes on `notify`.
            let _ = slot.store_gate(GateBy::Probe(stamp)).await;
            slot.notify();
        });
    }

    /// A login whose session the store then refused (the reservation made
    /// this nearly impossible: something else filled the disk between the
    /// two, or a reader kept the WAL from being rewound). The login is
    /// spent: say so plainly, and make no other until the store recovers.
    /// `false`: not a store outage (e.g. encryption), handle as before.
    pub(super) async fn session_not_stored(&self, e: &StoreError, generation: u64) -> bool {
        if !matches!(e, StoreError::Database(_) | StoreError::Io { .. }) {
            return false;
        }
        self.counters.logins_failed.fetch_add(1, Ordering::Relaxed);
        error!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
               outcome = "store_failed_after_reservation", error = %e,
               "LOGIN SPENT: the store refused the session after its reservation had succeeded; the new session \
                is discarded, and the broker may have ended the previous one with this login. No further login \
                until the store accepts writes again");
        self.audit(
            None,
            AuditEvent::LoginFailed,
            &format!("login spent: the session could not be stored: {e}"),
        )
        .await;
        // The login task owns the phase (`LoggingIn`).
        let _ = self.store_outage(e, GateBy::LoginTask, true).await;
        true
    }

    /// Records the outage (phase, `last_error`), announces it once, and
    /// builds the answer for the caller.
    /// `spent`: the outage was found by a save after a login.
    async fn store_outage(&self, e: &StoreError, by: GateBy, spent: bool) -> RequestError {
        let mut message = outage_message(&self.key.to_string(), &self.store.location(), e);
        if spent {
            message.insert_str(0, SPENT);
        }
        let initial = self.settings.lock().policy.backoff_initial;
        let (first, until, generation, expires_at) = {
            let mut st = self.state.lock();
            let first = !in_outage(&st);
            let probes = match by {
                GateBy::Probe(Phase::StoreUnavailable { probes, .. }) => probes + 1,
                GateBy::Probe(_) | GateBy::LoginTask | GateBy::Submission => 0,
            };
            let until = Instant::now() + probe_delay(initial, probes);
            let ours = match by {
                GateBy::LoginTask => true,
                GateBy::Submission => st.phase != Phase::LoggingIn,
                GateBy::Probe(stamp) => st.phase == stamp,
            };
            if ours {
                st.phase = Phase::StoreUnavailable { until, probes };
            }
            st.last_error = Some((OUTAGE, message.clone()));
            let live = st
                .current
                .as_ref()
                .filter(|l| !st.dead && !l.remaining(Utc::now()).is_zero());
            (
                first,
                until,
                live.map_or(st.generation, |l| l.generation),
                live.map(|l| l.expires_at()),
            )
        };
        self.notify();
        if first {
            error!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                   serving_until = %expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(), "{message}");
            // Often refused too (the disk is full), which is logged.
            self.audit(Some(generation), AuditEvent::StoreUnavailable, &message)
                .await;
            self.events.publish(Event {
                kind: EventKind::StoreUnavailable,
                key: self.key.clone(),
                generation,
                expires_at,
                login_url: None,
            });
        } else {
            debug!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, error = %e,
                   "the store still cannot take a session");
        }
        RequestError::new(ErrorCode::StoreUnavailable, message)
            .retry_after(until.saturating_duration_since(Instant::now()))
    }

    /// A reservation succeeded: an outage, if there was one, is over.
    async fn store_recovered(self: &Arc<Self>, by: GateBy) {
        let policy = self.settings.lock().policy.clone();
        let ended = {
            let mut st = self.state.lock();
            if let GateBy::Probe(stamp) = by
                && st.phase == stamp
            {
                // The driver decides from here whether a login is due,
                // unless early deaths reached the conflict threshold during
                // the outage: then `conflict` first, not a login.
                st.phase = Phase::Idle;
                self.settle_conflict(&mut st, &policy);
            }
            let ended = in_outage(&st);
            if ended {
                st.last_error = None;
            }
            ended
        };
        if !ended {
            return;
        }
        self.notify();
        info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
              "the store accepts writes again; logins resume");
        self.audit(
            None,
            AuditEvent::StoreRecovered,
            "the store accepts writes again; logins resume",
        )
        .await;
    }
}

/// Whether the last login was spent: accepted by the broker, then refused
/// by the store (so a submission's request token is used up).
pub(super) fn login_spent(st: &SlotState) -> bool {
    st.last_error
        .as_ref()
        .is_some_and(|(code, message)| *code == OUTAGE && message.starts_with(SPENT))
}

/// Whether the slot is in a store outage that was already announced.
fn in_outage(st: &SlotState) -> bool {
    st.last_error
        .as_ref()
        .is_some_and(|(code, _)| *code == OUTAGE)
}

/// How long to wait before probe number `probes + 1` of an outage.
fn probe_delay(initial: Duration, probes: u32) -> Duration {
    initial
        .saturating_mul(2u32.saturating_pow(probes.min(16)))
        .min(PROBE_MAX)
}

/// The one line an operator reads: what failed, where, and the fix.
fn outage_message(key: &str, location: &str, e: &StoreError) -> String {
    let fix = if e.is_disk_full() {
        "free disk space on that filesystem (df -h)"
    } else {
        "check that the file and its folder are writable and the disk is healthy"
    };
    format!(
        "{key}: not logging in: the store {location} cannot take a session ({e}); {fix}. \
         brokerd checks again by itself and logs in once it can; a still-valid session is served meanwhile"
    )
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
