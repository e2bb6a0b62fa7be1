//! When the recent logins of a session happened, read back from the audit
//! trail at startup: the login budget must hold across restarts too, or a
//! daemon restarted in a loop (a crash, an impatient operator) would log in
//! once per start.

use chrono::{DateTime, Utc};

use super::sqlite::SqliteStore;
use super::{AuditEvent, StoreError, codec};
use crate::brokers::SessionKey;

impl SqliteStore {
    /// When the logins of `key` since `since` started, oldest first: each
    /// writes a `login_started` row before it calls the broker, so a login
    /// cut short by a crash counts too.
    pub(crate) async fn login_times(
        &self,
        key: &SessionKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows: Vec<i64> = sqlx::query_scalar(
            "SELECT at FROM audit WHERE broker = ? AND account = ? AND api = ? \
             AND event = ? AND at >= ? ORDER BY at",
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
}
