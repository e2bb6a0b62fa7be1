//! Time: one [`Clock`] that everything reading the wall clock is given, so
//! tests move time instead of sleeping through TOTP windows and cut-offs;
//! India Standard Time helpers; clock skew against a broker.

pub mod ist;
pub mod skew;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};

/// The wall clock. The daemon runs on [`SystemClock`]; tests hold a
/// [`ManualClock`] and move it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;

    /// Resolves when the clock is moved by hand: a task sleeping until a
    /// wall-clock deadline then looks at the clock again instead of
    /// sleeping through virtual time. The system clock just runs, so it
    /// never resolves there (the sleep's own timer ends the wait).
    fn moved(&self) -> Moved {
        Moved(None)
    }
}

/// Sleeps until `clock` reads `at` or later. `timer` is the runtime's
/// sleep (this crate has no runtime); a manual clock's move wakes the wait
/// early, to look again, so tests advance time instead of waiting for it.
pub async fn sleep_until<F: Future<Output = ()>>(
    clock: &dyn Clock,
    at: DateTime<Utc>,
    timer: impl Fn(std::time::Duration) -> F,
) {
    loop {
        let moved = clock.moved();
        let left = match (at - clock.now()).to_std() {
            Ok(left) if !left.is_zero() => left,
            _ => return,
        };
        let mut sleep = std::pin::pin!(timer(left));
        let mut moved = std::pin::pin!(moved);
        std::future::poll_fn(|cx| {
            if sleep.as_mut().poll(cx).is_ready() || moved.as_mut().poll(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

/// The future of [`Clock::moved`].
#[derive(Debug)]
pub struct Moved(Option<(Arc<Shared>, u64)>);

impl Future for Moved {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some((shared, seen)) = &self.0 else {
            return Poll::Pending;
        };
        let mut state = shared.lock();
        if state.moves != *seen {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
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

/// A clock that moves only when told to: tests of time-driven logic
/// (TOTP windows, expiry, cut-offs, backoff) without sleeping. Tasks
/// waiting on [`Clock::moved`] wake whenever it is moved.
#[derive(Debug)]
pub struct ManualClock {
    shared: Arc<Shared>,
}

/// The manual clock's time and who waits for it to move.
#[derive(Debug)]
struct Shared(Mutex<State>);

#[derive(Debug)]
struct State {
    now: DateTime<Utc>,
    /// Bumped by every move, so a waiter knows whether it missed one.
    moves: u64,
    wakers: Vec<Waker>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave a half-written
        // state behind, so a poisoned lock is still a good clock.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self {
            shared: Arc::new(Shared(Mutex::new(State {
                now: start,
                moves: 0,
                wakers: Vec::new(),
            }))),
        })
    }

    /// Moves the clock forward (or back, with a negative duration: a
    /// corrected system clock does that too).
    pub fn advance(&self, by: chrono::Duration) {
        let mut state = self.shared.lock();
        state.now += by;
        Self::wake(state);
    }

    /// Puts the clock at `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut state = self.shared.lock();
        state.now = to;
        Self::wake(state);
    }

    fn wake(mut state: std::sync::MutexGuard<'_, State>) {
        state.moves += 1;
        let wakers = std::mem::take(&mut state.wakers);
        drop(state);
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.shared.lock().now
    }

    fn moved(&self) -> Moved {
        let moves = self.shared.lock().moves;
        Moved(Some((Arc::clone(&self.shared), moves)))
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

    #[test]
    fn moving_the_manual_clock_wakes_its_waiters() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        #[derive(Default)]
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut moved = clock.moved();
        assert!(Pin::new(&mut moved).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut moved).poll(&mut cx).is_ready());
        // The system clock never reports a move.
        let mut system = SystemClock.moved();
        assert!(Pin::new(&mut system).poll(&mut cx).is_pending());
    }
}
