//! What several daemons sharing one PostgreSQL database need of it
//! (docs/ha.md): a leadership lock per session on a dedicated connection,
//! notifications of saved sessions and forwarded requests, the request
//! rows followers hand the leader, and who leads what.
//!
//! Channels, both with JSON payloads (account and host names are free
//! text to the store, so a separator could not be relied on):
//! - `brokerd_sessions`, sent by `save_session` and `forget_session` in
//!   the statement that writes (so a notification means a committed row),
//!   only when a row was written:
//!   `{"e":"saved","b":"zerodha","a":"main","p":"interactive","g":7,"h":"host-a"}`
//!   or `{"e":"gone","b":…,"a":…,"p":…,"h":…}`; `h` is `""` for a daemon
//!   without a host.
//! - `brokerd_requests`, sent with the request row it announces:
//!   `{"b":…,"a":…,"p":…}`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};

use super::PgStore;
use crate::brokers::SessionKey;
use crate::store::keyring::KeyRing;
use crate::store::{StoreError, codec};

/// The channel of saved and forgotten sessions.
pub(super) const SESSIONS_CHANNEL: &str = "brokerd_sessions";
/// The channel of request rows.
pub(super) const REQUESTS_CHANNEL: &str = "brokerd_requests";

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
#[derive(Clone, PartialEq, Eq)]
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

