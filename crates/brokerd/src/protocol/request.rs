//! Requests: one variant per operation, tagged by `op`, each carrying the
//! fields that operation reads.
//!
//! What is refused, and why it is not `deny_unknown_fields` here: the
//! contract (`docs/protocol.md`, "Unknown fields") refuses a field that no
//! operation knows, but ignores a known field that this operation does not
//! use. A per-variant `deny_unknown_fields` would refuse the latter, which
//! clients may send today. So the server reads each line into one struct
//! of every field of every operation, which refuses unknown ones, and moves
//! the fields into the variant (`server::protocol::parse`); the derived
//! `Deserialize` here ignores what is not the operation's, and a test there
//! checks that both read the same request.
//!
//! Account fields (`broker`, …) and `generation` are `Option` even where the
//! operation needs them: the daemon names what is missing in words of its
//! own ("token needs \"broker\""), as it did before these types existed.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// One request line, without its `id` (which the server reads apart, so it
/// can echo it byte for byte even when the rest does not parse).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request<'a> {
    /// The daemon's name, version and protocol version.
    Hello(Hello),
    /// One entry per session the peer may use.
    Status(Status),
    /// A session valid for at least `min_valid_secs`.
    Token(#[serde(borrow)] Token<'a>),
    /// The broker rejected a generation: answer with a newer session.
    Invalidate(#[serde(borrow)] Invalidate<'a>),
    /// An operator's forced login.
    Login(#[serde(borrow)] Login<'a>),
    /// End the session at the broker and forget it.
    Logout(#[serde(borrow)] Logout<'a>),
    /// Zerodha, Breeze: the browser login link.
    LoginUrl(#[serde(borrow)] LoginUrl<'a>),
    /// Zerodha, Breeze: complete a browser login by hand.
    Submit(#[serde(borrow)] Submit<'a>),
    /// Breeze: the checksum headers for one request body.
    Sign(#[serde(borrow)] Sign<'a>),
    /// Turn the connection into an event stream.
    Subscribe(Subscribe),
    /// The Prometheus text exposition.
    Metrics(Metrics),
    /// Re-read the config file (operators).
    Reload(Reload),
    /// The audit trail, newest first.
    History(#[serde(borrow)] History<'a>),
    /// Re-encrypt the store under a new key (operators).
    RotateKey(#[serde(borrow)] RotateKey<'a>),
}

impl Request<'_> {
    /// Every operation's name, in the order the `unknown_op` error lists
    /// them. A test checks it against [`Request::op`].
    pub const OPS: [&'static str; 14] = [
        "hello",
        "status",
        "token",
        "invalidate",
        "login",
        "logout",
        "login_url",
        "submit",
        "sign",
        "subscribe",
        "metrics",
        "reload",
        "history",
        "rotate_key",
    ];

    /// The `op` this request goes on the wire with.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Status(_) => "status",
            Self::Token(_) => "token",
            Self::Invalidate(_) => "invalidate",
            Self::Login(_) => "login",
            Self::Logout(_) => "logout",
            Self::LoginUrl(_) => "login_url",
            Self::Submit(_) => "submit",
            Self::Sign(_) => "sign",
            Self::Subscribe(_) => "subscribe",
            Self::Metrics(_) => "metrics",
            Self::Reload(_) => "reload",
            Self::History(_) => "history",
            Self::RotateKey(_) => "rotate_key",
        }
    }

    /// The line a client sends, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("requests serialise")
    }
}

/// Which session an account operation is about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target<'r> {
    /// `jainam`, `kotak_neo`, `zerodha`, `breeze` or `angel_one`; `None` when the
    /// request left it out (the daemon then answers `bad_request`).
    pub broker: Option<&'r str>,
    /// The account; `None`: the broker's only one.
    pub account: Option<&'r str>,
    /// `interactive` (default) or `market`.
    pub api: Option<&'r str>,
}

/// The account fields every account operation has; each struct spells them
/// out (no `flatten`: it would buffer every field of every request once more).
macro_rules! target_of {
    ($($ty:ident),*) => {$(
        impl<'a> $ty<'a> {
            /// The session this request is about.
            pub fn target(&self) -> Target<'_> {
                Target {
                    broker: self.broker.as_deref(),
                    account: self.account.as_deref(),
                    api: self.api.as_deref(),
                }
            }
        }
    )*};
}

target_of!(Token, Invalidate, Login, Logout, LoginUrl, Submit, Sign);

/// `hello`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hello {}

/// `status`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {}

/// `metrics`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {}

/// `token`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker)]
pub struct Token<'a> {
    /// The broker (required): `jainam`, `kotak_neo`, `zerodha`, `breeze` or `angel_one`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
    /// The session must stay valid this long (default: the account's
    /// `min_valid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_valid_secs: Option<u64>,
    /// How long to wait for a login (default `daemon.limits.default_wait`,
    /// capped at `max_wait`; interactive brokers: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
}

/// `invalidate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker_and_generation)]
pub struct Invalidate<'a> {
    /// The broker (required).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
    /// The generation the broker rejected (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// What the broker answered: its JSON body (an object or a string) or
    /// its message. Decides dead session, IP rule or outage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<serde_json::Value>,
    /// The HTTP status of that answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The new session must stay valid this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_valid_secs: Option<u64>,
    /// How long to wait for the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
}

