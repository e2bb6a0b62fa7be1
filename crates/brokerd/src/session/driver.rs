//! The per-slot background loop: proactive refresh before expiry, retries
//! after backoff, one login per cooldown while in conflict, and the first
//! login at startup. It sleeps until the next due time or a state change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::slot::{Phase, Slot, SlotState};

/// How often the loop proves it is alive, at the latest.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

impl Slot {
    fn beat(&self) {
        self.heartbeat.store(
            crate::session::monotonic_ms(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// How long ago the loop last went round (`None` before it started).
    pub fn since_heartbeat(&self) -> Option<Duration> {
        let last = self.heartbeat.load(std::sync::atomic::Ordering::Relaxed);
        (last != 0)
            .then(|| Duration::from_millis(crate::session::monotonic_ms().saturating_sub(last)))
    }

    /// Runs until `cancel`. `heartbeat` is bumped on every pass, so a
    /// watchdog can tell that the loop is alive.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut changes = self.changed.subscribe();
        loop {
            self.beat();
            changes.borrow_and_update();
            // Read before the state lock: the two are never held together.
            let reminder = if self.interactive() {
                self.settings.lock().connector.reminder()
            } else {
                None
            };
            let (next, announce) = {
                let mut st = self.state.lock();
                let next = self.plan(&mut st);
                let next = match &reminder {
                    Some(r) => earliest(next, self.plan_reminders(&mut st, r)),
                    None => next,
                };
                (next, std::mem::take(&mut st.announce))
            };
            if !announce.is_empty() {
                self.announce(announce).await;
            }
            // Wake at least once per heartbeat so the watchdog can tell a
            // live loop from a stuck one.
            let sleep = next
                .map_or(HEARTBEAT, |at| at.saturating_duration_since(Instant::now()))
                .min(HEARTBEAT);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.retired.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Starts whatever login is due now; returns when to look again.
    fn plan(self: &Arc<Self>, st: &mut SlotState) -> Option<Instant> {
        let now = Instant::now();
        match st.phase {
            Phase::LoggingIn | Phase::LockedOut | Phase::AuthRequired => None,
            Phase::Backoff { until } | Phase::Conflict { until } if until > now => Some(until),
            // Nobody wants a session any more (logged out): no retry.
            Phase::Backoff { .. } | Phase::Conflict { .. } if !st.want_session => {
                st.phase = Phase::Idle;
                None
            }
            Phase::Backoff { .. } => {
                self.begin_login(st, "retry after backoff");
                None
            }
            Phase::Conflict { .. } => {
                // A session that still works is kept: logging in again would
                // end it for the programs using it (one session per key).
                // The idle branch logs in when it is due or reported dead.
                st.phase = Phase::Idle;
                if st
                    .current
                    .as_ref()
                    .is_some_and(|l| !st.dead && !l.remaining(Utc::now()).is_zero())
                {
                    return Some(now);
                }
                self.begin_login(st, "conflict cooldown over");
                None
            }
            // No login while the store cannot keep one; probe it instead.
            Phase::StoreUnavailable { until, .. } if until > now => Some(until),
            Phase::StoreUnavailable { probes, .. } => {
                self.begin_store_probe(st, probes);
                None
            }
            Phase::Idle => {
                let usable = st.current.as_ref().filter(|_| !st.dead);
                match usable {
                    Some(live) => {
                        let wait = (live.refresh_at - Utc::now())
                            .to_std()
                            .unwrap_or(Duration::ZERO);
                        if wait.is_zero() {
                            if live.remaining(Utc::now()).is_zero() && !st.want_session {
                                return None;
                            }
                            if self.interactive() {
                                self.begin_login(st, "session reached its daily cut-off");
                            } else {
                                self.begin_refresh(st, "refresh before expiry");
                            }
                            None
                        } else {
                            Some(now + wait)
                        }
                    }
                    None if st.want_session => {
                        self.begin_login(st, "no session");
                        None
                    }
                    None => None,
                }
            }
        }
    }
}

/// The earlier of two optional due times.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `at` on the monotonic clock (now if already past).
fn instant_at(at: chrono::DateTime<Utc>) -> Instant {
    Instant::now() + (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

impl Slot {
    /// Interactive brokers: queues the daily reminder while waiting for a
    /// person, and the `expiring` notice before a session's cut-off.
    /// Returns when to look again.
    fn plan_reminders(
        &self,
        st: &mut SlotState,
        reminder: &crate::config::Reminder,
    ) -> Option<Instant> {
        let now = Utc::now();
        if st.phase == Phase::AuthRequired {
            let at = reminder.remind_at?;
            let due = *st
                .next_reminder
                .get_or_insert_with(|| crate::brokers::ist::next_at(now, at));
            if due > now {
                return Some(instant_at(due));
            }
            st.announce.push(super::events::EventKind::AuthRequired);
            let next = crate::brokers::ist::next_at(now, at);
            st.next_reminder = Some(next);
            return Some(instant_at(next));
        }
        let live = st.current.as_ref().filter(|_| !st.dead)?;
        if st.expiring_sent >= live.generation || reminder.expiring_notice.is_zero() {
            return None;
        }
        let notice = chrono::Duration::from_std(reminder.expiring_notice).ok()?;
        let at = live.expires_at() - notice;
        if at > now {
            return Some(instant_at(at));
        }
        if live.remaining(now).is_zero() {
            return None;
        }
        st.expiring_sent = live.generation;
        st.announce.push(super::events::EventKind::Expiring);
        None
    }
}