/// Without the payload: a handed-over browser login must never reach a
/// log line, whatever prints an `Ask`.
impl std::fmt::Debug for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ask")
            .field("kind", &self.kind)
            .field("generation", &self.generation)
            .field("min_valid_secs", &self.min_valid_secs)
            .field("from_host", &self.from_host)
            .field(
                "payload",
                &self.payload.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

/// One `sessions` row as the periodic look sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGeneration {
    /// The slot.
    pub key: SessionKey,
    /// Its generation (kept by a logout).
    pub generation: u64,
    /// The session was logged out (the row keeps only its generation): a
    /// `gone` notice that was lost is repaired from this.
    pub forgotten: bool,
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
        /// The generation the row kept (the one logged out): a daemon
        /// serving a newer one ignores the notice.
        generation: u64,
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
///
/// Once any call on it failed or timed out, every later call fails too:
/// the locks may be gone (or the connection is midway through a reply), so
/// the caller must assume it leads nothing and open a new one.
#[derive(Debug)]
pub struct LockConnection {
    conn: PgConnection,
    /// `pg_backend_pid()`, read once at connect.
    pid: i32,
    /// How long one round trip may take before the connection is given up
    /// (the `keepalive` it was opened with): a host cut off from the
    /// server must not go on believing it leads once the server, after
    /// about that long, has freed its locks.
    round_trip: Duration,
    /// A call failed or timed out: see the type's doc.
    broken: bool,
}

/// The text a slot's advisory lock key is hashed from (with a `brokerd:`
/// prefix, in SQL): the one spelling [`LockConnection`] uses, and the one
/// `leaders()` rebuilds from the columns (`LOCK_KEY_OF_ROW`).
fn lock_name(key: &SessionKey) -> String {
    format!(
        "{}/{}/{}",
        key.broker.as_str(),
        key.account,
        key.api.as_str()
    )
}

/// The bigint lock key of `$1` (a [`lock_name`]). 64 bits of hash: two
/// slots colliding would only make them share a leader.
/// The lock key of the name in `$1`; `try_lock_all` and
/// `LOCK_KEY_OF_ROW` spell the same expression over other inputs.
const LOCK_KEY: &str = "hashtextextended('brokerd:' || $1, 0)";

/// Whether this backend holds the advisory lock of bigint `k`, as pg_locks
/// shows a bigint key: the high 32 bits in `classid`, the low ones in
/// `objid`, `objsubid` 1 (2 would be a pair of int4 keys).
const HELD_BY_ME: &str = "EXISTS (SELECT 1 FROM pg_locks l \
     WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.granted \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND l.objsubid = 1 \
     AND l.classid::bigint = ((k >> 32) & 4294967295) \
     AND l.objid::bigint = (k & 4294967295))";

impl LockConnection {
    /// Tries to take the lock of `key` without waiting: `true` if this
    /// connection holds it now (also when it already did).
    pub async fn try_lock(&mut self, key: &SessionKey) -> Result<bool, StoreError> {
        // Advisory locks count: taking a held one again would need two
        // unlocks. CASE evaluates only the branch it takes, so a held lock
        // is not taken twice, in one round trip.
        let sql = format!(
            "SELECT CASE WHEN {HELD_BY_ME} THEN true ELSE pg_try_advisory_lock(k) END \
             FROM (SELECT {LOCK_KEY} AS k) key"
        );
        self.scalar(&sql, key).await
    }

    /// [`LockConnection::try_lock`] for every key of `keys` in one round
    /// trip (a follower tries every session it does not lead several times
    /// per `takeover_within`): for each key, in order, whether this
    /// connection holds its lock now.
    pub fn try_lock_all<'a>(
        &'a mut self,
        keys: &[SessionKey],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<bool>, StoreError>> + Send + 'a>> {
        let names: Vec<String> = keys.iter().map(lock_name).collect();
        Box::pin(async move {
            if self.broken {
                return Err(lost("an earlier call on it failed"));
            }
            if names.is_empty() {
                return Ok(Vec::new());
            }
            // As `try_lock`, one row per name, in the order given.
            let sql = format!(
                "SELECT CASE WHEN {HELD_BY_ME} THEN true ELSE pg_try_advisory_lock(k) END \
                 FROM (SELECT n, hashtextextended('brokerd:' || name, 0) AS k \
                       FROM unnest($1::text[]) WITH ORDINALITY AS t(name, n)) key ORDER BY n"
            );
            let limit = self.round_trip;
            let query = sqlx::query_scalar::<_, bool>(&sql)
                .bind(names)
                .fetch_all(&mut self.conn);
            let answer = within(limit, query).await;
            self.broken = answer.is_err();
            answer
        })
    }

    /// Gives up the lock of `key` (reload removed the account; stop).
    /// Nothing to do when this connection does not hold it.
    pub async fn unlock(&mut self, key: &SessionKey) -> Result<(), StoreError> {
        // Checked first: unlocking a lock not held is a server WARNING.
        let sql = format!(
            "SELECT CASE WHEN {HELD_BY_ME} THEN pg_advisory_unlock(k) ELSE false END \
             FROM (SELECT {LOCK_KEY} AS k) key"
        );
        self.scalar(&sql, key).await.map(drop)
    }

    /// Whether this connection still holds the lock of `key`: asked of the
    /// server, so an error means the connection (and every lock) is gone.
    pub async fn holds(&mut self, key: &SessionKey) -> Result<bool, StoreError> {
        let sql = format!("SELECT {HELD_BY_ME} FROM (SELECT {LOCK_KEY} AS k) key");
        self.scalar(&sql, key).await
    }

    /// The server process id of this connection (recorded in `ha_leaders`).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Runs `sql` (one boolean column, `$1` = the lock name of `key`)
    /// within the round-trip limit; any failure breaks the connection.
    /// Boxed with `Send` named: sqlx's `Executor` for `&mut PgConnection`
    /// holds for one lifetime only, and a caller's spawned future could
    /// not otherwise be proven `Send` for every lifetime.
    fn scalar<'a>(
        &'a mut self,
        sql: &'a str,
        key: &SessionKey,
    ) -> Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>> {
        let name = lock_name(key);
        Box::pin(async move {
            if self.broken {
                return Err(lost("an earlier call on it failed"));
            }
            let limit = self.round_trip;
            let query = sqlx::query_scalar::<_, bool>(sql)
                .bind(name)
                .fetch_one(&mut self.conn);
            let answer = within(limit, query).await;
            self.broken = answer.is_err();
            answer
        })
    }
}

/// The answer of a lock-connection query within `limit`; no answer in
/// time is a lost connection (the caller then treats it as broken).
async fn within<T>(
    limit: Duration,
    query: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, query).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(StoreError::Database(e)),
        Err(_) => Err(lost(&format!("the server did not answer within {limit:?}"))),
    }
}

/// The error of a lock connection that is (or must be treated as) gone.
fn lost(why: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("the lock connection is lost ({why}): its locks may be free; open a new one"),
    )))
}

