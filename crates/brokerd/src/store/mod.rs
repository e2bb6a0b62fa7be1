//! The encrypted session store: one row per session slot (token material as
//! AES-256-GCM ciphertext, metadata in plain columns) and an audit table.
//! The backend is picked from the URL; SQLite is the embedded default.

mod codec;
pub mod crypto;
mod faults;
mod history;
pub mod keyfile;
mod keyring;
mod login_history;
#[cfg(test)]
pub(crate) mod pg_test_cluster;
pub mod postgres;
mod reencrypt;
mod rejections;
pub mod rotation;
pub mod sqlite;
mod startup;
#[cfg(test)]
pub(crate) mod test_backends;

pub use history::{HistoryQuery, Visibility};
pub use keyring::KeyRing;
pub use reencrypt::Reencrypted;
pub use rejections::Rejection;
pub use startup::StartupState;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};
use chrono::{DateTime, Utc};

pub use crypto::{EncryptionKey, KeyError, load_key, write_key_file};
pub use faults::FaultSwitch;

use crate::brokers::{BrokerId, NewSession, SessionKey};

/// The key of a stored row; `None` for a broker or api this build does not
/// know (a newer build's row), which is left alone.
pub(crate) fn key_of(broker: &str, account: String, api: &str) -> Option<SessionKey> {
    Some(SessionKey::new(
        BrokerId::parse(broker)?,
        account,
        crate::brokers::Api::parse(api)?,
    ))
}

/// [`key_of`] for a row that matters on its own (a session, a leader): a
/// row this build cannot name is skipped, saying so, and must not stop the
/// daemon from serving the others.
pub(crate) fn key_or_skip(broker: &str, account: String, api: &str) -> Option<SessionKey> {
    let key = key_of(broker, account.clone(), api);
    if key.is_none() {
        tracing::warn!(%broker, %account, %api, "skipping a stored row of unknown broker or api");
    }
    key
}

/// Which backend a store URL names, and where: the one place that says
/// which URLs this build supports; the config check reports its answer on
/// `daemon.database_url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite database file (see [`database_file`]).
    Sqlite(PathBuf),
    /// A PostgreSQL database, `postgres://` or `postgresql://` (see
    /// [`postgres::check_url`]). The URL is kept as written: it may hold
    /// a password, so it is never shown (`postgres::describe` is).
    Postgres(String),
}

/// Parses a store URL: `sqlite:` files (what [`database_file`] accepts) or
/// PostgreSQL URLs (`postgres://user:password@host:5432/brokerd`,
/// `postgresql://…`, with libpq-style query parameters such as
/// `sslmode=require` or `host=/run/postgresql`). Never quotes the URL.
pub fn parse_url(url: &str) -> Result<StoreUrl, UnsupportedUrl> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        postgres::check_url(url)?;
        return Ok(StoreUrl::Postgres(url.to_string()));
    }
    database_file(url).map(StoreUrl::Sqlite)
}

/// The database file an SQLite store URL names: `sqlite:///abs/path.db`,
/// `sqlite://path.db` or `sqlite:path.db` (a relative path is relative to
/// the working folder; the config makes it absolute). Any other scheme is
/// refused here; [`parse_url`] also accepts PostgreSQL.
pub fn database_file(url: &str) -> Result<PathBuf, UnsupportedUrl> {
    const FIX: &str = "write database_url = \"sqlite:///var/lib/brokerd/brokerd.db\", or \
                       \"postgres://brokerd@db.example/brokerd\" for PostgreSQL, or remove \
                       database_url for brokerd.db in state_dir";
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        // Only the scheme is shown: the rest of a URL may carry a password.
        let scheme = url.split_once(':').map_or("(none)", |(s, _)| s);
        return Err(UnsupportedUrl::new(
            format!(
                "unknown store URL scheme {scheme:?}; the store is SQLite (sqlite:) or PostgreSQL \
                 (postgres://)"
            ),
            FIX,
        ));
    };
    // Query parameters are refused rather than passed on: brokerd sets the
    // SQLite options itself, and `mode=ro` or `mode=memory` would quietly
    // break durability.
    if rest.contains('?') {
        return Err(UnsupportedUrl::new(
            "query parameters in a sqlite: store URL are not supported: brokerd sets the SQLite \
             options itself",
            "remove everything from the '?' on",
        ));
    }
    if rest.is_empty() || rest == ":memory:" {
        return Err(UnsupportedUrl::new(
            "the store needs a database file: sessions must survive a restart",
            FIX,
        ));
    }
    Ok(PathBuf::from(rest))
}

