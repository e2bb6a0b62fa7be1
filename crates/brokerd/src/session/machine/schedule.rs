//! The timer: proactive refresh before expiry, retries after backoff, one
//! login per cooldown in `conflict`, store probes, the first login at
//! start, and for interactive brokers the daily reminder and the
//! `expiring` notice. Each tick starts whatever is due and names the next
//! due time ([`Effect::WakeAt`]).

use chrono::{DateTime, Utc};

use super::{Answer, Effect, Machine, Out, Phase, Role, Session, Trigger};
use crate::brokers::ist;
use crate::config::Reminder;
use crate::session::events::EventKind;

/// The earlier of two optional due times.
fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl<S: Session> Machine<S> {
    pub(super) fn tick(
        &mut self,
        now: DateTime<Utc>,
        reminder: Option<&Reminder>,
        out: &mut Out,
    ) -> Answer<S> {
        let next = self.plan(now, out);
        let next = match reminder {
            // Reminders and `expiring` carry the login link: the leader's
            // alone (a follower's link could never be checked).
            Some(r) if self.role == Role::Leads => earliest(next, self.plan_reminders(now, r, out)),
            Some(_) | None => next,
        };
        if let Some(at) = next {
            out.push(Effect::WakeAt(at));
        }
        Answer::None
    }

    /// Starts whatever login is due now; returns when to look again.
    fn plan(&mut self, now: DateTime<Utc>, out: &mut Out) -> Option<DateTime<Utc>> {
        match self.role {
            Role::Leads => {}
            // The leader refreshes and retries; a detached daemon waits
            // for the database.
            Role::Follows | Role::Detached => return self.follower_plan(now),
        }
        match self.phase {
            Phase::LoggingIn | Phase::LockedOut | Phase::AuthRequired => None,
            Phase::Backoff { until } | Phase::Conflict { until } if until > now => Some(until),
            // Nobody wants a session any more (logged out): no retry.
            Phase::Backoff { .. } | Phase::Conflict { .. } if !self.want_session => {
                self.phase = Phase::Idle;
                None
            }
            Phase::Backoff { .. } => {
                self.begin_login(now, "retry after backoff", Trigger::Automatic, out);
                None
            }
            Phase::Conflict { .. } => {
                // A session that still works is kept: logging in again would
                // end it for the programs using it (one session per key).
                // The idle branch logs in when it is due or reported dead.
                self.phase = Phase::Idle;
                if self.valid(now).is_some() {
                    return Some(now);
                }
                self.begin_login(now, "conflict cooldown over", Trigger::Automatic, out);
                None
            }
            // No login while the store cannot keep one; probe it instead.
            Phase::StoreUnavailable { until, .. } if until > now => Some(until),
            Phase::StoreUnavailable { probes, .. } => {
                self.begin_store_probe(now, probes, out);
                None
            }
            Phase::Idle => {
                let usable = self.current.as_ref().filter(|_| !self.dead);
                match usable {
                    Some(current) if current.refresh_at > now => Some(current.refresh_at),
                    Some(current) => {
                        if current.remaining(now).is_zero() && !self.want_session {
                            return None;
                        }
                        if self.interactive {
                            let reason = "session reached its daily cut-off";
                            self.begin_login(now, reason, Trigger::Automatic, out);
                        } else {
                            self.begin_refresh(now, "refresh before expiry", out);
                        }
                        None
                    }
                    None if self.want_session => {
                        self.begin_login(now, "no session", Trigger::Automatic, out);
                        None
                    }
                    None => None,
                }
            }
        }
    }

    /// Interactive brokers: queues the daily reminder while waiting for a
    /// person, and the `expiring` notice before a session's cut-off.
    /// Returns when to look again.
    fn plan_reminders(
        &mut self,
        now: DateTime<Utc>,
        reminder: &Reminder,
        out: &mut Out,
    ) -> Option<DateTime<Utc>> {
        if self.phase == Phase::AuthRequired {
            let at = reminder.remind_at?;
            let due = *self
                .next_reminder
                .get_or_insert_with(|| ist::next_at(now, at));
            if due > now {
                return Some(due);
            }
            out.push(Effect::Announce(EventKind::AuthRequired));
            let next = ist::next_at(now, at);
            self.next_reminder = Some(next);
            return Some(next);
        }
        let current = self.current.as_ref().filter(|_| !self.dead)?;
        if self.expiring_sent >= current.generation() || reminder.expiring_notice.is_zero() {
            return None;
        }
        let notice = chrono::Duration::from_std(reminder.expiring_notice).ok()?;
        let at = current.expires_at() - notice;
        if at > now {
            return Some(at);
        }
        if current.remaining(now).is_zero() {
            return None;
        }
        self.expiring_sent = current.generation();
        out.push(Effect::Announce(EventKind::Expiring));
        None
    }
}