/// The listening connection for both channels (sqlx's `PgListener`, which
/// reconnects by itself). It holds one of the pool's connections for as
/// long as it lives: drop it before closing the store, or the close waits
/// for it (a `next` in progress then fails).
#[derive(Debug)]
pub struct Listener {
    inner: PgListener,
    /// The last `next` failed: whatever the listener reconnects to, the
    /// notifications in between are lost, so the next success is
    /// [`Notice::Reconnected`].
    lost: bool,
}

impl Listener {
    /// The next notification; [`Notice::Reconnected`] after a lost
    /// connection came back. Payloads that do not parse are skipped with a
    /// warning. An error means the server cannot be reached now (the
    /// caller retries after a pause).
    pub async fn next(&mut self) -> Result<Notice, StoreError> {
        if self.lost {
            // Any query makes the listener connect (and LISTEN again on
            // both channels) if it has no connection; only then is "look
            // at everything" sure to see what was missed.
            if let Err(e) = sqlx::query("SELECT 1").execute(&mut self.inner).await {
                return Err(e.into());
            }
            self.lost = false;
            return Ok(Notice::Reconnected);
        }
        loop {
            let notification = match self.inner.try_recv().await {
                Ok(Some(n)) => n,
                // The connection was lost and (eager reconnect, sqlx's
                // default) is back, listening again.
                Ok(None) => return Ok(Notice::Reconnected),
                Err(e) => {
                    self.lost = true;
                    return Err(e.into());
                }
            };
            if let Some(notice) = parse_notice(notification.channel(), notification.payload()) {
                return Ok(notice);
            }
        }
    }
}

/// A `brokerd_sessions` payload.
#[derive(Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
enum SessionEvent {
    Saved {
        b: String,
        a: String,
        p: String,
        g: u64,
        h: String,
    },
    Gone {
        b: String,
        a: String,
        p: String,
        g: u64,
        h: String,
    },
}

/// A `brokerd_requests` payload.
#[derive(Serialize, Deserialize)]
struct RequestEvent {
    b: String,
    a: String,
    p: String,
}

/// The `brokerd_sessions` payload of a save of `key` at `generation`.
pub(super) fn saved_payload(key: &SessionKey, generation: u64, host: &str) -> String {
    to_json(&SessionEvent::Saved {
        b: key.broker.as_str().to_string(),
        a: key.account.clone(),
        p: key.api.as_str().to_string(),
        g: generation,
        h: host.to_string(),
    })
}

/// The `brokerd_sessions` payload of a logout of `key`.
/// The `gone` payload, built by the forgetting statement itself from the
/// row it wrote (`$2`..`$4` the slot, `$6` the host, `generation` the
/// row's): the same JSON `parse_notice` reads.
pub(super) const GONE_PAYLOAD_SQL: &str = "json_build_object('e', 'gone', 'b', $2::text, \
     'a', $3::text, 'p', $4::text, 'g', generation, 'h', $6::text)::text";

