//! What the slot's login machinery is doing, with the due times the
//! machine was handed (wall-clock `DateTime<Utc>`, from the injected
//! clock: no `Instant`, so tests move time instead of sleeping).

use chrono::{DateTime, Utc};

/// The machine's phase. Only the machine assigns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing in progress: the session (if any) is served, and the next
    /// login is decided by requests and the schedule.
    Idle,
    /// A login (or a person's submission) is in flight.
    LoggingIn,
    /// A transient failure (or the login budget): the next automatic
    /// attempt is at `until`.
    Backoff {
        /// When the next attempt may start.
        until: DateTime<Utc>,
    },
    /// Credentials rejected: only an operator's changed credentials help.
    LockedOut,
    /// Sessions keep dying right after login (or the hourly cap was hit):
    /// at most one automatic login per cooldown, the next at `until`.
    Conflict {
        /// When the cooldown ends.
        until: DateTime<Utc>,
    },
    /// Interactive brokers: no usable session, waiting for a person's
    /// browser login to be submitted.
    AuthRequired,
    /// The store refused the write that proves a session could be kept:
    /// no login; the store is probed again at `until` (`probes` failed so
    /// far, for the pace).
    StoreUnavailable {
        /// When the store is probed again.
        until: DateTime<Utc>,
        /// Probes failed so far in this outage.
        probes: u32,
    },
}

impl Phase {
    /// When the phase expects to be looked at again, if it waits for a time.
    pub fn until(self) -> Option<DateTime<Utc>> {
        match self {
            Self::Backoff { until }
            | Self::Conflict { until }
            | Self::StoreUnavailable { until, .. } => Some(until),
            Self::Idle | Self::LoggingIn | Self::LockedOut | Self::AuthRequired => None,
        }
    }
}
