//! Virtual time for tests: the daemon (or a broker module's gate) and the
//! simulators share one `ManualClock`, and a pump moves it forward faster
//! than real time (TOTP windows, refresh floors, backoff, cooldowns,
//! cut-offs and simulated latency all follow it), so a test covers minutes
//! of broker time in seconds without sleeping through any of them.
//! Sockets, HTTP and SQLite stay real. Here, beside the simulators whose
//! clock it drives, so that the daemon's unit tests and its integration
//! tests use the one pump.

use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::{Clock, ManualClock, Moved};
use chrono::{DateTime, Utc};

/// Virtual time per real tick, and the tick: 20× real time, in steps small
/// enough that a TOTP code made with 15 s of its window left still reaches
/// a simulator within the window on a busy machine (750 ms of real time).
const STEP: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(5);

/// Moves a manual clock forward while it lives (the task stops on drop).
pub struct Pump {
    /// The clock it moves; hand it to the daemon and the simulators.
    pub clock: Arc<ManualClock>,
    task: tokio::task::JoinHandle<()>,
}

impl Pump {
    /// A clock starting now, moved 20× faster than real time. Needs a
    /// tokio runtime (it spawns the pump).
    pub fn start() -> Self {
        Self::at_speed(20)
    }

    /// A clock starting now, moved `speed` times faster than real time (1
    /// to 20): slower for a test whose bounds real delays (an fsync on a
    /// loaded machine) would otherwise stretch past them.
    pub fn at_speed(speed: u32) -> Self {
        let step = STEP * speed.clamp(1, 20) / 20;
        let clock = ManualClock::new(Utc::now());
        let moved = Arc::clone(&clock);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                moved.advance(chrono::Duration::from_std(step).expect("100 ms fits"));
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

/// A clock that reads `origin + (system time - since) × speed` whenever it
/// is asked: processes given the same three values (a test and the daemon
/// it runs as a child process) agree on virtual time without talking to
/// each other, however busy either is. Unlike [`Pump::start`]'s, this time
/// keeps running while the machine is too busy to tick, so tests pick a
/// modest `speed`.
#[derive(Debug)]
pub struct FollowingClock {
    origin: DateTime<Utc>,
    since: DateTime<Utc>,
    speed: i32,
    /// Moved every tick only to wake what sleeps on this clock, so that a
    /// sleeper looks at the time again.
    ticks: Arc<ManualClock>,
}

impl Clock for FollowingClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + (Utc::now() - self.since) * self.speed
    }

    fn moved(&self) -> Moved {
        self.ticks.moved()
    }
}

/// Wakes a [`FollowingClock`]'s sleepers every tick while it lives.
pub struct Following {
    /// The clock; hand it to the daemon and the simulators.
    pub clock: Arc<FollowingClock>,
    task: tokio::task::JoinHandle<()>,
}

impl Following {
    /// A [`FollowingClock`] from `origin`, `since` and `speed`. Needs a
    /// tokio runtime (it spawns the ticks).
    pub fn start(origin: DateTime<Utc>, since: DateTime<Utc>, speed: i32) -> Self {
        let ticks = ManualClock::new(since);
        let clock = Arc::new(FollowingClock {
            origin,
            since,
            speed,
            ticks: Arc::clone(&ticks),
        });
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                ticks.advance(chrono::Duration::milliseconds(1));
            }
        });
        Self { clock, task }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}