fn request_payload(key: &SessionKey) -> String {
    to_json(&RequestEvent {
        b: key.broker.as_str().to_string(),
        a: key.account.clone(),
        p: key.api.as_str().to_string(),
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Strings and integers only: serialization cannot fail.
    serde_json::to_string(value).expect("a notification payload serializes")
}

/// The notice of one notification; `None` (with a warning) when it does
/// not parse. Payloads carry names only, so quoting them is safe.
fn parse_notice(channel: &str, payload: &str) -> Option<Notice> {
    let notice =
        match channel {
            SESSIONS_CHANNEL => match serde_json::from_str::<SessionEvent>(payload) {
                Ok(SessionEvent::Saved { b, a, p, g, h }) => crate::store::key_or_skip(&b, a, &p)
                    .map(|key| Notice::Session {
                        key,
                        generation: g,
                        host: h,
                    }),
                Ok(SessionEvent::Gone { b, a, p, g, h }) => crate::store::key_or_skip(&b, a, &p)
                    .map(|key| Notice::Gone {
                        key,
                        generation: g,
                        host: h,
                    }),
                Err(_) => None,
            },
            REQUESTS_CHANNEL => match serde_json::from_str::<RequestEvent>(payload) {
                Ok(RequestEvent { b, a, p }) => {
                    crate::store::key_or_skip(&b, a, &p).map(|key| Notice::Request { key })
                }
                Err(_) => None,
            },
            _ => None,
        };
    if notice.is_none() {
        tracing::warn!(%channel, %payload, "skipping a notification that does not parse");
    }
    notice
}

/// The additional authenticated data of a request payload: the purpose
/// (not a session row: the two AADs never coincide, so a payload cannot
/// be swapped into `sessions` or back), the slot, the key id, and what
/// the row asks and who asked, so it cannot be moved to another slot's or
/// another asker's row either.
fn request_aad(key: &SessionKey, key_id: &str, kind: AskKind, from_host: &str) -> String {
    format!(
        "brokerd-ha-request-v1|{}|{}|{}|{key_id}|{}|{from_host}",
        key.broker.as_str(),
        key.account,
        key.api.as_str(),
        kind.as_str()
    )
}

/// Decrypts a claimed row's payload; `None` when no key of `keys` opens
/// it (the reason is logged, never the bytes).
fn open_payload(
    keys: &KeyRing,
    key: &SessionKey,
    row: &RequestRow,
    kind: AskKind,
) -> Option<Vec<u8>> {
    let (key_id, nonce, ciphertext) = (
        row.key_id.as_deref()?,
        row.nonce.as_deref()?,
        row.ciphertext.as_deref()?,
    );
    let Some(enc) = keys.get(key_id) else {
        tracing::warn!(slot = %key, id = row.id, %key_id, "request payload under a key not configured");
        return None;
    };
    let opened = enc.open(
        nonce,
        ciphertext,
        request_aad(key, key_id, kind, &row.from_host).as_bytes(),
    );
    if opened.is_none() {
        tracing::warn!(slot = %key, id = row.id, %key_id, "request payload fails authentication");
    }
    opened
}

impl AskKind {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "report" => Self::Report,
            "login" => Self::Login,
            "operator_login" => Self::OperatorLogin,
            "submit" => Self::Submit,
            _ => return None,
        })
    }
}

/// A claimed `ha_requests` row.
#[derive(sqlx::FromRow)]
struct RequestRow {
    id: i64,
    kind: String,
    generation: i64,
    min_valid_secs: i64,
    from_host: String,
    key_id: Option<String>,
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
    created_at: i64,
}

/// An unsigned count as a `BIGINT`.
fn to_db(what: &str, n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} {n} is too large to store")))
}

/// The lock name `lock_name` gives, built from `ha_leaders` columns `h`.
const LOCK_KEY_OF_ROW: &str =
    "hashtextextended('brokerd:' || h.broker || '/' || h.account || '/' || h.api, 0)";

impl PgStore {
    /// Sets the host name this daemon writes into `sessions.created_by`,
    /// `ha_leaders.host`, notifications and request rows. Called once,
    /// right after open, by a daemon with `[daemon.ha]`.
    pub fn set_host(&self, host: &str) {
        *self.host.write() = Some(host.to_string());
    }

    /// Opens the dedicated lock connection. `keepalive`: the server notices
    /// a vanished host (no FIN/RST) within about this long (TCP keepalives
    /// and `tcp_user_timeout` set on the connection), so its locks free.
    /// Each call on the connection also gives up after `keepalive`
    /// without an answer (see [`LockConnection`]).
    /// Boxed with `Send` named, as [`LockConnection`]'s calls are.
    pub fn lock_connection(
        &self,
        keepalive: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<LockConnection, StoreError>> + Send + '_>> {
        Box::pin(self.open_lock_connection(keepalive))
    }

    async fn open_lock_connection(
        &self,
        keepalive: Duration,
    ) -> Result<LockConnection, StoreError> {
        // Server settings of this session only, sent at connection start
        // (over a Unix socket the server ignores them). Silence is detected
        // after idle + count * interval seconds; unacknowledged data after
        // `tcp_user_timeout`.
        let idle = (keepalive.as_secs() / 5).max(1);
        let user_timeout = i32::try_from(keepalive.as_millis()).unwrap_or(i32::MAX);
        let options = (*self.options.0)
            .clone()
            .application_name("brokerd-locks")
            .options([
                ("tcp_keepalives_idle", idle.to_string()),
                ("tcp_keepalives_interval", "1".to_string()),
                ("tcp_keepalives_count", "3".to_string()),
                ("tcp_user_timeout", user_timeout.to_string()),
            ]);
        let mut conn = PgConnection::connect_with(&options).await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
        Ok(LockConnection {
            conn,
            pid,
            round_trip: keepalive.max(Duration::from_secs(1)),
            broken: false,
        })
    }

