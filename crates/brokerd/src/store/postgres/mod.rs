//! The PostgreSQL backend: the tables and meaning of the SQLite store in
//! PostgreSQL types (`migrations/postgres`), sealed by the same codec (AAD,
//! key ids), chosen by a `postgres://` or `postgresql://` URL.
//!
//! Durability: every connection sets `synchronous_commit = on` (PostgreSQL's
//! default, forced here so a server or role default of `off` cannot weaken
//! it), so a commit has reached the server's WAL on disk when `execute`
//! returns, as "persist before publish" needs. Several daemons sharing one
//! database: the primitives they need (leadership locks, notifications,
//! request rows) are in [`ha`].

pub mod ha;
mod records;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::SharedClock;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::codec::{self, RawRow};
use super::crypto::EncryptionKey;
use super::faults::FaultSwitch;
use super::keyring::KeyRing;
use super::{AuditEntry, AuditRow, StoreError, StoredSession, UnsupportedUrl};
use crate::brokers::{BrokerId, NewSession, SessionKey};

/// PostgreSQL's SQLSTATE for "could not extend file: No space left on device".
pub(crate) const DISK_FULL: &str = "53100";

/// How long a query waits for a connection, including opening one: a
/// server that is down or unreachable surfaces as an error in seconds, not
/// after sqlx's default 30 s (a login is waiting on the answer).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// A daemon writes a handful of rows a day and reads at start; the pool
/// opens connections on demand, up to this many.
const POOL_SIZE: u32 = 8;

/// The columns [`SessionRow`] is read from, in one place for both queries.
const SESSION_COLUMNS: &str = "generation, key_id, nonce, ciphertext, expires_at, obtained_at, \
                               user_id, app_expiry, created_by";

/// Checks that `url` is a PostgreSQL URL this build can use, without
/// connecting: it parses as sqlx parses it, and names a database. The
/// messages never quote the URL (it may hold a password).
pub fn check_url(url: &str) -> Result<(), UnsupportedUrl> {
    const FIX: &str = "write database_url = \"postgres://USER:PASSWORD@HOST:5432/DATABASE\" \
                       (query parameters as libpq's, e.g. ?sslmode=require or \
                       ?host=/run/postgresql)";
    let options = PgConnectOptions::from_str(url).map_err(|e| {
        // sqlx's parse errors name the part that is wrong, not the URL;
        // the password is scrubbed all the same, should one ever appear.
        let mut why = e.to_string();
        if let Some(password) = password_of(url).filter(|p| !p.is_empty()) {
            why = why.replace(password, "***");
        }
        UnsupportedUrl::new(format!("the PostgreSQL URL does not parse: {why}"), FIX)
    })?;
    if options.get_database().is_none_or(str::is_empty) {
        return Err(UnsupportedUrl::new(
            "the PostgreSQL URL names no database",
            "add the database after the host: postgres://USER@HOST:5432/brokerd",
        ));
    }
    Ok(())
}

/// The password part of `scheme://user:password@host…`, if any.
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(userinfo.split_once(':')?.1)
}

/// Where a URL points, for messages and logs: database, user, host and
/// port (or socket folder). Never the password.
pub fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => {
            let at = match o.get_socket() {
                Some(dir) => format!("socket {}", dir.display()),
                None => format!("{}:{}", o.get_host(), o.get_port()),
            };
            format!(
                "PostgreSQL database {} as {} on {at}",
                o.get_database().unwrap_or("(none)"),
                o.get_username()
            )
        }
        Err(_) => "PostgreSQL database (unparsable URL)".to_string(),
    }
}

