//! Early deaths, `conflict`, and the login budget at the one place every
//! login starts (ARCHITECTURE invariants 7 and 8).
//!
//! Seed 001: sessions die seconds after login because another program logs
//! into the same account. Whether the daemon notices must not depend on
//! when a death is reported relative to its own refreshes, so every death
//! (a client's report of the current or the just-replaced generation, a
//! login the broker kills halfway, a stored session found dead) goes
//! through [`Machine::count_death`], and a threshold reached while a login
//! runs takes effect the moment that login ends.

use chrono::{DateTime, Utc};
use tracing::error;

use super::budget::Refusal;
use super::{Effect, Machine, Out, Phase, Session, Trigger};
use crate::session::events::EventKind;
use crate::store::AuditEvent;

impl<S: Session> Machine<S> {
    /// Counts the death of `generation` (`None`: a login the broker killed
    /// before it was published), obtained at `obtained_at`, noticed at
    /// `now`. A generation is counted once however it is reported. Enters
    /// `conflict` when `conflict_threshold` early deaths in a row are
    /// reached (after the running login, if one runs). Returns whether the
    /// death was early.
    pub(super) fn count_death(
        &mut self,
        now: DateTime<Utc>,
        generation: Option<u64>,
        obtained_at: DateTime<Utc>,
        out: &mut Out,
    ) -> bool {
        if let Some(generation) = generation {
            if generation <= self.last_counted_death {
                return false;
            }
            self.last_counted_death = generation;
        }
        let early = Self::left(obtained_at, now) < self.policy.conflict_window;
        self.early_deaths = if early { self.early_deaths + 1 } else { 0 };
        if early && self.early_deaths >= self.policy.conflict_threshold {
            self.conflict_due(now, out);
        }
        early
    }

    /// The threshold is reached: enter `conflict` now, or when the login
    /// that is running ends (its outcome must not leave the slot `Idle`).
    fn conflict_due(&mut self, now: DateTime<Utc>, out: &mut Out) {
        match self.phase {
            // After the running login; during a store outage, after the
            // first login once the store is back (none happens before).
            Phase::LoggingIn | Phase::StoreUnavailable { .. } => self.conflict_pending = true,
            Phase::Idle | Phase::Backoff { .. } => {
                let message = self.conflict_message();
                let until = Self::after(now, self.policy.conflict_cooldown);
                self.enter_conflict(until, message, out);
            }
            // Already there, or an operator must act first: no change.
            Phase::Conflict { .. } | Phase::LockedOut | Phase::AuthRequired => {}
        }
    }

    /// At the end of a login: a threshold reached while it ran takes effect
    /// now. Returns whether the slot entered `conflict`.
    pub(super) fn settle_conflict(&mut self, now: DateTime<Utc>, out: &mut Out) -> bool {
        if !std::mem::take(&mut self.conflict_pending) {
            return false;
        }
        match self.phase {
            Phase::LockedOut => return false,
            // Still due: it takes effect after the next login instead.
            Phase::AuthRequired | Phase::StoreUnavailable { .. } => {
                self.conflict_pending = true;
                return false;
            }
            Phase::Idle | Phase::LoggingIn | Phase::Backoff { .. } | Phase::Conflict { .. } => {}
        }
        let message = self.conflict_message();
        let until = Self::after(now, self.policy.conflict_cooldown);
        self.enter_conflict(until, message, out);
        true
    }

    /// Puts the slot in `conflict` until `until`, says so in the log, the
    /// status, the audit trail and to subscribers.
    pub(super) fn enter_conflict(&mut self, until: DateTime<Utc>, message: String, out: &mut Out) {
        self.conflict_pending = false;
        self.phase = Phase::Conflict { until };
        self.last_error = Some(("conflict", message.clone()));
        let generation = self.generation;
        let k = &self.key;
        error!(broker = %k.broker, account = %k.account, api = %k.api, generation, "{message}");
        out.push(Effect::Publish {
            kind: EventKind::Conflict,
            generation,
            expires_at: None,
        });
        out.push(Effect::Audit {
            generation: Some(generation),
            event: AuditEvent::Conflict,
            detail: message,
        });
    }

    /// The budget's verdict on a login starting now; counts it when it may
    /// start. A refused automatic login moves the slot to `backoff` (too
    /// soon) or `conflict` (hourly cap) with a message naming the limit.
    pub(super) fn spend_budget(
        &mut self,
        now: DateTime<Utc>,
        trigger: Trigger,
        reason: &str,
        out: &mut Out,
    ) -> bool {
        if trigger == Trigger::Automatic
            && let Err(refusal) = self.budget.check(now)
        {
            self.budget_refused(now, refusal, reason, out);
            return false;
        }
        self.budget.record(now);
        true
    }

    fn budget_refused(
        &mut self,
        now: DateTime<Utc>,
        refusal: Refusal,
        reason: &str,
        out: &mut Out,
    ) {
        let wait = Self::left(now, refusal.until());
        let (k, b, a) = (&self.key, self.key.broker, &self.key.account);
        match refusal {
            Refusal::TooSoon { until, interval } => {
                // The last problem stays in the message: it says why logins
                // keep being needed.
                let last = match &self.last_error {
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
                self.last_error = Some(("login_budget", message));
                // Never shorten a failure's backoff.
                let failure = match self.phase {
                    Phase::Backoff { until } => until,
                    Phase::Idle
                    | Phase::LoggingIn
                    | Phase::LockedOut
                    | Phase::Conflict { .. }
                    | Phase::AuthRequired
                    | Phase::StoreUnavailable { .. } => now,
                };
                self.phase = Phase::Backoff {
                    until: until.max(failure),
                };
            }
            Refusal::HourlyCap { until, cap } => {
                let last = self
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
                self.enter_conflict(until, message, out);
            }
        }
    }

    /// The plain-words explanation of a conflict, for status and logs.
    fn conflict_message(&self) -> String {
        let (key, policy) = (&self.key, &self.policy);
        format!(
            "{key}: the last {} sessions were rejected within {}s of login; another program is probably \
             logging into this account with the same credentials. Stop it; brokerd retries at most once every {}s \
             (or run `brokerctl login {} --account {}`)",
            self.early_deaths,
            policy.conflict_window.as_secs(),
            policy.conflict_cooldown.as_secs(),
            key.broker,
            key.account
        )
    }
}