    /// Starts listening on `brokerd_sessions` and `brokerd_requests`.
    pub async fn listen(&self) -> Result<Listener, StoreError> {
        // A connection taken from the pool for good (one of its slots):
        // sqlx reconnects through the pool after a loss.
        let mut inner = PgListener::connect_with(&self.pool).await?;
        inner
            .listen_all([SESSIONS_CHANNEL, REQUESTS_CHANNEL])
            .await?;
        Ok(Listener { inner, lost: false })
    }

    /// Writes `ask` for the leader of `key` and notifies `brokerd_requests`
    /// in the same transaction. Returns the row id.
    pub async fn forward(&self, key: &SessionKey, ask: &Ask) -> Result<i64, StoreError> {
        self.faults.check_write()?;
        let keys = self.keys();
        let current = keys.current();
        let sealed = match &ask.payload {
            Some(plaintext) => {
                let aad = request_aad(key, current.id(), ask.kind, &ask.from_host);
                let (nonce, ciphertext) =
                    current
                        .seal(plaintext, aad.as_bytes())
                        .ok_or_else(|| StoreError::Encrypt {
                            key: key.to_string(),
                            reason: "AES-GCM refused the request payload (too large)".into(),
                        })?;
                Some((current.id().to_string(), nonce, ciphertext))
            }
            None => None,
        };
        let (key_id, nonce, ciphertext) = match sealed {
            Some((id, n, c)) => (Some(id), Some(n), Some(c)),
            None => (None, None, None),
        };
        // One statement: the row and its notification commit together.
        let id: i64 = sqlx::query_scalar(
            "WITH asked AS ( \
                 INSERT INTO ha_requests (broker, account, api, kind, generation, \
                     min_valid_secs, from_host, key_id, nonce, ciphertext, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 RETURNING id) \
             SELECT id FROM asked, LATERAL (SELECT pg_notify($12, $13)) notified",
        )
        .bind(key.broker.as_str())
        .bind(&key.account)
        .bind(key.api.as_str())
        .bind(ask.kind.as_str())
        .bind(to_db("generation", ask.generation)?)
        .bind(to_db("min_valid_secs", ask.min_valid_secs)?)
        .bind(&ask.from_host)
        .bind(key_id)
        .bind(nonce)
        .bind(ciphertext)
        .bind(self.now_millis())
        .bind(REQUESTS_CHANNEL)
        .bind(request_payload(key))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Takes (deletes and returns, oldest first) the request rows of `key`;
    /// rows older than `max_age` are deleted without being returned (their
    /// askers stopped waiting). Concurrent claimers never get one row twice.
    ///
    /// A row that does not decode (an unknown kind, a negative number, a
    /// payload no configured key opens) is deleted and skipped with a
    /// warning: left in place it would be tried again forever.
    pub async fn claim(&self, key: &SessionKey, max_age: Duration) -> Result<Vec<Ask>, StoreError> {
        self.faults.check_write()?;
        // SKIP LOCKED: rows another claimer is deleting are left to it; a
        // plain FOR UPDATE would wait for it and then find them gone.
        let mut rows: Vec<RequestRow> = sqlx::query_as(
            "DELETE FROM ha_requests WHERE id IN ( \
                 SELECT id FROM ha_requests WHERE broker = $1 AND account = $2 AND api = $3 \
                 ORDER BY id FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, generation, min_valid_secs, from_host, key_id, nonce, \
                 ciphertext, created_at",
        )
        .bind(key.broker.as_str())
        .bind(&key.account)
        .bind(key.api.as_str())
        .fetch_all(&self.pool)
        .await?;
        // RETURNING has no order of its own.
        rows.sort_by_key(|r| r.id);
        let age_millis = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = self.now_millis().saturating_sub(age_millis);
        let keys = self.keys();
        let mut asks = Vec::with_capacity(rows.len());
        for row in rows {
            if row.created_at < cutoff {
                tracing::debug!(slot = %key, id = row.id, "dropping a request nobody waits for");
                continue;
            }
            let (Some(kind), Ok(generation), Ok(min_valid_secs)) = (
                AskKind::parse(&row.kind),
                u64::try_from(row.generation),
                u64::try_from(row.min_valid_secs),
            ) else {
                tracing::warn!(slot = %key, id = row.id, kind = %row.kind, "skipping a request row that does not decode");
                continue;
            };
            let payload = match row.ciphertext {
                Some(_) => match open_payload(&keys, key, &row, kind) {
                    Some(plaintext) => Some(plaintext),
                    None => continue,
                },
                None => None,
            };
            asks.push(Ask {
                kind,
                generation,
                min_valid_secs,
                from_host: row.from_host,
                payload,
            });
        }
        Ok(asks)
    }

    /// The slots with request rows waiting (one query, whatever the number
    /// of slots: the periodic look claims only where there is something).
    pub async fn asked(&self) -> Result<Vec<SessionKey>, StoreError> {
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT DISTINCT broker, account, api FROM ha_requests")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(broker, account, api)| crate::store::key_or_skip(&broker, account, &api))
            .collect())
    }