/// A store URL this build cannot open: what is wrong and the fix. Never
/// quotes the URL (it may hold a password).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}; {fix}")]
pub struct UnsupportedUrl {
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl UnsupportedUrl {
    fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

/// The store, dispatching to its backend. Cheap to share by reference: the
/// backends hold connection pools, which do their own locking.
#[derive(Debug)]
pub enum Store {
    /// An SQLite file on this host.
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL database, which several daemons may share
    /// (`[daemon.ha]`, docs/ha.md).
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating if missing) the store at `url` and brings its schema
    /// up to date. Accepted: what [`database_file`] accepts. Its rows are
    /// stamped on the system clock.
    pub async fn open(url: &str, key: EncryptionKey) -> Result<Store, StoreError> {
        Self::open_on(url, key, SystemClock::shared()).await
    }

    /// [`Store::open`] on `clock` (the daemon's): audit rows, `updated_at`
    /// and reservations are stamped with it and audit pruning counts ages on
    /// it, so a test's manual clock and the store agree on when things were.
    pub async fn open_on(
        url: &str,
        key: EncryptionKey,
        clock: SharedClock,
    ) -> Result<Store, StoreError> {
        match parse_url(url)? {
            StoreUrl::Sqlite(path) => Ok(Store::Sqlite(
                sqlite::SqliteStore::open(path, key, clock).await?,
            )),
            StoreUrl::Postgres(url) => Ok(Store::Postgres(
                postgres::PgStore::open(&url, key, clock).await?,
            )),
        }
    }

    /// Proves that the next [`Store::save_session`] of `key` can land,
    /// before a login spends anything at the broker: durably commits a
    /// reservation row for `key` that is much larger than a session row,
    /// then lets the save reuse the space that write took (SQLite: the WAL
    /// is rewound, so the save overwrites bytes already on disk instead of
    /// growing a file). An error means the store cannot take a session now
    /// (typically a full disk, see [`StoreError::is_disk_full`]).
    ///
    /// PostgreSQL: the reservation is a durable commit of a small row, so
    /// it proves the server is reachable, accepts writes and commits them
    /// now; it cannot set space aside (every update writes a new row
    /// version and new WAL, on the server's disk), so a server whose disk
    /// fills between the reservation and the save refuses the save, which
    /// the login task reports as a login spent.
    pub async fn reserve_session(&self, key: &SessionKey) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.reserve_session(key).await,
            Store::Postgres(s) => s.reserve_session(key).await,
        }
    }

    /// The backend's name, as `hello` gives it.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Where the store keeps its data, for messages that tell an operator
    /// what to fix (SQLite: the database file; PostgreSQL: database, host
    /// and port). Never holds a password.
    pub fn location(&self) -> String {
        match self {
            Store::Sqlite(s) => s.path().display().to_string(),
            Store::Postgres(s) => s.location().to_string(),
        }
    }

    /// What an operator should do about `e`, a write this store refused
    /// (the end of the `store_unavailable` message).
    pub fn outage_fix(&self, e: &StoreError) -> &'static str {
        match (self, e.is_disk_full()) {
            (Store::Sqlite(_), true) => "free disk space on that filesystem (df -h)",
            (Store::Sqlite(_), false) => {
                "check that the file and its folder are writable and the disk is healthy"
            }
            (Store::Postgres(_), true) => "free disk space on the database server",
            (Store::Postgres(_), false) => {
                "check that the PostgreSQL server is up and reachable from this host, and that \
                 brokerd's role may write its tables"
            }
        }
    }

    /// The switch that fails every write as a full disk does (tests, drills).
    pub fn faults(&self) -> &FaultSwitch {
        match self {
            Store::Sqlite(s) => s.faults(),
            Store::Postgres(s) => s.faults(),
        }
    }

    /// Saves (inserts or replaces) the session of `key` at `generation`.
    /// Returns only once the row is durably committed. Refuses a generation
    /// lower than the stored one ([`StoreError::StaleGeneration`]).
    pub async fn save_session(
        &self,
        key: &SessionKey,
        generation: u64,
        session: &NewSession,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.save_session(key, generation, session).await,
            Store::Postgres(s) => s.save_session(key, generation, session).await,
        }
    }

    /// The stored row of `key`, if there is one.
    pub async fn load_session(
        &self,
        key: &SessionKey,
    ) -> Result<Option<StoredSession>, StoreError> {
        match self {
            Store::Sqlite(s) => s.load_session(key).await,
            Store::Postgres(s) => s.load_session(key).await,
        }
    }

    /// Every row whose broker and api parse; others are skipped with a warning.
    pub async fn load_all(&self) -> Result<Vec<(SessionKey, StoredSession)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.load_all().await,
            Store::Postgres(s) => s.load_all().await,
        }
    }

    /// Every slot's stored session, rejections and login starts since
    /// `logins_since`, in one pass (a restart reads this before it
    /// answers anyone).
    pub async fn startup_state(
        &self,
        logins_since: DateTime<Utc>,
    ) -> Result<StartupState, StoreError> {
        match self {
            Store::Sqlite(s) => s.startup_state(logins_since).await,
            Store::Postgres(s) => s.startup_state(logins_since).await,
        }
    }

    /// Logout: drops the ciphertext and metadata of `key` but keeps its
    /// generation, so generations stay monotonic across logout and restart.
    pub async fn forget_session(&self, key: &SessionKey) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.forget_session(key).await,
            Store::Postgres(s) => s.forget_session(key).await,
        }
    }

    /// The last TOTP window recorded for `account` of `broker`, if any.
    pub async fn totp_window(
        &self,
        broker: BrokerId,
        account: &str,
    ) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Sqlite(s) => s.totp_window(broker, account).await,
            Store::Postgres(s) => s.totp_window(broker, account).await,
        }
    }

    /// Records `window` (Unix time / 30) as the last TOTP window used for
    /// `account` of `broker`, replacing the one before (it may be lower when
    /// the clock was stepped back). Returns only once the row is durably
    /// committed: the code of `window` may leave the daemon after that.
    pub async fn record_totp_window(
        &self,
        broker: BrokerId,
        account: &str,
        window: u64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.record_totp_window(broker, account, window).await,
            Store::Postgres(s) => s.record_totp_window(broker, account, window).await,
        }
    }

    /// When the logins of `key` since `since` started (successful or not,
    /// finished or cut short), oldest first, as the audit trail recorded them.
    pub async fn login_times(
        &self,
        key: &SessionKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        match self {
            Store::Sqlite(s) => s.login_times(key, since).await,
            Store::Postgres(s) => s.login_times(key, since).await,
        }
    }

    /// Every credential set of `key` the broker rejected since its last
    /// successful login, oldest first.
    pub async fn rejections(&self, key: &SessionKey) -> Result<Vec<Rejection>, StoreError> {
        match self {
            Store::Sqlite(s) => s.rejections(key).await,
            Store::Postgres(s) => s.rejections(key).await,
        }
    }

    /// Remembers that the broker rejected `key`'s credentials (durably: a
    /// restart must not send them again).
    pub async fn record_rejection(
        &self,
        key: &SessionKey,
        rejection: &Rejection,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.record_rejection(key, rejection).await,
            Store::Postgres(s) => s.record_rejection(key, rejection).await,
        }
    }

    /// Forgets `key`'s rejections (a login succeeded).
    pub async fn clear_rejection(&self, key: &SessionKey) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.clear_rejection(key).await,
            Store::Postgres(s) => s.clear_rejection(key).await,
        }
    }

    /// Appends an audit entry.
    pub async fn audit(&self, entry: AuditEntry<'_>) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.audit(entry).await,
            Store::Postgres(s) => s.audit(entry).await,
        }
    }

    /// The newest `limit` audit rows, newest first.
    pub async fn audit_rows(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.audit_rows(limit).await,
            Store::Postgres(s) => s.audit_rows(limit).await,
        }
    }

    /// The audit rows `query` asks for and its visibility allows, newest
    /// first, at most `query.limit`.
    pub async fn history(&self, query: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.history(query).await,
            Store::Postgres(s) => s.history(query).await,
        }
    }

    /// Appends an audit entry about the daemon as a whole (broker column
    /// `brokerd`, account and api empty). A failure is logged: the audit
    /// trail is for people and never stops the daemon.
    pub async fn audit_daemon(&self, event: AuditEvent, detail: &str) {
        let written = match self {
            Store::Sqlite(s) => s.audit_daemon(event, detail).await,
            Store::Postgres(s) => s.audit_daemon(event, detail).await,
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, event = event.as_str(), "audit write failed");
        }
    }

    /// How many stored sessions are under each key id.
    pub async fn sessions_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.sessions_by_key().await,
            Store::Postgres(s) => s.sessions_by_key().await,
        }
    }

    /// The keys the store reads with (ids only reach the outside).
    pub fn keys(&self) -> Arc<KeyRing> {
        match self {
            Store::Sqlite(s) => s.keys(),
            Store::Postgres(s) => s.keys(),
        }
    }

    pub(crate) fn accept_key(&self, key: Arc<EncryptionKey>) {
        match self {
            Store::Sqlite(s) => s.accept_key(key),
            Store::Postgres(s) => s.accept_key(key),
        }
    }

    pub(crate) fn forget_old_keys(&self) {
        match self {
            Store::Sqlite(s) => s.forget_old_keys(),
            Store::Postgres(s) => s.forget_old_keys(),
        }
    }

    pub(crate) async fn reencrypt(
        &self,
        target: Arc<EncryptionKey>,
        event: AuditEvent,
        detail: impl FnOnce(&Reencrypted) -> String,
    ) -> Result<Reencrypted, StoreError> {
        match self {
            Store::Sqlite(s) => s.reencrypt(target, event, detail).await,
            Store::Postgres(s) => s.reencrypt(target, event, detail).await,
        }
    }

    /// Deletes audit rows older than `max_age`, then all but the newest
    /// `max_rows`. Returns how many rows were deleted.
    pub async fn prune_audit(&self, max_age: Duration, max_rows: u64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune_audit(max_age, max_rows).await,
            Store::Postgres(s) => s.prune_audit(max_age, max_rows).await,
        }
    }

    /// Closes the connections (SQLite checkpoints its WAL on the last one).
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
            Store::Postgres(s) => s.close().await,
        }
    }

    /// The id of the key the store encrypts with.
    pub fn key_id(&self) -> String {
        match self {
            Store::Sqlite(s) => s.key_id(),
            Store::Postgres(s) => s.key_id(),
        }
    }
}

