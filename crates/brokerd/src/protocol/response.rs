//! Replies: `{"id":…,"ok":true, …the operation's fields}` or
//! `{"id":…,"ok":false,"error":{…}}`.
//!
//! Field order is part of the bytes on the wire: serde writes fields in
//! declaration order, and the answers below declare theirs alphabetically,
//! as the daemon wrote them when it built them from `serde_json` maps.
//! `None` goes out as `null` unless a field says otherwise.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// One reply line. Clients read it with [`Reply::parse`]; the server
/// writes it with [`Reply::to_line`].
#[derive(Clone, Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Reply<'a> {
    /// A success.
    Ok(OkReply<'a>),
    /// A failure.
    Err(ErrorReply<'a>),
}

impl<'a> Reply<'a> {
    /// Reads a reply line: `ok` decides which shape it is, so a failure is
    /// never mistaken for an answer without fields.
    pub fn parse(line: &'a str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Head {
            ok: bool,
        }
        let Head { ok } = serde_json::from_str(line)?;
        Ok(if ok {
            Self::Ok(serde_json::from_str(line)?)
        } else {
            Self::Err(serde_json::from_str(line)?)
        })
    }

    /// The line, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("replies serialise")
    }
}

/// The `true` of `"ok":true`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct True;

/// The `false` of `"ok":false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct False;

macro_rules! constant_bool {
    ($ty:ident, $value:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bool($value)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if bool::deserialize(d)? == $value {
                    Ok($ty)
                } else {
                    Err(D::Error::custom(concat!("expected ", $value)))
                }
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "const": $value })
            }
        }
    };
}

constant_bool!(True, true);
constant_bool!(False, false);

/// `{"id":…,"ok":true, …}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct OkReply<'a> {
    /// The request's `id`, byte for byte; absent when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub id: Option<Cow<'a, RawValue>>,
    /// Always `true`.
    pub ok: True,
    /// The operation's fields.
    #[serde(flatten)]
    pub answer: Answer,
}

/// `{"id":…,"ok":false,"error":{…}}`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ErrorReply<'a> {
    /// The request's `id`, byte for byte; absent when it had none or the
    /// line was not read (`too_large`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub id: Option<Cow<'a, RawValue>>,
    /// Always `false`.
    pub ok: False,
    /// What went wrong.
    #[serde(borrow)]
    pub error: ErrorBody<'a>,
}

/// The `error` object of a failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody<'a> {
    /// The stable code (`docs/protocol.md`, "Error codes"): `bad_request`,
    /// `unknown_op`, `unknown_account`, `forbidden`, `auth_required`,
    /// `locked_out`, `conflict`, `login_failed`, `timeout`, `unavailable`,
    /// `too_large`, `store_unavailable`, `ip_not_allowed`.
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    /// One line for a person; never a secret.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// With `auth_required` only: where a person logs in.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub login_url: Option<Cow<'a, str>>,
    /// Present only when waiting can help.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The fields of a success, by operation. Untagged: the operation is the
/// request's, so a client knows which one to expect; the schema lists them
/// all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Answer {
    /// `token`, `invalidate`, `login`, `submit`.
    Session(SessionAnswer),
    /// `hello`.
    Hello(HelloAnswer),
    /// `status`.
    Status(StatusAnswer),
    /// `metrics`.
    Metrics(MetricsAnswer),
    /// `reload`.
    Reload(ReloadAnswer),
    /// `history`.
    History(HistoryAnswer),
    /// `rotate_key`.
    RotateKey(RotateKeyAnswer),
    /// `login_url`.
    LoginUrl(LoginUrlAnswer),
    /// `sign`.
    Sign(SignAnswer),
    /// `logout` and `subscribe`: `{"ok":true}` and nothing else. Last: it
    /// would match any answer.
    Empty(Empty),
}

/// No fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Empty {}

/// `hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HelloAnswer {
    /// Always `brokerd`.
    pub daemon: String,
    /// The protocol version: 1.
    pub protocol: u32,
    /// The daemon's version.
    pub version: String,
    /// The store's backend: `sqlite`, or `postgres` (which several daemons
    /// may share, docs/ha.md).
    pub store: String,
}

/// `token`, `invalidate`, `login`, `submit`. The server writes this reply
/// from the session it serialised once per generation
/// (`server::protocol::session_reply`); this type is the shape clients read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionAnswer {
    /// The session.
    pub session: Session,
}

/// A session, as `token` and friends hand it out. Its `Debug` masks the
/// token and the headers (which carry it).
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// The broker.
    pub broker: String,
    /// The account.
    pub account: String,
    /// The api.
    pub api: String,
    /// Strictly increasing per session, across restarts and logouts; give
    /// it back in `invalidate`.
    pub generation: u64,
    /// The raw session token.
    pub token: String,
    /// RFC 3339, to the second, in `+05:30`.
    pub expires_at: String,
    /// RFC 3339, to the second, in `+05:30`.
    pub obtained_at: String,
    /// Ready to put on a broker request as they are.
    pub headers: BTreeMap<String, String>,
    /// What the broker's SDK needs besides the token (`docs/protocol.md`,
    /// "Fields"); never a secret. Every session has `api_root`.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("broker", &self.broker)
            .field("account", &self.account)
            .field("api", &self.api)
            .field("generation", &self.generation)
            .field("token", &"***")
            .field("expires_at", &self.expires_at)
            .field("obtained_at", &self.obtained_at)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("fields", &self.fields)
            .finish()
    }
}