impl Invalidate<'_> {
    /// The `reason` as text: a string as is, a JSON body re-serialised.
    pub fn reason_text(&self) -> Option<String> {
        match self.reason.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// `login` (operators).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker)]
pub struct Login<'a> {
    /// The broker (required).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
    /// How long to wait for the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
}

/// `logout`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker)]
pub struct Logout<'a> {
    /// The broker (required).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
}

/// `login_url` (Zerodha, Breeze).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker)]
pub struct LoginUrl<'a> {
    /// The broker (required).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
}

/// `submit` (Zerodha, Breeze). What the browser login brought back is a
/// [`Secret`]: `Debug` masks it, so a logged request shows no credential.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker)]
pub struct Submit<'a> {
    /// The broker (required): `zerodha` or `breeze`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
    /// Zerodha: the `request_token` of the login redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub request_token: Option<Secret>,
    /// Breeze: the `API_Session` of the login redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub api_session: Option<Secret>,
    /// The `state` the login redirect carried, when it did (single use, so
    /// masked like the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub state: Option<Secret>,
    /// How long to wait for a submission already being exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
}

impl fmt::Debug for Submit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secret's own Debug masks the three values.
        f.debug_struct("Submit")
            .field("broker", &self.broker)
            .field("account", &self.account)
            .field("api", &self.api)
            .field("request_token", &self.request_token)
            .field("api_session", &self.api_session)
            .field("state", &self.state)
            .field("wait_secs", &self.wait_secs)
            .finish()
    }
}

/// `sign` (Breeze).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = require_broker_and_body)]
pub struct Sign<'a> {
    /// The broker (required): `breeze`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// The account; may be left out when the broker has exactly one.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
    /// The exact JSON text the request will send (`"{}"` for none), or a
    /// JSON value that the daemon serialises compactly and echoes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// The session must stay valid this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_valid_secs: Option<u64>,
}

impl fmt::Debug for Sign<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An order's body is the trader's business, not the log's: its
        // size says enough.
        let body = self.body.as_ref().map(|b| match b {
            serde_json::Value::String(s) => format!("<{} bytes>", s.len()),
            other => format!("<{} bytes of JSON>", other.to_string().len()),
        });
        f.debug_struct("Sign")
            .field("broker", &self.broker)
            .field("account", &self.account)
            .field("api", &self.api)
            .field("body", &body)
            .field("min_valid_secs", &self.min_valid_secs)
            .finish()
    }
}

/// `subscribe`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subscribe {
    /// Only events of these brokers (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers: Option<Vec<String>>,
}

/// `reload` (operators).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Reload {
    /// Also forget the stored sessions of removed accounts (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_removed: Option<bool>,
}

/// `history`: every filter is optional and stands on its own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct History<'a> {
    /// Only events of this broker.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Cow<'a, str>>,
    /// Only events of accounts of this name (under every broker).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub account: Option<Cow<'a, str>>,
    /// Only events of this api.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub api: Option<Cow<'a, str>>,
    /// Only events of the last this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_secs: Option<u64>,
    /// At most this many events (default 50, capped at 1000; 0 is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `rotate_key` (operators).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateKey<'a> {
    /// The absolute path of the new key's file, read by the daemon itself
    /// (absent: the daemon makes the key). Never the key.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub new_key_file: Option<Cow<'a, str>>,
}

/// Marks fields the daemon refuses to do without as required in the
/// schema. The types keep them optional so the daemon can name what is
/// missing in its own words (see the module).
fn require(schema: &mut Schema, fields: &[&str]) {
    let required = schema
        .ensure_object()
        .entry("required")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if let serde_json::Value::Array(list) = required {
        list.extend(fields.iter().map(|f| serde_json::Value::from(*f)));
    }
}

fn require_broker(schema: &mut Schema) {
    require(schema, &["broker"]);
}

fn require_broker_and_generation(schema: &mut Schema) {
    require(schema, &["broker", "generation"]);
}

fn require_broker_and_body(schema: &mut Schema) {
    require(schema, &["broker", "body"]);
}