impl StoreError {
    /// Whether the database ran out of space (SQLite `SQLITE_FULL`,
    /// PostgreSQL `disk_full` (SQLSTATE 53100), or `ENOSPC` while preparing
    /// the SQLite file): freeing disk space fixes it.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => matches!(
                e.code().as_deref(),
                Some(faults::SQLITE_FULL | postgres::DISK_FULL)
            ),
            StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            _ => false,
        }
    }
}

/// One stored session slot.
#[derive(Debug)]
pub struct StoredSession {
    /// The generation last saved for the slot (kept across logout).
    pub generation: u64,
    /// `None`: the row exists but was forgotten (logged out).
    /// `Some(Err)`: present but unreadable (wrong key, tampered, damaged);
    /// the error names the account.
    pub session: Option<Result<NewSession, StoreError>>,
    /// PostgreSQL shared by several daemons: the `[daemon.ha] host` whose
    /// daemon saved the session (address-bound brokers, docs/ha.md).
    /// `None` on SQLite and for rows saved without a host.
    pub created_by: Option<String>,
}

/// What an audit entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEvent {
    /// A login succeeded.
    LoginOk,
    /// A login is about to call the broker (the login budget counts these,
    /// across restarts too).
    LoginStarted,
    /// A login failed.
    LoginFailed,
    /// A client reported the current generation dead.
    InvalidatedCurrent,
    /// A client reported an older generation dead; a newer one already existed.
    InvalidatedStale,
    /// A person submitted the interactive login step (request token or
    /// api session) for an interactive broker.
    Submitted,
    /// An interactive account started waiting for a browser login.
    AuthRequired,
    /// The session was logged out.
    Logout,
    /// Logins are blocked until an operator acts.
    LockedOut,
    /// Sessions keep dying soon after login: something else is logging into
    /// the account.
    Conflict,
    /// The store refused the write that proves a session can be saved: no
    /// login until it accepts writes again.
    StoreUnavailable,
    /// The store accepts writes again after a `StoreUnavailable`.
    StoreRecovered,
    /// Every stored session was re-encrypted under a new storage key (a
    /// daemon row: key ids only).
    KeyRotated,
    /// A key rotation interrupted before its commit was rolled back at
    /// start (a daemon row: key ids only).
    KeyRotationRolledBack,
}