/// A PostgreSQL store: a connection pool and the keys rows are encrypted with.
#[derive(Debug)]
pub struct PgStore {
    // The pool does its own locking and replaces broken connections (each
    // is tested before it is handed out), so a restarted server is used
    // again without anyone reopening the store.
    pub(in crate::store) pool: PgPool,
    /// Swapped whole by a key rotation; readers take a snapshot and never
    /// hold the lock across an await.
    keys: parking_lot::RwLock<Arc<KeyRing>>,
    /// Held shared by every session save from sealing to commit, and
    /// exclusively by a key rotation (as in the SQLite store).
    sealing: tokio::sync::RwLock<()>,
    faults: FaultSwitch,
    /// [`describe`] of the URL: what messages name, never the password.
    location: String,
    /// The daemon's clock: every time the store writes, and audit ages.
    clock: SharedClock,
    /// What the pool connects with: the lock connection is opened from
    /// the same options (ha.rs).
    options: ConnectOptions,
    /// `[daemon.ha] host`, once set ([`PgStore::set_host`]): written into
    /// `sessions.created_by`, notifications and `ha_leaders`.
    host: parking_lot::RwLock<Option<String>>,
}

/// [`PgConnectOptions`] without its `Debug`, which prints the password;
/// boxed, as they are large and [`super::Store`] holds a store inline.
#[derive(Clone)]
struct ConnectOptions(Box<PgConnectOptions>);

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgConnectOptions { .. }")
    }
}

/// A `sessions` row as the codec reads it, plus the PostgreSQL-only
/// `created_by` (SQLite has no such column).
#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    row: RawRow,
    created_by: Option<String>,
}

impl SessionRow {
    fn open(self, keys: &KeyRing, slot: &SessionKey) -> Result<StoredSession, StoreError> {
        let mut stored = codec::open(keys, slot, self.row)?;
        stored.created_by = self.created_by;
        Ok(stored)
    }
}

/// A `sessions` row with its slot columns, as `load_all` reads it.
#[derive(sqlx::FromRow)]
struct SlotRow {
    broker: String,
    account: String,
    api: String,
    #[sqlx(flatten)]
    row: SessionRow,
}

impl PgStore {
    /// Connects to the database `url` names and migrates it. The database
    /// must exist (brokerd does not create databases: that needs rights a
    /// daemon should not have). Times are read from `clock`.
    pub(crate) async fn open(
        url: &str,
        key: EncryptionKey,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        check_url(url)?;
        let options = PgConnectOptions::from_str(url)?
            .application_name("brokerd")
            // After the URL's own `options`, so this one wins.
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        let location = describe(url);
        tracing::info!(location = %location, key_id = key.id(), "store opened");
        Ok(Self {
            pool,
            keys: parking_lot::RwLock::new(Arc::new(KeyRing::new(key))),
            sealing: tokio::sync::RwLock::new(()),
            faults: FaultSwitch::default(),
            location,
            clock,
            options: ConnectOptions(Box::new(options)),
            host: parking_lot::RwLock::new(None),
        })
    }

    /// The host set by [`PgStore::set_host`], if any.
    fn host(&self) -> Option<String> {
        self.host.read().clone()
    }

