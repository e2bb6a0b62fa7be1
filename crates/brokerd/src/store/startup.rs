//! What a starting daemon reads back, in three queries whatever the number
//! of accounts: every stored session, every remembered rejection and the
//! last hour's login starts. One query per session each (three per slot)
//! made a restart of a 1,000-account desk wait on thousands of round trips
//! before it could answer anyone.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::sqlite::SqliteStore;
use super::{AuditEvent, Rejection, StoreError, StoredSession, codec};
use crate::brokers::SessionKey;

/// The store's state for every slot at startup.
#[derive(Debug, Default)]
pub struct StartupState {
    /// The stored session row of each slot that has one.
    pub sessions: HashMap<SessionKey, StoredSession>,
    /// Remembered rejections, oldest first.
    pub rejections: HashMap<SessionKey, Vec<Rejection>>,
    /// Login starts since the time asked for, oldest first.
    pub logins: HashMap<SessionKey, Vec<DateTime<Utc>>>,
}

/// A `rejections` row as both backends read it: broker, account, api,
/// fingerprint, rejected_at (ms), message.
pub(crate) type RejectionRow = (String, String, String, String, i64, String);

/// A `login_started` audit row: broker, account, api, at (ms).
pub(crate) type LoginRow = (String, String, String, i64);

impl StartupState {
    /// The state from the three reads, whichever backend made them.
    pub(crate) fn assemble(
        sessions: Vec<(SessionKey, StoredSession)>,
        rejection_rows: Vec<RejectionRow>,
        login_rows: Vec<LoginRow>,
    ) -> Self {
        let mut rejections: HashMap<SessionKey, Vec<Rejection>> = HashMap::new();
        for (broker, account, api, fingerprint, at, message) in rejection_rows {
            let Some(key) = super::key_of(&broker, account, &api) else {
                continue;
            };
            rejections.entry(key).or_default().push(Rejection {
                fingerprint,
                at: codec::millis_to_time(at).unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                message,
            });
        }
        let mut logins: HashMap<SessionKey, Vec<DateTime<Utc>>> = HashMap::new();
        for (broker, account, api, at) in login_rows {
            let (Some(key), Some(at)) = (
                super::key_of(&broker, account, &api),
                codec::millis_to_time(at),
            ) else {
                continue;
            };
            logins.entry(key).or_default().push(at);
        }
        Self {
            sessions: sessions.into_iter().collect(),
            rejections,
            logins,
        }
    }
}

impl SqliteStore {
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
            "SELECT broker, account, api, at FROM audit WHERE event = ? AND at >= ? ORDER BY at",
        )
        .bind(AuditEvent::LoginStarted.as_str())
        .bind(logins_since.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(StartupState::assemble(sessions, rejections, logins))
    }
}
