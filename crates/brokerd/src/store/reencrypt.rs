//! The database half of a key rotation: every stored session re-encrypted
//! under another key in one transaction, which also writes the audit row,
//! so the table is wholly under the old key or wholly under the new one.

use std::sync::Arc;

use super::codec::{self, Sealed};
use super::crypto::EncryptionKey;
use super::sqlite::SqliteStore;
use super::{AuditEvent, StoreError};

/// What a re-encryption did. Names sessions and key ids, never key material.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reencrypted {
    /// Sessions now under the target key that were under another.
    pub sessions: usize,
    /// Sessions no key of the ring opens (`broker/account/api`): unreadable
    /// before, left as they were (a login replaces them).
    pub unreadable: Vec<String>,
}

/// A `sessions` row holding a session, as a rotation reads it.
#[derive(sqlx::FromRow)]
struct CipherRow {
    broker: String,
    account: String,
    api: String,
    generation: i64,
    key_id: String,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// The `broker` column of audit rows about the daemon as a whole (a key
/// rotation), whose `account` and `api` are empty.
pub(crate) const DAEMON_ROWS: &str = "brokerd";

impl SqliteStore {
    /// How many stored sessions are under each key id.
    pub(crate) async fn sessions_by_key(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key_id, COUNT(*) FROM sessions WHERE key_id IS NOT NULL GROUP BY key_id",
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

    /// Re-encrypts under `target` every session that is under another key
    /// of the ring, and records `event` with the detail `detail` makes of
    /// the outcome, all in one transaction; once it committed, `target` is
    /// the current key (the old one stays readable). Session saves wait
    /// meanwhile (they would seal under the old key); reads and tokens
    /// served from memory do not. Any failure rolls everything back and
    /// leaves the keys as they were.
    pub(crate) async fn reencrypt(
        &self,
        target: Arc<EncryptionKey>,
        event: AuditEvent,
        detail: impl FnOnce(&Reencrypted) -> String,
    ) -> Result<Reencrypted, StoreError> {
        let _no_saves = self.sealing.write().await;
        let ring = self.keys().accepting(Arc::clone(&target));
        // IMMEDIATE: the write lock is taken before the rows are read, so no
        // other writer can commit between the read and the updates.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows: Vec<CipherRow> = sqlx::query_as(
            "SELECT broker, account, api, generation, key_id, nonce, ciphertext FROM sessions \
             WHERE ciphertext IS NOT NULL AND key_id IS NOT NULL AND nonce IS NOT NULL \
             ORDER BY broker, account, api",
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
                "UPDATE sessions SET key_id = ?, nonce = ?, ciphertext = ?, updated_at = ? \
                 WHERE broker = ? AND account = ? AND api = ? AND generation = ?",
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
        // synchronous=FULL: durable when `commit` returns.
        tx.commit().await?;
        self.set_keys(ring.switched_to(target));
        Ok(done)
    }
}

/// Inserts an audit row about the daemon as a whole, on the pool or inside
/// a transaction (the rotation's row commits with the rows it describes),
/// stamped `at` (unix milliseconds on the store's clock).
async fn daemon_audit_row<'e, E>(
    exec: E,
    at: i64,
    event: AuditEvent,
    detail: &str,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO audit (at, broker, account, api, generation, event, detail) \
         VALUES (?, ?, '', '', NULL, ?, ?)",
    )
    .bind(at)
    .bind(DAEMON_ROWS)
    .bind(event.as_str())
    .bind(detail)
    .execute(exec)
    .await?;
    Ok(())
}