    /// Every slot's stored generation (the periodic check for missed
    /// notifications compares them with its own).
    pub async fn generations(&self) -> Result<Vec<StoredGeneration>, StoreError> {
        let rows: Vec<(String, String, String, i64, bool)> = sqlx::query_as(
            "SELECT broker, account, api, generation, ciphertext IS NULL FROM sessions \
             ORDER BY broker COLLATE \"C\", account COLLATE \"C\", api COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut generations = Vec::with_capacity(rows.len());
        for (broker, account, api, generation, forgotten) in rows {
            let Some(key) = crate::store::key_or_skip(&broker, account, &api) else {
                continue;
            };
            let generation = u64::try_from(generation).map_err(|_| StoreError::Corrupt {
                key: key.to_string(),
                reason: format!("negative generation {generation}"),
            })?;
            generations.push(StoredGeneration {
                key,
                generation,
                forgotten,
            });
        }
        Ok(generations)
    }

    /// Records that this daemon (lock connection `pid`) leads `key` since
    /// now. Needs [`PgStore::set_host`] first: without a host the row
    /// would say nothing useful, so that is refused as
    /// [`StoreError::Invalid`] (a daemon bug, not an operator's).
    pub async fn set_leader(&self, key: &SessionKey, pid: i32) -> Result<(), StoreError> {
        self.faults.check_write()?;
        let host = self.host().ok_or_else(|| {
            StoreError::Invalid(format!(
                "cannot record the leader of {key}: this daemon has no host (set_host was not \
                 called)"
            ))
        })?;
        sqlx::query(
            "INSERT INTO ha_leaders (broker, account, api, host, pid, since) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (broker, account, api) DO UPDATE SET \
                 host = excluded.host, pid = excluded.pid, since = excluded.since",
        )
        .bind(key.broker.as_str())
        .bind(&key.account)
        .bind(key.api.as_str())
        .bind(host)
        .bind(pid)
        .bind(self.now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who leads each slot now: the host and since when, for rows whose
    /// lock connection is still alive and holds an advisory lock (a dead
    /// leader's row is not shown).
    ///
    /// Stricter than "holds an advisory lock": the process must hold this
    /// slot's lock, so a row whose pid was reused by another connection
    /// of the server is not shown either.
    pub async fn leaders(&self) -> Result<Vec<(SessionKey, String, DateTime<Utc>)>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(&format!(
            "SELECT DISTINCT h.broker, h.account, h.api, h.host, h.since \
             FROM ha_leaders h \
             CROSS JOIN LATERAL (SELECT {LOCK_KEY_OF_ROW} AS k) key \
             JOIN pg_locks l ON l.pid = h.pid AND l.locktype = 'advisory' AND l.granted \
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND l.objsubid = 1 \
                 AND l.classid::bigint = ((key.k >> 32) & 4294967295) \
                 AND l.objid::bigint = (key.k & 4294967295) \
             ORDER BY h.broker, h.account, h.api"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(broker, account, api, host, since)| {
                let key = crate::store::key_or_skip(&broker, account, &api)?;
                let since = codec::millis_to_time(since).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
                Some((key, host, since))
            })
            .collect())
    }
}

#[cfg(test)]
#[path = "ha_tests.rs"]
mod ha_tests;
