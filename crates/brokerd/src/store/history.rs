//! The audit trail read back for `history`: filtered by session and time,
//! bounded, newest first, and only the sessions the asker may see.

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, QueryBuilder, Sqlite, Type};

use super::sqlite::SqliteStore;
use super::{AuditRow, StoreError, codec};
use crate::brokers::SessionKey;

/// Which audit rows to read.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    /// Only this broker (its stored spelling).
    pub broker: Option<String>,
    /// Only this account.
    pub account: Option<String>,
    /// Only this api (its stored spelling).
    pub api: Option<String>,
    /// Only rows recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many rows (the newest).
    pub limit: u32,
    /// Whose rows the asker may see.
    pub visible: Visibility,
}

/// Whose rows the asker may see. Decided by the caller (the server knows
/// the peer and the configuration); the store only applies it, in SQL, so
/// that `limit` counts visible rows only.
#[derive(Clone, Debug, Default)]
pub struct Visibility {
    /// Configured sessions the asker may use: their rows are shown.
    pub sessions: Vec<SessionKey>,
    /// `Some(configured)`: also show the rows of every session not in
    /// `configured` (accounts since removed) and the daemon's own rows (key
    /// rotations). For peers allowed daemon-wide only.
    pub unconfigured: Option<Vec<SessionKey>>,
}

/// The columns of an audit row, in [`audit_row`]'s order.
pub(super) type AuditTuple = (i64, String, String, String, Option<i64>, String, String);

/// Decodes one audit row.
pub(super) fn audit_row(
    (at, broker, account, api, generation, event, detail): AuditTuple,
) -> Result<AuditRow, StoreError> {
    let bad = |what: String| StoreError::Invalid(format!("audit row: {what}"));
    Ok(AuditRow {
        at: codec::millis_to_time(at).ok_or_else(|| bad(format!("bad time {at}")))?,
        generation: generation
            .map(|g| u64::try_from(g).map_err(|_| bad(format!("bad generation {g}"))))
            .transpose()?,
        broker,
        account,
        api,
        event,
        detail,
    })
}

/// `(broker, account, api) IN (VALUES (?, ?, ?), …)`; `keys` is not empty.
fn push_keys_in<'a, DB>(q: &mut QueryBuilder<'a, DB>, keys: &[SessionKey], negate: bool)
where
    DB: Database,
    String: 'a + Encode<'a, DB> + Type<DB>,
{
    q.push("(broker, account, api) ");
    q.push(if negate { "NOT IN" } else { "IN" });
    q.push(" (VALUES ");
    let mut values = q.separated(", ");
    for key in keys {
        values.push("(");
        values.push_bind_unseparated(key.broker.as_str().to_string());
        values.push_unseparated(", ");
        values.push_bind_unseparated(key.account.clone());
        values.push_unseparated(", ");
        values.push_bind_unseparated(key.api.as_str().to_string());
        values.push_unseparated(")");
    }
    q.push(")");
}

/// The query of `query`, in the SQL both backends speak (the builder writes
/// each backend's placeholders); `None` when nothing is visible.
pub(super) fn history_sql<'a, DB>(query: &HistoryQuery) -> Option<QueryBuilder<'a, DB>>
where
    DB: Database,
    String: 'a + Encode<'a, DB> + Type<DB>,
    i64: 'a + Encode<'a, DB> + Type<DB>,
{
    let Visibility {
        sessions,
        unconfigured,
    } = &query.visible;
    if sessions.is_empty() && unconfigured.is_none() {
        return None;
    }
    let mut q = QueryBuilder::<DB>::new(
        "SELECT at, broker, account, api, generation, event, detail FROM audit WHERE (",
    );
    if !sessions.is_empty() {
        push_keys_in(&mut q, sessions, false);
    }
    if let Some(configured) = unconfigured {
        if !sessions.is_empty() {
            q.push(" OR ");
        }
        if configured.is_empty() {
            q.push("TRUE");
        } else {
            push_keys_in(&mut q, configured, true);
        }
    }
    q.push(")");
    for (column, value) in [
        ("broker", &query.broker),
        ("account", &query.account),
        ("api", &query.api),
    ] {
        if let Some(value) = value {
            q.push(format!(" AND {column} = "));
            q.push_bind(value.clone());
        }
    }
    if let Some(since) = query.since {
        q.push(" AND at >= ");
        q.push_bind(since.timestamp_millis());
    }
    // Ids only grow (AUTOINCREMENT, an identity): id order is recording
    // order, also within one millisecond.
    q.push(" ORDER BY id DESC LIMIT ");
    q.push_bind(i64::from(query.limit));
    Some(q)
}

impl SqliteStore {
    pub(crate) async fn history(&self, query: &HistoryQuery) -> Result<Vec<AuditRow>, StoreError> {
        let Some(mut q) = history_sql::<Sqlite>(query) else {
            return Ok(Vec::new());
        };
        let rows: Vec<AuditTuple> = q.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(audit_row).collect()
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
