//! The per-slot background loop: feeds the machine a tick (proactive
//! refresh, retries after backoff, one login per cooldown in conflict,
//! store probes, the first login at startup, interactive reminders), runs
//! what it starts, and sleeps until the next due time or a state change.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::machine::{Effect, Input};
use super::slot::Slot;

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
            let before = self.state.lock().phase();
            let effects = self.feed(Input::Tick { reminder }).list;
            // A wait the tick ended (a follower's wait for its leader, a
            // backoff given up): the requests waiting on it answer now, not
            // at their own deadline.
            if self.state.lock().phase() != before {
                self.notify();
            }
            let next = effects.iter().find_map(|e| match e {
                Effect::WakeAt(at) => Some(*at),
                _ => None,
            });
            self.apply(effects, None).await;
            // Wake at least once per heartbeat so the watchdog can tell a
            // live loop from a stuck one, and when the clock reaches the
            // next due time (a test's manual clock gets there by a move).
            let clock = &*self.clock;
            let due = async move {
                match next {
                    Some(at) => {
                        brokerd_core::time::sleep_until(clock, at, tokio::time::sleep).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.retired.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = due => {}
            }
        }
    }
}
