//! The SQLite backend: one file in the state folder, WAL journal, and every
//! commit synced to disk before it is reported.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::SharedClock;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::codec::{self, RawRow};
use super::crypto::EncryptionKey;
use super::faults::FaultSwitch;
use super::keyring::KeyRing;
use super::{AuditEntry, AuditRow, StoreError, StoredSession};
use crate::brokers::{BrokerId, NewSession, SessionKey};

/// Long enough to ride out another connection's checkpoint or a `brokerctl`
/// reading the file, short enough that a stuck lock surfaces as an error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// WAL lets readers run beside the one writer; a daemon writes a handful of
/// rows a day, so a few connections are plenty.
const POOL_SIZE: u32 = 4;

/// Size of a reservation's padding. A session row is a few hundred bytes to
/// about 2 KiB (its ciphertext plus metadata; `sqlite_tests` checks a large
/// one against this), so a reservation spans many WAL frames more than a
/// save needs, leaving room for the audit rows written between the two.
pub(crate) const RESERVATION_BYTES: i64 = 64 * 1024;

/// The columns [`RawRow`] is read from, in one place for both queries.
const SESSION_COLUMNS: &str =
    "generation, key_id, nonce, ciphertext, expires_at, obtained_at, user_id, app_expiry";

/// An SQLite store: a connection pool and the keys rows are encrypted with.
#[derive(Debug)]
pub struct SqliteStore {
    // The pool does its own locking; wrapping it in a mutex would serialise
    // readers for nothing.
    pub(super) pool: SqlitePool,
    /// Swapped whole by a key rotation; readers take a snapshot and never
    /// hold the lock across an await.
    keys: parking_lot::RwLock<Arc<KeyRing>>,
    /// Held shared by every session save from sealing to commit, and
    /// exclusively by a key rotation: a save sealed under the old key can
    /// then never land after the rotation re-encrypted the table.
    pub(super) sealing: tokio::sync::RwLock<()>,
    pub(super) faults: FaultSwitch,
    /// The database file, for messages (it says which disk to free).
    path: PathBuf,
    /// The daemon's clock: every time the store writes (audit rows,
    /// `updated_at`, reservations) and the age audit pruning counts from, so
    /// a test's manual clock sees the rows it made at the times it made them.
    clock: SharedClock,
}

/// A `sessions` row with its slot columns, as `load_all` reads it.
#[derive(sqlx::FromRow)]
struct SlotRow {
    broker: String,
    account: String,
    api: String,
    #[sqlx(flatten)]
    row: RawRow,
}

