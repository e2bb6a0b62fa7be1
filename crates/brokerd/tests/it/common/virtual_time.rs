//! Virtual time for end-to-end tests: the daemon and the simulator share
//! one `ManualClock`, and a pump moves it forward faster than real time
//! (TOTP windows, refresh floors, backoff, cooldowns and simulated latency
//! all follow it), so a test covers minutes of broker time in seconds
//! without sleeping through any of them. Sockets, HTTP and SQLite stay
//! real.

use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::{Clock, ManualClock};
use chrono::Utc;

/// Virtual time per real tick, and the tick: 20× real time, in steps small
/// enough that a TOTP code made with `totp_min_remaining` left reaches the
/// simulator well within its window.
const STEP: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(5);

/// Moves a manual clock forward while it lives.
pub struct Pump {
    pub clock: Arc<ManualClock>,
    task: tokio::task::JoinHandle<()>,
}

impl Pump {
    /// A clock starting now, moved 20× faster than real time.
    pub fn start() -> Self {
        let clock = ManualClock::new(Utc::now());
        let moved = Arc::clone(&clock);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                moved.advance(chrono::Duration::from_std(STEP).unwrap());
            }
        });
        Self { clock, task }
    }

    /// Waits until `d` of virtual time has passed.
    pub async fn sleep(&self, d: Duration) {
        let until = self.clock.now() + d;
        brokerd_core::time::sleep_until(&*self.clock, until, tokio::time::sleep).await;
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.task.abort();
    }
}