impl AuditEvent {
    /// The spelling stored in the `event` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginOk => "login_ok",
            Self::LoginStarted => "login_started",
            Self::LoginFailed => "login_failed",
            Self::InvalidatedCurrent => "invalidated_current",
            Self::InvalidatedStale => "invalidated_stale",
            Self::Submitted => "submitted",
            Self::AuthRequired => "auth_required",
            Self::Logout => "logout",
            Self::LockedOut => "locked_out",
            Self::Conflict => "conflict",
            Self::StoreUnavailable => "store_unavailable",
            Self::StoreRecovered => "store_recovered",
            Self::KeyRotated => "key_rotated",
            Self::KeyRotationRolledBack => "key_rotation_rolled_back",
        }
    }
}

/// An audit entry to record.
#[derive(Clone, Copy, Debug)]
pub struct AuditEntry<'a> {
    /// The session slot concerned.
    pub key: &'a SessionKey,
    /// The generation concerned, when there is one.
    pub generation: Option<u64>,
    /// What happened.
    pub event: AuditEvent,
    /// Free, non-secret text (never a token or password).
    pub detail: &'a str,
}

/// An audit entry as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    /// When it was recorded (millisecond precision).
    pub at: DateTime<Utc>,
    /// Broker spelling, as stored.
    pub broker: String,
    /// Account name.
    pub account: String,
    /// Api spelling, as stored.
    pub api: String,
    /// The generation concerned, when there is one.
    pub generation: Option<u64>,
    /// [`AuditEvent::as_str`] of the event.
    pub event: String,
    /// The caller's detail text.
    pub detail: String,
}

