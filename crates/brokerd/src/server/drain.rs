//! How long one connection may live on once shutdown began.
//!
//! A stop waits for every connection task (bounded by `shutdown_grace`), so
//! each connection must end soon after the cancellation on its own: it
//! answers requests that arrive within [`DRAIN_GRACE`] of its last one, and
//! closes [`DRAIN_LIMIT`] after shutdown began at the latest, however busy
//! the client keeps it. Every read and every write deadline is capped by
//! [`Drain::until`], so neither an idle client nor one that stopped reading
//! its replies can hold a stop up. These are real-time (tokio) deadlines, as
//! is systemd's `TimeoutStopSec` they must stay under; the daemon's injected
//! clock is for session time only.

use std::time::Duration;

use tokio::time::Instant;

/// How long a connection keeps answering after shutdown began, counted
/// from its last request.
pub const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// However many requests keep arriving, a connection closes this long after
/// shutdown began (a client that keeps sending would otherwise keep it open
/// until the stop gives up at `shutdown_grace`).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// The drain state of one connection: not draining, or draining until an
/// instant.
#[derive(Debug, Default)]
pub struct Drain {
    /// When shutdown was noticed, and until when the connection may live.
    window: Option<(Instant, Instant)>,
}

impl Drain {
    /// Whether shutdown began.
    pub fn active(&self) -> bool {
        self.window.is_some()
    }

    /// Shutdown began `now`: the connection may live [`DRAIN_GRACE`] more.
    /// Later calls change nothing.
    pub fn begin(&mut self, now: Instant) {
        if self.window.is_none() {
            self.window = Some((now, now + DRAIN_GRACE));
        }
    }

    /// A request was answered `now`: while draining, the connection waits
    /// [`DRAIN_GRACE`] for the next one, up to [`DRAIN_LIMIT`] in all.
    pub fn extend(&mut self, now: Instant) {
        if let Some((began, until)) = &mut self.window {
            *until = (now + DRAIN_GRACE).min(*began + DRAIN_LIMIT);
        }
    }

    /// The instant the connection closes at while draining.
    pub fn until(&self) -> Option<Instant> {
        self.window.map(|(_, until)| until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_extend_the_drain_up_to_its_limit() {
        let t0 = Instant::now();
        let mut d = Drain::default();
        d.extend(t0);
        assert_eq!(d.until(), None, "no drain before shutdown");
        d.begin(t0);
        assert_eq!(d.until(), Some(t0 + DRAIN_GRACE));
        d.begin(t0 + Duration::from_millis(100));
        assert_eq!(d.until(), Some(t0 + DRAIN_GRACE), "begins once");
        d.extend(t0 + Duration::from_millis(150));
        assert_eq!(
            d.until(),
            Some(t0 + Duration::from_millis(150) + DRAIN_GRACE)
        );
        d.extend(t0 + DRAIN_LIMIT);
        assert_eq!(d.until(), Some(t0 + DRAIN_LIMIT), "capped");
    }
}