    /// Now on the store's clock as unix milliseconds.
    fn now_millis(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    pub(crate) fn faults(&self) -> &FaultSwitch {
        &self.faults
    }

    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// A durable commit of a small row: the server is reachable, takes
    /// writes and commits them. See [`super::Store::reserve_session`] for
    /// why no space can be set aside on PostgreSQL.
    pub(crate) async fn reserve_session(&self, slot: &SessionKey) -> Result<(), StoreError> {
        self.faults.check_write()?;
        sqlx::query(
            "INSERT INTO reservations (broker, account, api, reserved_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (broker, account, api) DO UPDATE SET reserved_at = excluded.reserved_at",
        )
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .bind(self.now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn save_session(
        &self,
        slot: &SessionKey,
        generation: u64,
        session: &NewSession,
    ) -> Result<(), StoreError> {
        self.faults.check_write()?;
        let _sealing = self.sealing.read().await;
        let row = codec::seal(self.keys().current(), slot, generation, session)?;
        let host = self.host();
        let alone = host.is_none();
        let notice = ha::saved_payload(slot, generation, host.as_deref().unwrap_or(""));
        // One statement, autocommit. The conflicting row is locked and the
        // WHERE re-checked on its newest version, so of concurrent saves
        // of one slot the highest generation is the one left standing.
        // The notification goes out in the same statement (so the same
        // transaction: delivered only once the row is committed), once per
        // row the upsert returns: none when the save was refused.
        let done = sqlx::query(
            "WITH saved AS ( \
                 INSERT INTO sessions (broker, account, api, generation, key_id, nonce, \
                     ciphertext, expires_at, obtained_at, user_id, app_expiry, updated_at, \
                     created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (broker, account, api) DO UPDATE SET \
                     generation = excluded.generation, key_id = excluded.key_id, \
                     nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                     expires_at = excluded.expires_at, obtained_at = excluded.obtained_at, \
                     user_id = excluded.user_id, app_expiry = excluded.app_expiry, \
                     updated_at = excluded.updated_at, created_by = excluded.created_by \
                 WHERE excluded.generation > sessions.generation \
                     OR ($16 AND excluded.generation = sessions.generation) \
                 RETURNING 1) \
             SELECT pg_notify($14, $15) FROM saved",
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
        .bind(host)
        .bind(ha::SESSIONS_CHANNEL)
        .bind(notice)
        // Shared by several daemons (a host is set): a generation is saved
        // once, by one leader; a second save of it is a former leader's
        // late login, refused. Alone, the same generation may be saved again.
        .bind(alone)
        .fetch_optional(&self.pool)
        .await?;
        if done.is_none() {
            let stored: i64 = sqlx::query_scalar(
                "SELECT generation FROM sessions WHERE broker = $1 AND account = $2 AND api = $3",
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
        let row: Option<SessionRow> = sqlx::query_as(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE broker = $1 AND account = $2 AND api = $3"
        ))
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let keys = self.keys();
        row.map(|row| row.open(&keys, slot)).transpose()
    }

    pub(crate) async fn load_all(&self) -> Result<Vec<(SessionKey, StoredSession)>, StoreError> {
        // COLLATE "C": the byte order SQLite sorts text in, whatever the
        // database's locale.
        let rows: Vec<SlotRow> = sqlx::query_as(&format!(
            "SELECT broker, account, api, {SESSION_COLUMNS} FROM sessions \
             ORDER BY broker COLLATE \"C\", account COLLATE \"C\", api COLLATE \"C\""
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
            let stored = row.open(&keys, &slot)?;
            sessions.push((slot, stored));
        }
        Ok(sessions)
    }

    pub(crate) async fn forget_session(&self, slot: &SessionKey) -> Result<(), StoreError> {
        self.faults.check_write()?;
        let host = self.host().unwrap_or_default();
        // As in `save_session`: the notification is sent by the statement
        // that writes, only when it found a row, and names the generation
        // the row keeps.
        sqlx::query(&format!(
            "WITH forgotten AS ( \
                 UPDATE sessions SET key_id = NULL, nonce = NULL, ciphertext = NULL, \
                     expires_at = NULL, obtained_at = NULL, user_id = NULL, app_expiry = NULL, \
                     updated_at = $1 \
                 WHERE broker = $2 AND account = $3 AND api = $4 \
                 RETURNING generation) \
             SELECT pg_notify($5, {}) FROM forgotten",
            ha::GONE_PAYLOAD_SQL
        ))
        .bind(self.now_millis())
        .bind(slot.broker.as_str())
        .bind(&slot.account)
        .bind(slot.api.as_str())
        .bind(ha::SESSIONS_CHANNEL)
        .bind(host)
        .fetch_optional(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn totp_window(
        &self,
        broker: BrokerId,
        account: &str,
    ) -> Result<Option<u64>, StoreError> {
        let window: Option<i64> = sqlx::query_scalar(
            "SELECT last_window FROM totp_windows WHERE broker = $1 AND account = $2",
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
        // Committed (synchronous_commit = on) when `execute` returns, as the
        // caller relies on before it sends the code.
        sqlx::query(
            "INSERT INTO totp_windows (broker, account, last_window, used_at) \
             VALUES ($1, $2, $3, $4) \
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
             ORDER BY id DESC LIMIT $1",
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
        let by_age = sqlx::query("DELETE FROM audit WHERE at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let by_count = sqlx::query(
            "DELETE FROM audit WHERE id <= \
                 (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET $1)",
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
    fn set_keys(&self, keys: KeyRing) {
        *self.keys.write() = Arc::new(keys);
    }
}
