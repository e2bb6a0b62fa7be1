//! Early deaths, `conflict`, and the login budget at the one place every
//! automatic login starts (DESIGN invariants 8 and 9).
//!
//! Seed 001: sessions die seconds after login because another program logs
//! into the same account. Whether the daemon notices must not depend on
//! when a death is reported relative to its own refreshes, so every death
//! (a client's report of the current or the just-replaced generation, a
//! login the broker kills halfway, a stored session found dead) goes
//! through [`Slot::count_death`], and a threshold reached while a login
//! runs takes effect the moment that login ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::error;

use super::budget::Refusal;
use super::events::{Event, EventKind};
use super::slot::{Phase, Slot, SlotState};
use crate::config::SessionPolicy;
use crate::store::AuditEvent;

/// Who asked for a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The daemon itself or a client's request: subject to the budget.
    Automatic,
    /// `brokerctl login` or a person's browser submission: counted, never refused.
    Operator,
}

impl Slot {
    /// Counts the death of `generation` (`None`: a login the broker killed
    /// before it was published), obtained at `obtained_at`, noticed at
    /// `now`. A generation is counted once however it is reported. Enters
    /// `conflict` when `conflict_threshold` early deaths in a row are
    /// reached (after the running login, if one runs). Returns whether the
    /// death was early.
    pub(super) fn count_death(
        self: &Arc<Self>,
        st: &mut SlotState,
        generation: Option<u64>,
        obtained_at: DateTime<Utc>,
        now: DateTime<Utc>,
        policy: &SessionPolicy,
    ) -> bool {
        if let Some(generation) = generation {
            if generation <= st.last_counted_death {
                return false;
            }
            st.last_counted_death = generation;
        }
        let age = (now - obtained_at).to_std().unwrap_or(Duration::ZERO);
        let early = age < policy.conflict_window;
        st.early_deaths = if early { st.early_deaths + 1 } else { 0 };
        if early && st.early_deaths >= policy.conflict_threshold {
            self.conflict_due(st, policy);
        }
        early
    }

    /// The threshold is reached: enter `conflict` now, or when the login
    /// that is running ends (its outcome must not leave the slot `Idle`).
    fn conflict_due(self: &Arc<Self>, st: &mut SlotState, policy: &SessionPolicy) {
        match st.phase {
            // After the running login; during a store outage, after the
            // first login once the store is back (none happens before).
            Phase::LoggingIn | Phase::StoreUnavailable { .. } => st.conflict_pending = true,
            Phase::Idle | Phase::Backoff { .. } => {
                let message = conflict_message(self, policy, st.early_deaths);
                self.enter_conflict(st, Instant::now() + policy.conflict_cooldown, message);
            }
            // Already there, or an operator must act first: no change.
            Phase::Conflict { .. } | Phase::LockedOut | Phase::AuthRequired => {}
        }
    }

    /// At the end of a login: a threshold reached while it ran takes effect
    /// now. Returns whether the slot entered `conflict`.
    pub(super) fn settle_conflict(
        self: &Arc<Self>,
        st: &mut SlotState,
        policy: &SessionPolicy,
    ) -> bool {
        if !std::mem::take(&mut st.conflict_pending) {
            return false;
        }
        if matches!(
            st.phase,
            Phase::LockedOut | Phase::AuthRequired | Phase::StoreUnavailable { .. }
        ) {
            // Still due: it takes effect after the next login instead.
            st.conflict_pending = st.phase != Phase::LockedOut;
            return false;
        }
        let message = conflict_message(self, policy, st.early_deaths);
        self.enter_conflict(st, Instant::now() + policy.conflict_cooldown, message);
        true
    }

