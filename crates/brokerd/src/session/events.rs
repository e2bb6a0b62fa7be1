//! Session events streamed to `subscribe`rs, so clients reconnect the moment
//! a new token exists instead of watching files.

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::brokers::SessionKey;

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new session (generation) exists.
    Renewed,
    /// The session will expire soon and cannot be renewed automatically.
    Expiring,
    /// A person must log in.
    AuthRequired,
    /// Credentials were rejected; no automatic retries.
    LockedOut,
    /// Another program is probably logging into the account.
    Conflict,
    /// The session was ended on request.
    LoggedOut,
    /// The store cannot take a session (disk full?): no login until it
    /// can. Once per outage.
    StoreUnavailable,
}

impl EventKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renewed => "renewed",
            Self::Expiring => "expiring",
            Self::AuthRequired => "auth_required",
            Self::LockedOut => "locked_out",
            Self::Conflict => "conflict",
            Self::LoggedOut => "logged_out",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// To which session.
    pub key: SessionKey,
    /// The generation it concerns (the new one for `renewed`).
    pub generation: u64,
    /// The session's expiry, when there is a session.
    pub expires_at: Option<DateTime<Utc>>,
    /// `auth_required` / `expiring` of interactive brokers: where a person
    /// logs in.
    pub login_url: Option<String>,
}

/// Fan-out of events to every subscriber. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    // broadcast: every subscriber gets every event; a slow one lags and is
    // told so rather than slowing the slots down.
    tx: broadcast::Sender<Event>,
}

impl EventBus {
    /// A bus keeping up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Publishes an event (dropped when nobody listens).
    pub fn publish(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// A new subscription, starting now.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
