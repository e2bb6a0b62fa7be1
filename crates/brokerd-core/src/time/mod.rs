//! Time: one [`Clock`] that everything reading the wall clock is given, so
//! tests move time instead of sleeping through TOTP windows and cut-offs;
//! India Standard Time helpers; clock skew against a broker.

pub mod ist;
pub mod skew;

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// The wall clock. The daemon runs on [`SystemClock`]; tests hold a
/// [`ManualClock`] and move it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by everything that reads time in one daemon.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl SystemClock {
    /// The system clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

/// A clock that moves only when told to: unit tests of time-driven logic
/// (TOTP windows, expiry, cut-offs, backoff) without sleeping.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(start),
        })
    }

    /// Moves the clock forward (or back, with a negative duration: a
    /// corrected system clock does that too).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.lock();
        *now += by;
    }

    /// Puts the clock at `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.lock() = to;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panic while holding this lock cannot leave a half-written
        // DateTime behind, so a poisoned lock is still a good clock.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-11-30T03:45:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::seconds(31));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(31));
        clock.set(start);
        assert_eq!(clock.now(), start);
        let shared: SharedClock = clock;
        assert_eq!(shared.now(), start);
    }
}
