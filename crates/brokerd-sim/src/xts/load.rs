//! How hard the daemon hits the simulator's logins: the logins in flight
//! (and their peak), an optional rate limit answered with HTTP 429, and
//! the peak count of logins in any window of time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// At most `logins` login requests (both apis together, as one host
/// counts them) in any `per` of the simulator's clock; the ones beyond it
/// are answered HTTP 429 at once and issue nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Logins admitted per window.
    pub logins: u32,
    /// The window.
    pub per: Duration,
}

/// The admitted logins of the last window, on the simulator's clock.
#[derive(Default)]
pub(super) struct RateWindow {
    limit: Option<RateLimit>,
    admitted: VecDeque<DateTime<Utc>>,
    /// Logins answered 429.
    pub(super) refused: u64,
}

impl RateWindow {
    pub(super) fn set(&mut self, limit: Option<RateLimit>) {
        self.limit = limit;
        self.admitted.clear();
    }

    /// Whether a login arriving at `now` is admitted (and counted in the
    /// window); a refusal is counted in `refused`.
    pub(super) fn admit(&mut self, now: DateTime<Utc>) -> bool {
        let Some(limit) = self.limit else {
            return true;
        };
        let per = chrono::Duration::from_std(limit.per).unwrap_or(chrono::Duration::MAX);
        while self
            .admitted
            .front()
            .is_some_and(|t| now.signed_duration_since(*t) >= per)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() < limit.logins as usize {
            self.admitted.push_back(now);
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// Login requests being answered right now, and the most there were at once.
#[derive(Default)]
pub(super) struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    /// Counts one login until the guard is dropped (answered, or dropped
    /// with its connection).
    pub(super) fn enter(self: &Arc<Self>) -> InFlightGuard {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        InFlightGuard(Arc::clone(self))
    }

    pub(super) fn current(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    /// The peak since the last call; the next peak starts from the
    /// logins in flight now.
    pub(super) fn take_peak(&self) -> usize {
        self.peak.swap(self.current(), Ordering::SeqCst)
    }
}

/// One login in flight.
pub(super) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The most `times` that fall within any `window` (a half-open interval
/// `[t, t + window)`): with one second, the peak logins per second. The
/// times need not be sorted.
pub fn peak_in_window(times: &[DateTime<Utc>], window: Duration) -> usize {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut start = 0;
    let mut peak = 0;
    for (end, t) in sorted.iter().enumerate() {
        while t.signed_duration_since(sorted[start]) >= window {
            start += 1;
        }
        peak = peak.max(end + 1 - start);
    }
    peak
}
