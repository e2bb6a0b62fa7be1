//! The socket protocol's wire types: what goes over `brokerd.sock`, one
//! JSON object per line. Shared by the server (`server::ops` dispatches on
//! [`Request`] and writes [`Reply`] and [`Event`] lines), brokerctl and
//! [`crate::client`], the tests and the benchmark, and the source of
//! `docs/protocol.schema.json` ([`schema`]). `docs/protocol.md` is the
//! contract; these types write its bytes exactly (`tests/it/protocol_docs.rs`
//! re-serialises every example there and compares).
//!
//! Pure data: converting the daemon's own types (a live session, a slot's
//! status) into these is `server::protocol`'s job.

mod event;
mod request;
mod response;

pub use event::{
    Event, HeartbeatEvent, HeartbeatTag, LaggedEvent, LaggedTag, SessionEvent, SessionEventKind,
};
pub use request::{
    Hello, History, Invalidate, Login, LoginUrl, Logout, Metrics, Reload, Request, RotateKey, Sign,
    Status, Submit, Subscribe, Target, Token,
};
pub use response::{
    Answer, Empty, ErrorBody, ErrorReply, False, HelloAnswer, HistoryAnswer, HistoryEvent,
    LastError, LoginUrlAnswer, MetricsAnswer, OkReply, ReloadAnswer, Reply, RotateKeyAnswer,
    Session, SessionAnswer, SignAnswer, StatusAnswer, StatusEntry, True,
};

use schemars::{JsonSchema, Schema};

/// Protocol version reported by `hello`; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Every field a request line may have, in the order the `bad_request` for
/// an unknown field lists them. A field of another operation is ignored; a
/// field not in this list is refused. The server's reader spells the same
/// list (a test compares them), and so does the schema's `propertyNames`.
pub const REQUEST_FIELDS: [&str; 19] = [
    "id",
    "op",
    "broker",
    "account",
    "api",
    "min_valid_secs",
    "wait_secs",
    "generation",
    "reason",
    "http_status",
    "forget_removed",
    "brokers",
    "request_token",
    "api_session",
    "state",
    "body",
    "since_secs",
    "limit",
    "new_key_file",
];

/// A request line as the schema describes it: the operation plus the
/// optional `id`, which the daemon echoes byte for byte. (The server reads
/// `id` apart from the operation, so no Rust code builds this.)
#[derive(JsonSchema)]
#[schemars(transform = known_request_fields)]
pub struct RequestLine<'a> {
    /// Any JSON value, copied into the reply byte for byte; `null` counts
    /// as absent.
    pub id: Option<serde_json::Value>,
    /// The operation and its fields.
    #[schemars(flatten)]
    pub request: Request<'a>,
}

fn known_request_fields(schema: &mut Schema) {
    schema.insert(
        "propertyNames".to_string(),
        serde_json::json!({ "enum": REQUEST_FIELDS }),
    );
}

/// One line of the brokerd socket protocol, version 1: a request (client to
/// daemon), a reply (one per request, in order) or an event (after
/// `subscribe`). `docs/protocol.md` says what each field means.
#[derive(JsonSchema)]
#[schemars(untagged, title = "brokerd socket protocol, version 1")]
pub enum Line<'a> {
    /// Client to daemon.
    Request(RequestLine<'a>),
    /// The daemon's answer to one request.
    Reply(Reply<'a>),
    /// After `subscribe`: one line per event.
    Event(Event),
}

/// The JSON Schema (draft 2020-12) of [`Line`], as checked in at
/// `docs/protocol.schema.json`: pretty-printed, with a final newline.
pub fn schema() -> String {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let schema = generator.into_root_schema_for::<Line>();
    serde_json::to_string_pretty(&schema).expect("schemas serialise") + "\n"
}