/// `status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusAnswer {
    /// One entry per session the peer may use.
    pub accounts: Vec<StatusEntry>,
}

/// One session in `status`; never a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusEntry {
    /// The account.
    pub account: String,
    /// The api.
    pub api: String,
    /// The app key's own expiry, from the market login.
    pub app_expiry: Option<String>,
    /// The broker.
    pub broker: String,
    /// `null` when there is no usable session.
    pub expires_at: Option<String>,
    /// `null` when there is no usable session.
    pub expires_in_secs: Option<i64>,
    /// Of the current session, or the newest issued.
    pub generation: u64,
    /// The last error, if any.
    pub last_error: Option<LastError>,
    /// When the last successful login happened.
    pub last_login_at: Option<String>,
    /// Several daemons sharing the store only: the host whose daemon leads
    /// this session (`null` while none does). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<Option<String>>,
    /// Zerodha, Breeze waiting for a person: where to log in.
    pub login_url: Option<String>,
    /// Only while the session's login waits for its turn at the broker
    /// host (the daemon paces logins per host): how many broker calls are
    /// ahead of it. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_behind: Option<u64>,
    /// When the next automatic attempt (or store check) happens; while
    /// queued, the estimated wait for the login's turn.
    pub retry_after_secs: Option<u64>,
    /// `empty`, `active`, `refreshing`, `backoff`, `locked_out`,
    /// Several daemons sharing the store only: `leader` (this daemon logs
    /// in for the session), `follower` (it serves what the leader
    /// publishes) or `detached` (it lost the database). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `conflict`, `auth_required` or `store_unavailable`.
    pub state: String,
    /// For operators, e.g. the app key expiring soon.
    pub warnings: Vec<String>,
}

/// `last_error` of a status entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LastError {
    /// `login_failed`, `locked_out`, `conflict`, `login_budget`, `store` or
    /// `store_unavailable`.
    pub code: String,
    /// One line for a person.
    pub message: String,
}

/// `metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricsAnswer {
    /// The Prometheus text exposition.
    pub text: String,
}

/// `reload`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReloadAnswer {
    /// Sessions of new accounts (started).
    pub added: Vec<String>,
    /// Sessions whose settings changed.
    pub changed: Vec<String>,
    /// `[daemon]` settings that take effect only after a restart.
    pub needs_restart: Vec<String>,
    /// Sessions of removed accounts (stopped).
    pub removed: Vec<String>,
    /// How many sessions stayed as they were.
    pub unchanged: usize,
}

/// `history`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryAnswer {
    /// Newest first.
    pub events: Vec<HistoryEvent>,
    /// The limit applied.
    pub limit: u32,
    /// Older events matched too.
    pub truncated: bool,
}

/// One audit event of `history`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryEvent {
    /// `null` for events of the daemon as a whole.
    pub account: Option<String>,
    /// `null` for events of the daemon as a whole.
    pub api: Option<String>,
    /// When it was recorded: RFC 3339 in `+05:30`, to the second.
    pub at: String,
    /// The broker, or `brokerd` for the daemon as a whole.
    pub broker: String,
    /// Free text for people; never a token, a secret or a key.
    pub detail: String,
    /// `login_started`, `login_ok`, … (`docs/protocol.md`, `history`).
    pub event: String,
    /// The generation concerned, if any.
    pub generation: Option<u64>,
}

/// `rotate_key`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateKeyAnswer {
    /// The key the sessions are under now.
    pub new_key_id: String,
    /// The key they were under.
    pub old_key_id: String,
    /// Sessions re-encrypted.
    pub sessions: usize,
    /// Sessions no key opened (`broker/account/api`), left as they were.
    pub unreadable: Vec<String>,
}

/// `login_url`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoginUrlAnswer {
    /// The broker's login page for the account's app.
    pub login_url: String,
    /// The callback address to register with the broker (`null` when
    /// `[callback]` is off).
    pub redirect_url: Option<String>,
}

/// `sign`. `headers` carries the session token: `Debug` lists only the
/// header names.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignAnswer {
    /// Present when the request's `body` was a JSON value: the text the
    /// checksum covers, to be sent exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The session generation the headers belong to.
    pub generation: u64,
    /// `X-Checksum`, `X-Timestamp`, `X-AppKey`, `X-SessionToken`,
    /// `Content-Type`.
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for SignAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignAnswer")
            .field("body", &self.body.as_ref().map(String::len))
            .field("generation", &self.generation)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}
