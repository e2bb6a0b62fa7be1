//! The PostgreSQL twins of the SQLite store's other records: history,
//! login times, rejections, the one-pass startup read, and the database
//! half of a key rotation. Same rows and meaning; `$n` placeholders.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Postgres;

use super::PgStore;
use crate::brokers::SessionKey;
use crate::store::codec::{self, Sealed};
use crate::store::crypto::EncryptionKey;
use crate::store::history::{AuditTuple, HistoryQuery, audit_row, history_sql};
use crate::store::reencrypt::{CipherRow, DAEMON_ROWS, Reencrypted};
use crate::store::startup::{LoginRow, RejectionRow};
use crate::store::{AuditEvent, AuditRow, Rejection, StartupState, StoreError};

impl PgStore {
    pub(crate) async fn history(&self, query: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError> {
        let Some(mut q) = history_sql::<Postgres>(query) else {
            return Ok(Vec::new());
        };
        let rows: Vec<AuditTuple> = q.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(audit_row).collect()
    }

    /// When the logins of `key` since `since` started, oldest first.
    pub(crate) async fn login_times(
        &self,
        key: &SessionKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT at FROM audit WHERE broker = $1 AND account = $2 AND api = $3 \
             AND event = $4 AND at >= $5 ORDER BY at, id",
        )
        .bind(key.broker.as_str())
        .bind(&key.account)
        .bind(key.api.as_str())
        .bind(AuditEvent::LoginStarted.as_str())
        .bind(since.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(codec::millis_to_time).collect())
    }

    pub(crate) async fn rejections(&self, key: &SessionKey) -> Result<Vec<Rejection>, StoreError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT fingerprint, rejected_at, message FROM rejections \
             WHERE broker = $1 AND account = $2 AND api = $3 ORDER BY rejected_at",
        )
        .bind(key.broker.as_str())
        .bind(&key.account)
        .bind(key.api.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(fingerprint, at, message)| Rejection {
                fingerprint,
                at: codec::millis_to_time(at).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                message,
            })
            .collect())
    }

    pub(crate) async fn record_rejection(
        &self,
        key: &SessionKey,
        rejection: &Rejection,
    ) -> Result<(), StoreError> {
        self.faults.check_write()?;
        sqlx::query(
            "INSERT INTO rejections (broker, account, api, fingerprint, rejected_at, message) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (broker, account, api, fingerprint) DO UPDATE SET \
             rejected_at = excluded.rejected_at, message = excluded.message",
        )
        .bind(key.broker.as_str())
        .bind(&key.account)
        .bind(key.api.as_str())
        .bind(&rejection.fingerprint)
        .bind(rejection.at.timestamp_millis())
        .bind(&rejection.message)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn clear_rejection(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.faults.check_write()?;
        sqlx::query("DELETE FROM rejections WHERE broker = $1 AND account = $2 AND api = $3")
            .bind(key.broker.as_str())
            .bind(&key.account)
            .bind(key.api.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every session, rejection and recent login start, in three queries.
    pub(crate) async fn startup_state(
        &self,
        logins_since: DateTime<Utc>,
    ) -> Result<StartupState, StoreError> {
        let sessions = self.load_all().await?;
        let rejections: Vec<RejectionRow> = sqlx::query_as(
            "SELECT broker, account, api, fingerprint, rejected_at, message FROM rejections \
             ORDER BY rejected_at",
        )
        .fetch_all(&self.pool)
        .await?;
        let logins: Vec<LoginRow> = sqlx::query_as(
            "SELECT broker, account, api, at FROM audit WHERE event = $1 AND at >= $2 \
             ORDER BY at, id",
        )
        .bind(AuditEvent::LoginStarted.as_str())
        .bind(logins_since.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(StartupState::assemble(sessions, rejections, logins))
    }

    /// How many stored sessions are under each key id.
    pub(crate) async fn sessions_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key_id, COUNT(*) FROM sessions WHERE key_id IS NOT NULL GROUP BY key_id \
             ORDER BY key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Appends an audit row about the daemon as a whole.
    pub(crate) async fn audit_daemon(
        &self,
        event: AuditEvent,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.faults.check_write()?;
        daemon_audit_row(&self.pool, self.now_millis(), event, detail).await
    }

    /// Accepts `key` for reading, beside the current key.
    pub(crate) fn accept_key(&self, key: Arc<EncryptionKey>) {
        let ring = self.keys().accepting(key);
        self.set_keys(ring);
    }

    /// Forgets every key but the current one (a rotation finished).
    pub(crate) fn forget_old_keys(&self) {
        let ring = self.keys().current_only();
        self.set_keys(ring);
    }

    /// Re-encrypts under `target` every session under another key of the
    /// ring and records `event`, in one transaction (see the SQLite twin).
    /// The table is locked against other writers (EXCLUSIVE: reads go on)
    /// before the rows are read, as SQLite's `BEGIN IMMEDIATE` does.
    pub(crate) async fn reencrypt(
        &self,
        target: Arc<EncryptionKey>,
        event: AuditEvent,
        detail: impl FnOnce(&Reencrypted) -> String,
    ) -> Result<Reencrypted, StoreError> {
        let _no_saves = self.sealing.write().await;
        let ring = self.keys().accepting(Arc::clone(&target));
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE sessions IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let rows: Vec<CipherRow> = sqlx::query_as(
            "SELECT broker, account, api, generation, key_id, nonce, ciphertext FROM sessions \
             WHERE ciphertext IS NOT NULL AND key_id IS NOT NULL AND nonce IS NOT NULL \
             ORDER BY broker COLLATE \"C\", account COLLATE \"C\", api COLLATE \"C\"",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut done = Reencrypted::default();
        for row in rows.iter().filter(|r| r.key_id != target.id()) {
            let sealed = Sealed {
                broker: &row.broker,
                account: &row.account,
                api: &row.api,
                generation: row.generation,
                key_id: &row.key_id,
                nonce: &row.nonce,
                ciphertext: &row.ciphertext,
            };
            let Some((nonce, ciphertext)) = codec::reseal(&ring, &target, &sealed) else {
                done.unreadable
                    .push(format!("{}/{}/{}", row.broker, row.account, row.api));
                continue;
            };
            self.faults.check_write()?;
            sqlx::query(
                "UPDATE sessions SET key_id = $1, nonce = $2, ciphertext = $3, updated_at = $4 \
                 WHERE broker = $5 AND account = $6 AND api = $7 AND generation = $8",
            )
            .bind(target.id())
            .bind(nonce)
            .bind(ciphertext)
            .bind(self.now_millis())
            .bind(&row.broker)
            .bind(&row.account)
            .bind(&row.api)
            .bind(row.generation)
            .execute(&mut *tx)
            .await?;
            done.sessions += 1;
        }
        self.faults.check_write()?;
        daemon_audit_row(&mut *tx, self.now_millis(), event, &detail(&done)).await?;
        // synchronous_commit = on: durable when `commit` returns.
        tx.commit().await?;
        self.set_keys(ring.switched_to(target));
        Ok(done)
    }
}

/// Inserts an audit row about the daemon as a whole, on the pool or inside
/// a transaction, stamped `at` (unix milliseconds on the store's clock).
async fn daemon_audit_row<'e, E>(
    exec: E,
    at: i64,
    event: AuditEvent,
    detail: &str,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query(
        "INSERT INTO audit (at, broker, account, api, generation, event, detail) \
         VALUES ($1, $2, '', '', NULL, $3, $4)",
    )
    .bind(at)
    .bind(DAEMON_ROWS)
    .bind(event.as_str())
    .bind(detail)
    .execute(exec)
    .await?;
    Ok(())
}
