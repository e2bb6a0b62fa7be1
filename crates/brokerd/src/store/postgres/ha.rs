//! What several daemons sharing one PostgreSQL database need of it
//! (docs/ha.md): a leadership lock per session on a dedicated connection,
//! notifications of saved sessions and forwarded requests, the request
//! rows followers hand the leader, and who leads what.
//!
//! Channels: `brokerd_sessions` (payload `broker/account/api/generation/host`,
//! sent by `save_session` and `forget_session` in the same transaction as
//! the write, so a notification means a committed row) and
//! `brokerd_requests` (payload `broker/account/api`, sent with the request
//! row it announces).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::brokers::SessionKey;
use crate::store::StoreError;

/// What a follower asks of the leader of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AskKind {
    /// A client reported `generation` dead (already classified as a dead
    /// session by the follower's broker module).
    Report,
    /// A client needs a session valid `min_valid_secs` newer than
    /// `generation` and the follower has none.
    Login,
    /// `brokerctl login` on a follower: an operator forces a fresh login.
    OperatorLogin,
    /// A person's browser login reached a follower's callback listener:
    /// `payload` holds the submission (request token / api session and
    /// the link's `state`), encrypted at rest like a session.
    Submit,
}

impl AskKind {
    /// The spelling in the `ha_requests.kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Login => "login",
            Self::OperatorLogin => "operator_login",
            Self::Submit => "submit",
        }
    }
}

/// A request row: one follower's ask of the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// What is asked.
    pub kind: AskKind,
    /// Report: the generation reported dead. Login: the generation the new
    /// session must be newer than (0: any). Others: the follower's
    /// generation when it asked.
    pub generation: u64,
    /// Login: how long the session must stay valid.
    pub min_valid_secs: u64,
    /// The host that asked (its `[daemon.ha] host`).
    pub from_host: String,
    /// Submit: the plaintext submission (encrypted in the row, decrypted
    /// when claimed). Never logged.
    pub payload: Option<Vec<u8>>,
}

/// A notification, as [`Listener::next`] hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A session row of `key` was saved at `generation` by `host`.
    Session {
        /// The slot.
        key: SessionKey,
        /// The saved generation.
        generation: u64,
        /// The host whose daemon saved it.
        host: String,
    },
    /// The session of `key` was forgotten (a logout) by `host`.
    Gone {
        /// The slot.
        key: SessionKey,
        /// The host whose daemon forgot it.
        host: String,
    },
    /// A request row for `key` was written.
    Request {
        /// The slot.
        key: SessionKey,
    },
    /// The listening connection was lost and is back: notifications may
    /// have been missed, so the caller should look at everything.
    Reconnected,
}

/// A dedicated connection (never from the pool) holding this daemon's
/// session-level advisory locks: one per session it leads. The server
/// drops them all when this connection ends, which is how a dead leader's
/// sessions become free.
#[derive(Debug)]
pub struct LockConnection {
    _private: (),
}

impl LockConnection {
    /// Tries to take the lock of `key` without waiting: `true` if this
    /// connection holds it now (also when it already did).
    pub async fn try_lock(&mut self, key: &SessionKey) -> Result<bool, StoreError> {
        let _ = key;
        todo!()
    }

    /// Gives up the lock of `key` (reload removed the account; stop).
    pub async fn unlock(&mut self, key: &SessionKey) -> Result<(), StoreError> {
        let _ = key;
        todo!()
    }

    /// Whether this connection still holds the lock of `key`: asked of the
    /// server, so an error means the connection (and every lock) is gone.
    pub async fn holds(&mut self, key: &SessionKey) -> Result<bool, StoreError> {
        let _ = key;
        todo!()
    }

    /// The server process id of this connection (recorded in `ha_leaders`).
    pub fn pid(&self) -> i32 {
        todo!()
    }
}

/// The listening connection for both channels (sqlx's `PgListener`, which
/// reconnects by itself).
#[derive(Debug)]
pub struct Listener {
    _private: (),
}

impl Listener {
    /// The next notification; [`Notice::Reconnected`] after a lost
    /// connection came back. Payloads that do not parse are skipped with a
    /// warning. An error means the server cannot be reached now (the
    /// caller retries after a pause).
    pub async fn next(&mut self) -> Result<Notice, StoreError> {
        todo!()
    }
}

impl PgStore {
    /// Sets the host name this daemon writes into `sessions.created_by`,
    /// `ha_leaders.host`, notifications and request rows. Called once,
    /// right after open, by a daemon with `[daemon.ha]`.
    pub fn set_host(&self, host: &str) {
        let _ = host;
        todo!()
    }

    /// Opens the dedicated lock connection. `keepalive`: the server notices
    /// a vanished host (no FIN/RST) within about this long (TCP keepalives
    /// and `tcp_user_timeout` set on the connection), so its locks free.
    pub async fn lock_connection(&self, keepalive: Duration) -> Result<LockConnection, StoreError> {
        let _ = keepalive;
        todo!()
    }

    /// Starts listening on `brokerd_sessions` and `brokerd_requests`.
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        todo!()
    }

    /// Writes `ask` for the leader of `key` and notifies `brokerd_requests`
    /// in the same transaction. Returns the row id.
    pub async fn forward(&self, key: &SessionKey, ask: &Ask) -> Result<i64, StoreError> {
        let _ = (key, ask);
        todo!()
    }

    /// Takes (deletes and returns, oldest first) the request rows of `key`;
    /// rows older than `max_age` are deleted without being returned (their
    /// askers stopped waiting). Concurrent claimers never get one row twice.
    pub async fn claim(&self, key: &SessionKey, max_age: Duration) -> Result<Vec<Ask>, StoreError> {
        let _ = (key, max_age);
        todo!()
    }

    /// Every slot's stored generation (the periodic check for missed
    /// notifications compares them with its own).
    pub async fn generations(&self) -> Result<Vec<(SessionKey, u64)>, StoreError> {
        todo!()
    }

    /// Records that this daemon (lock connection `pid`) leads `key` since
    /// now.
    pub async fn set_leader(&self, key: &SessionKey, pid: i32) -> Result<(), StoreError> {
        let _ = (key, pid);
        todo!()
    }

    /// Who leads each slot now: the host and since when, for rows whose
    /// lock connection is still alive and holds an advisory lock (a dead
    /// leader's row is not shown).
    pub async fn leaders(&self) -> Result<Vec<(SessionKey, String, DateTime<Utc>)>, StoreError> {
        todo!()
    }
}
