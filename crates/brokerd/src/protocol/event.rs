//! Event lines of a `subscribe` stream (and the JSON `notify_command` gets
//! on stdin).
//!
//! Not an internally tagged enum: serde would write the tag first, and the
//! daemon has always written session events with their keys in
//! alphabetical order (`account`, …, `event`, …). The bytes stay as they
//! were, so `event` is a field of each shape instead.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One event line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Event {
    /// Something happened to a session.
    Session(SessionEvent),
    /// The subscriber fell behind and missed events.
    Lagged(LaggedEvent),
    /// Every `daemon.limits.heartbeat` on a quiet stream.
    Heartbeat(HeartbeatEvent),
}

impl Event {
    /// The line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("events serialise")
    }
}

/// What happened to a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionEventKind {
    /// A new session exists.
    Renewed,
    /// Zerodha, Breeze: the session ends soon and only a person can renew it.
    Expiring,
    /// Zerodha, Breeze: a person must log in.
    AuthRequired,
    /// The broker rejected the credentials.
    LockedOut,
    /// The account went into the conflict state.
    Conflict,
    /// A `logout` ended the session.
    LoggedOut,
    /// The daemon cannot store a session, so it makes no login.
    StoreUnavailable,
}

/// An event about one session. Keys in alphabetical order (see the module).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEvent {
    /// The account.
    pub account: String,
    /// The api.
    pub api: String,
    /// The broker.
    pub broker: String,
    /// What happened.
    pub event: SessionEventKind,
    /// The session's expiry (RFC 3339 in `+05:30`), when there is one.
    pub expires_at: Option<String>,
    /// The generation concerned (the new one for `renewed`).
    pub generation: u64,
    /// `auth_required` and `expiring`: where a person logs in; else `null`.
    pub login_url: Option<String>,
}

/// `{"event":"lagged","missed":N}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LaggedEvent {
    /// Always `lagged`.
    pub event: LaggedTag,
    /// How many events were dropped.
    pub missed: u64,
}

/// The `event` value of [`LaggedEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LaggedTag {
    /// `lagged`.
    Lagged,
}

/// `{"event":"heartbeat"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HeartbeatEvent {
    /// Always `heartbeat`.
    pub event: HeartbeatTag,
}

/// The `event` value of [`HeartbeatEvent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeartbeatTag {
    /// `heartbeat`.
    Heartbeat,
}
