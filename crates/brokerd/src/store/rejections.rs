//! Credentials the broker rejected, kept across restarts as a fingerprint
//! (never a secret) so that no restart sends them again (`rejections` table).

use chrono::{DateTime, Utc};

use super::sqlite::SqliteStore;
use super::{StoreError, codec};
use crate::brokers::SessionKey;

/// A rejection as stored: what was rejected (as a fingerprint), when, and
/// the broker's answer as the lock-out reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `Connector::credentials_fingerprint` of the rejected settings.
    pub fingerprint: String,
    /// When the broker rejected them.
    pub at: DateTime<Utc>,
    /// The lock-out's message (never a secret).
    pub message: String,
}

impl SqliteStore {
    pub(crate) async fn rejections(&self, key: &SessionKey) -> Result<Vec<Rejection>, StoreError> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT fingerprint, rejected_at, message FROM rejections \
             WHERE broker = ? AND account = ? AND api = ? ORDER BY rejected_at",
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
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (broker, account, api, fingerprint) DO UPDATE SET \
             rejected_at = excluded.rejected_at, \
             message = excluded.message",
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
        sqlx::query("DELETE FROM rejections WHERE broker = ? AND account = ? AND api = ?")
            .bind(key.broker.as_str())
            .bind(&key.account)
            .bind(key.api.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