impl SqliteStore {
    /// Opens the database at `location` (the URL after `sqlite:` or
    /// `sqlite://`), creating it and its folder if missing, and migrates it.
    /// Times are read from `clock`.
    pub(crate) async fn open(
        path: PathBuf,
        key: EncryptionKey,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        prepare_file(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit: a saved session survives a
            // power cut, which "persist before publish" depends on.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Overwrite freed pages with zeros, so a logged-out session's
            // ciphertext does not linger in free space.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        tracing::info!(path = %path.display(), key_id = key.id(), "store opened");
        Ok(Self {
            pool,
            keys: parking_lot::RwLock::new(Arc::new(KeyRing::new(key))),
            sealing: tokio::sync::RwLock::new(()),
            faults: FaultSwitch::default(),
            path,
            clock,
        })
    }

    /// Now on the store's clock as unix milliseconds, the encoding of
    /// `updated_at`, `reserved_at` and `audit.at`.
    pub(super) fn now_millis(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub(crate) fn faults(&self) -> &FaultSwitch {
        &self.faults
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the reservation, then rewinds the WAL. In WAL mode a commit
    /// lands in the WAL file, which keeps its size when rewound: after a
    /// RESTART checkpoint the next writer starts again at its first frame.
    /// The save after the login (a few frames) then overwrites space the
    /// reservation (many frames) already took, so a disk that fills in
    /// between cannot refuse it. The database file is only written by
    /// checkpoints, and a checkpoint that fails loses nothing: the frames
    /// stay in the WAL.
    pub(crate) async fn reserve_session(&self, slot: &SessionKey) -> Result<(), StoreError> {
        self.faults.check_write()?;
        sqlx::query(
            "INSERT INTO reservations (broker, account, api, padding, reserved_at) \
             VALUES (?, ?, ?, zeroblob(?), ?) \
             ON CONFLICT (broker, account, api) DO UPDATE SET \
                 padding = excluded.padding, reserved_at = excluded.reserved_at",
        )
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .bind(RESERVATION_BYTES)
        .bind(self.now_millis())
        .execute(&self.pool)
        .await?;
        // (busy, frames in the WAL, frames checkpointed). Busy: a reader
        // kept the WAL from being rewound; the save then appends, which
        // needs new space, so say so (the reservation still proved that a
        // write went through a moment ago).
        let (busy, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(RESTART)")
            .fetch_one(&self.pool)
            .await?;
        if busy != 0 {
            tracing::info!(%slot, frames, "store reservation: a reader kept the WAL from being rewound; \
                           the next save appends to it");
        }
        Ok(())
    }

    pub(crate) async fn save_session(
        &self,
        slot: &SessionKey,
        generation: u64,
        session: &NewSession,
    ) -> Result<(), StoreError> {
        self.faults.check_write()?;
        // Until the commit: a rotation must not re-encrypt the table between
        // this seal and this write.
        let _sealing = self.sealing.read().await;
        let row = codec::seal(self.keys().current(), slot, generation, session)?;
        // Autocommit: `execute` returns after the commit, and with
        // synchronous=FULL the commit has been fsynced by then.
        let done = sqlx::query(
            "INSERT INTO sessions (broker, account, api, generation, key_id, nonce, ciphertext, \
                 expires_at, obtained_at, user_id, app_expiry, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (broker, account, api) DO UPDATE SET \
                 generation = excluded.generation, key_id = excluded.key_id, \
                 nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                 expires_at = excluded.expires_at, obtained_at = excluded.obtained_at, \
                 user_id = excluded.user_id, app_expiry = excluded.app_expiry, \
                 updated_at = excluded.updated_at \
             WHERE excluded.generation >= sessions.generation",
        )
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .bind(row.generation)
        .bind(row.key_id)
        .bind(row.nonce)
        .bind(row.ciphertext)
        .bind(row.expires_at)
        .bind(row.obtained_at)
        .bind(row.user_id)
        .bind(row.app_expiry)
        .bind(self.now_millis())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            // The WHERE clause refused: the stored generation is newer.
            let stored: i64 = sqlx::query_scalar(
                "SELECT generation FROM sessions WHERE broker = ? AND account = ? AND api = ?",
            )
            .bind(slot.broker.as_str())
            .bind(&slot.account)
            .bind(slot.api.as_str())
            .fetch_one(&self.pool)
            .await?;
            return Err(StoreError::StaleGeneration {
                key: slot.to_string(),
                stored: u64::try_from(stored).unwrap_or(0),
                attempted: generation,
            });
        }
        Ok(())
    }

    pub(crate) async fn load_session(
        &self,
        slot: &SessionKey,
    ) -> Result<Option<StoredSession>, StoreError> {
        let row: Option<RawRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE broker = ? AND account = ? AND api = ?"
        ))
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let keys = self.keys();
        row.map(|row| codec::open(&keys, slot, row)).transpose()
    }

    pub(crate) async fn load_all(&self) -> Result<Vec<(SessionKey, StoredSession)>, StoreError> {
        let rows: Vec<SlotRow> = sqlx::query_as(&format!(
            "SELECT broker, account, api, {SESSION_COLUMNS} FROM sessions \
             ORDER BY broker, account, api"
        ))
        .fetch_all(&self.pool)
        .await?;
        let keys = self.keys();
        let mut sessions = Vec::with_capacity(rows.len());
        for SlotRow {
            broker,
            account,
            api,
            row,
        } in rows
        {
            let Some(slot) = super::key_or_skip(&broker, account, &api) else {
                continue;
            };
            let stored = codec::open(&keys, &slot, row)?;
            sessions.push((slot, stored));
        }
        Ok(sessions)
    }

    pub(crate) async fn forget_session(&self, slot: &SessionKey) -> Result<(), StoreError> {
        self.faults.check_write()?;
        sqlx::query(
            "UPDATE sessions SET key_id = NULL, nonce = NULL, ciphertext = NULL, \
                 expires_at = NULL, obtained_at = NULL, user_id = NULL, app_expiry = NULL, \
                 updated_at = ? \
             WHERE broker = ? AND account = ? AND api = ?",
        )
        .bind(self.now_millis())
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn totp_window(
        &self,
        broker: BrokerId,
        account: &str,
    ) -> Result<Option<u64>, StoreError> {
        let window: Option<i64> = sqlx::query_scalar(
            "SELECT last_window FROM totp_windows WHERE broker = ? AND account = ?",
        )
        .bind(broker.as_str())
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        window
            .map(|w| {
                u64::try_from(w).map_err(|_| {
                    StoreError::Invalid(format!(
                        "the last TOTP window of {broker}/{account} is negative ({w})"
                    ))
                })
            })
            .transpose()
    }

    pub(crate) async fn record_totp_window(
        &self,
        broker: BrokerId,
        account: &str,
        window: u64,
    ) -> Result<(), StoreError> {
        self.faults.check_write()?;
        let window = i64::try_from(window)
            .map_err(|_| StoreError::Invalid(format!("TOTP window {window} is out of range")))?;
        // Autocommit with synchronous=FULL: synced to disk when `execute`
        // returns, as the caller relies on before it sends the code.
        sqlx::query(
            "INSERT INTO totp_windows (broker, account, last_window, used_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (broker, account) DO UPDATE SET \
                 last_window = excluded.last_window, used_at = excluded.used_at",
        )
        .bind(broker.as_str())
        .bind(account)
        .bind(window)
        .bind(self.now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn audit(&self, entry: AuditEntry<'_>) -> Result<(), StoreError> {
        self.faults.check_write()?;
        let generation = entry.generation.map(codec::generation_to_db).transpose()?;
        sqlx::query(
            "INSERT INTO audit (at, broker, account, api, generation, event, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.now_millis())
        .bind(entry.key.broker.as_str())
        .bind(&entry.key.account)
        .bind(entry.key.api.as_str())
        .bind(generation)
        .bind(entry.event.as_str())
        .bind(entry.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn audit_rows(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let rows: Vec<super::history::AuditTuple> = sqlx::query_as(
            "SELECT at, broker, account, api, generation, event, detail FROM audit \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(super::history::audit_row).collect()
    }

    pub(crate) async fn prune_audit(
        &self,
        max_age: Duration,
        max_rows: u64,
    ) -> Result<u64, StoreError> {
        self.faults.check_write()?;
        let age_millis = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = self.now_millis().saturating_sub(age_millis);
        let mut tx = self.pool.begin().await?;
        let by_age = sqlx::query("DELETE FROM audit WHERE at < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // Ids only grow (AUTOINCREMENT), so "all but the newest N" is "every id
        // up to the (N+1)-th newest"; with fewer rows the subquery is NULL and
        // nothing matches.
        let by_count = sqlx::query(
            "DELETE FROM audit WHERE id <= \
                 (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .bind(i64::try_from(max_rows).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(by_age + by_count)
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn key_id(&self) -> String {
        self.keys().current().id().to_string()
    }

    /// A snapshot of the keys.
    pub(crate) fn keys(&self) -> Arc<KeyRing> {
        Arc::clone(&self.keys.read())
    }

    /// Replaces the keys (a rotation's steps).
    pub(super) fn set_keys(&self, keys: KeyRing) {
        *self.keys.write() = Arc::new(keys);
    }
}

/// Creates the database's folder (0700) and an empty database file (0600)
/// when missing. SQLite would create the file itself, but with the umask's
/// mode (often 0644), and its `-wal`/`-shm` files copy the database's mode.
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| StoreError::Io {
                action: "create folder",
                path: parent.to_path_buf(),
                source,
            })?;
    }
    // An empty file is a valid, empty SQLite database.
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::Io {
            action: "create database file",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "reserve_tests.rs"]
mod reserve_tests;