/// Why a store operation failed. Never contains secrets.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored session cannot be decrypted: wrong key, or tampered with.
    #[error("cannot decrypt the stored session of {key}: {reason}")]
    Decrypt {
        /// The slot, as `broker/account/api`.
        key: String,
        /// Why, naming key ids where they differ.
        reason: String,
    },
    /// A stored row is damaged in a way decryption does not explain.
    #[error("the stored session of {key} is damaged: {reason}")]
    Corrupt {
        /// The slot, as `broker/account/api`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A session could not be encrypted.
    #[error("cannot encrypt the session of {key}: {reason}")]
    Encrypt {
        /// The slot, as `broker/account/api`.
        key: String,
        /// Why.
        reason: String,
    },
    /// A save would move the generation of a slot backwards.
    #[error(
        "refusing to save {key} at generation {attempted}: the store already holds generation \
         {stored}, and generations never go back"
    )]
    StaleGeneration {
        /// The slot, as `broker/account/api`.
        key: String,
        /// The generation in the store.
        stored: u64,
        /// The generation the caller tried to save.
        attempted: u64,
    },
    /// A value the store cannot represent.
    #[error("{0}")]
    Invalid(String),
    /// The URL names a backend or form this build does not support.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedUrl),
    /// Preparing the database's folder or file failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create folder", "create database file").
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database reported an error.
    #[error("store database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the store schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod store_tests;

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod postgres_tests;
