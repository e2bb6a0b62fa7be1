//! The `history` operation: the audit trail, filtered like `status` (a peer
//! sees the sessions it may use; rows of accounts no longer configured and
//! the daemon's own rows only the daemon-wide allow-list sees), bounded and
//! newest first.

use super::Shared;
use super::peer::Peer;
use super::protocol;
use crate::brokers::{Api, BrokerId};
use crate::protocol::{History, HistoryAnswer};
use crate::session::{ErrorCode, RequestError};
use crate::store::{HistoryQuery, Visibility};
use chrono::TimeDelta;

/// Rows answered when the request names no `limit`.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows one answer holds: the reply is one line, and a line the
/// client must buffer whole should stay small.
pub const MAX_LIMIT: u32 = 1000;

/// Answers a `history` request: `{"events": [...], "limit": N, "truncated": bool}`.
pub async fn answer(
    req: &History<'_>,
    shared: &Shared,
    peer: &Peer,
) -> Result<HistoryAnswer, RequestError> {
    let bad = |m: String| RequestError::new(ErrorCode::BadRequest, m);
    let broker = req
        .broker
        .as_deref()
        .map(|b| {
            BrokerId::parse(b).map(BrokerId::as_str).ok_or_else(|| {
                bad(format!(
                    "unknown broker {b:?}; brokers are kotak_neo, breeze, zerodha, jainam, angel_one"
                ))
            })
        })
        .transpose()?;
    let api = req
        .api
        .as_deref()
        .map(|a| {
            Api::parse(a).map(Api::as_str).ok_or_else(|| {
                bad(format!(
                    "unknown api {a:?}; use \"interactive\" or \"market\""
                ))
            })
        })
        .transpose()?;
    let limit = match req.limit {
        Some(0) => return Err(bad(format!("limit must be 1 to {MAX_LIMIT}"))),
        Some(n) => n.min(MAX_LIMIT),
        None => DEFAULT_LIMIT,
    };
    // A window reaching before the epoch is no window at all. Counted back
    // on the daemon's clock, the one the audit rows are stamped with.
    let now = shared.registry.clock().now();
    let since = req.since_secs.and_then(|s| {
        TimeDelta::try_seconds(i64::try_from(s).ok()?).and_then(|d| now.checked_sub_signed(d))
    });
    let slots = shared.registry.slots();
    let operator = peer.allowed(&shared.daemon_access, shared.daemon_uid);
    let visible = Visibility {
        sessions: slots
            .iter()
            .filter(|s| peer.allowed(&s.access(), shared.daemon_uid))
            .map(|s| s.key().clone())
            .collect(),
        unconfigured: operator.then(|| slots.iter().map(|s| s.key().clone()).collect()),
    };
    let query = HistoryQuery {
        broker: broker.map(str::to_string),
        account: req.account.as_deref().map(str::to_string),
        api: api.map(str::to_string),
        since,
        // One more than asked: says whether the answer was cut.
        limit: limit + 1,
        visible,
    };
    let mut rows = shared.registry.store().history(&query).await.map_err(|e| {
        RequestError::new(
            ErrorCode::Unavailable,
            format!("cannot read the audit trail: {e}"),
        )
    })?;
    let truncated = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(HistoryAnswer {
        events: rows.iter().map(protocol::history_event).collect(),
        limit,
        truncated,
    })
}