    /// Puts the slot in `conflict` until `until`, says so in the log, the
    /// status, the audit trail and to subscribers. Called under the state
    /// lock; the audit row is written by a tracked task.
    pub(super) fn enter_conflict(
        self: &Arc<Self>,
        st: &mut SlotState,
        until: Instant,
        message: String,
    ) {
        st.conflict_pending = false;
        st.phase = Phase::Conflict { until };
        st.last_error = Some(("conflict", message.clone()));
        let generation = st.generation;
        error!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation, "{message}");
        self.events.publish(Event {
            kind: EventKind::Conflict,
            key: self.key.clone(),
            generation,
            expires_at: None,
            login_url: None,
        });
        let slot = Arc::clone(self);
        self.tasks.spawn(async move {
            slot.audit(Some(generation), AuditEvent::Conflict, &message)
                .await;
        });
    }

    /// The budget's verdict on a login starting now; counts it when it may
    /// start. A refused automatic login moves the slot to `backoff` (too
    /// soon) or `conflict` (hourly cap) with a message naming the limit.
    pub(super) fn spend_budget(
        self: &Arc<Self>,
        st: &mut SlotState,
        trigger: Trigger,
        reason: &str,
    ) -> bool {
        let now = Instant::now();
        if trigger == Trigger::Automatic
            && let Err(refusal) = st.budget.check(now)
        {
            self.budget_refused(st, refusal, reason, now);
            return false;
        }
        st.budget.record(now);
        true
    }

    fn budget_refused(
        self: &Arc<Self>,
        st: &mut SlotState,
        refusal: Refusal,
        reason: &str,
        now: Instant,
    ) {
        let wait = refusal.until().saturating_duration_since(now);
        let (k, b, a) = (&self.key, self.key.broker, &self.key.account);
        match refusal {
            Refusal::TooSoon { until, interval } => {
                // The last problem stays in the message: it says why logins
                // keep being needed.
                let last = match &st.last_error {
                    Some(("login_budget", _)) | None => String::new(),
                    Some((_, m)) => format!(" The last problem: {m}."),
                };
                let message = format!(
                    "{k}: a login ({reason}) was held back {}s: automatic logins of one session are at most one \
                     per {}s (min_login_interval), whatever the broker answers or clients report.{last}",
                    wait.as_secs().max(1),
                    interval.as_secs()
                );
                tracing::warn!(broker = %b, account = %a, api = %k.api, wait_ms = wait.as_millis() as u64,
                               reason, "login held back by the login budget (min_login_interval)");
                st.last_error = Some(("login_budget", message));
                st.phase = Phase::Backoff {
                    // Never shorten a failure's backoff.
                    until: until.max(match st.phase {
                        Phase::Backoff { until } => until,
                        Phase::Idle
                        | Phase::LoggingIn
                        | Phase::LockedOut
                        | Phase::Conflict { .. }
                        | Phase::AuthRequired
                        | Phase::StoreUnavailable { .. } => now,
                    }),
                };
            }
            Refusal::HourlyCap { until, cap } => {
                let last = st
                    .last_error
                    .as_ref()
                    .filter(|e| e.0 != "login_budget")
                    .map_or_else(String::new, |e| format!(" The last problem: {}.", e.1));
                let message = format!(
                    "{k}: {cap} logins in the last hour reached max_logins_per_hour ({cap}); no automatic login \
                     for {}s. The broker keeps ending or refusing the sessions: check the host clock (NTP), \
                     other programs logging into this account, and the broker's status.{last} \
                     `brokerctl login {b} --account {a}` logs in now.",
                    wait.as_secs().max(1)
                );
                self.enter_conflict(st, until, message);
            }
        }
    }
}

impl Slot {
    /// At startup: the logins of the last hour, from the audit trail, count
    /// against the budget, so restarts cannot multiply it.
    pub async fn restore_budget(&self) {
        let since =
            Utc::now() - chrono::Duration::from_std(super::budget::HOUR).unwrap_or_default();
        match self.store.login_times(&self.key, since).await {
            Ok(times) => {
                let (now, now_utc) = (Instant::now(), Utc::now());
                let mut st = self.state.lock();
                for at in times {
                    let ago = (now_utc - at).to_std().unwrap_or(Duration::ZERO);
                    st.budget.record(now.checked_sub(ago).unwrap_or(now));
                }
            }
            Err(e) => {
                tracing::warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                               error = %e, "could not read the recent logins; the login budget starts empty")
            }
        }
    }
}

/// The plain-words explanation of a conflict, for status and logs.
pub(super) fn conflict_message(slot: &Slot, policy: &SessionPolicy, deaths: u32) -> String {
    let key = &slot.key;
    format!(
        "{key}: the last {deaths} sessions were rejected within {}s of login; another program is probably \
         logging into this account with the same credentials. Stop it; brokerd retries at most once every {}s \
         (or run `brokerctl login {} --account {}`)",
        policy.conflict_window.as_secs(),
        policy.conflict_cooldown.as_secs(),
        key.broker,
        key.account
    )
}
