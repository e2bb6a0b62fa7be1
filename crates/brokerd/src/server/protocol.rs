//! The server's side of the wire types in [`crate::protocol`]: reading a
//! request line (the `id`, unknown fields refused, the operation)
//! and turning the daemon's own types (a live session, a slot's status, an
//! audit row, an event) into reply and event lines. The contract is
//! documented in `docs/protocol.md`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::brokers::SessionKey;
use crate::protocol as wire;
use crate::protocol::{
    Answer, ErrorBody, ErrorReply, False, HistoryEvent, LaggedEvent, LaggedTag, LastError, OkReply,
    Reply, Request, SessionEvent, SessionEventKind, StatusEntry, True,
};
use crate::secret::Secret;
use crate::session::{ErrorCode, Event, EventKind, Live, RequestError, SlotStatus};

pub use crate::protocol::PROTOCOL_VERSION;

/// A request line that parsed.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// Echoed back verbatim (any JSON value).
    pub id: Option<&'a RawValue>,
    /// The operation.
    pub request: Request<'a>,
}

/// A request line that did not parse: the `id` when one could be found,
/// and the error to answer with.
#[derive(Debug)]
pub struct Unparsed {
    /// The line's `id`, found even in a line that is otherwise wrong.
    pub id: Option<Box<RawValue>>,
    /// `bad_request` or `unknown_op`.
    pub error: RequestError,
}

/// Every field of every operation, read in one pass over the line: a
/// field no operation knows is refused (`deny_unknown_fields`) while a
/// field of another operation is ignored, as `docs/protocol.md` promises.
/// Its names are [`crate::protocol::REQUEST_FIELDS`], in that order, which
/// is the order serde's "unknown field" message lists them in (a test
/// compares). It reads `id` raw (so `1.50` stays `1.50`) and `op` as text,
/// so an unknown `op` gets `unknown_op` rather than a serde message.
///
/// Why not deserialise [`Request`] itself: its variants cannot refuse
/// unknown fields without also refusing other operations' fields, and an
/// internally tagged enum buffers every field before it picks the variant.
/// One pass into this struct, then a move into the variant, costs what the
/// flat request of old did (`benches/socket.rs`). A test checks that both
/// ways read the same request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(default, borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(default, borrow)]
    broker: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    account: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    api: Option<Cow<'a, str>>,
    #[serde(default)]
    min_valid_secs: Option<u64>,
    #[serde(default)]
    wait_secs: Option<u64>,
    #[serde(default)]
    generation: Option<u64>,
    #[serde(default)]
    reason: Option<serde_json::Value>,
    #[serde(default)]
    http_status: Option<u16>,
    #[serde(default)]
    forget_removed: Option<bool>,
    #[serde(default)]
    brokers: Option<Vec<String>>,
    #[serde(default)]
    request_token: Option<Secret>,
    #[serde(default)]
    api_session: Option<Secret>,
    #[serde(default)]
    state: Option<Secret>,
    #[serde(default)]
    body: Option<serde_json::Value>,
    #[serde(default)]
    since_secs: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default, borrow)]
    new_key_file: Option<Cow<'a, str>>,
}

impl<'a> Fields<'a> {
    /// The operation `op` names, with its fields; an unknown `op` back as
    /// the error. Each variant is built field by field (no `..`), so a field
    /// added to an operation's struct does not compile until it is read
    /// here too.
    fn into_request(self) -> Result<Request<'a>, Cow<'a, str>> {
        let Self {
            id: _,
            op,
            broker,
            account,
            api,
            min_valid_secs,
            wait_secs,
            generation,
            reason,
            http_status,
            forget_removed,
            brokers,
            request_token,
            api_session,
            state,
            body,
            since_secs,
            limit,
            new_key_file,
        } = self;
        Ok(match op.as_ref() {
            "hello" => Request::Hello(wire::Hello {}),
            "status" => Request::Status(wire::Status {}),
            "metrics" => Request::Metrics(wire::Metrics {}),
            "token" => Request::Token(wire::Token {
                broker,
                account,
                api,
                min_valid_secs,
                wait_secs,
            }),
            "invalidate" => Request::Invalidate(wire::Invalidate {
                broker,
                account,
                api,
                generation,
                reason,
                http_status,
                min_valid_secs,
                wait_secs,
            }),
            "login" => Request::Login(wire::Login {
                broker,
                account,
                api,
                wait_secs,
            }),
            "logout" => Request::Logout(wire::Logout {
                broker,
                account,
                api,
            }),
            "login_url" => Request::LoginUrl(wire::LoginUrl {
                broker,
                account,
                api,
            }),
            "submit" => Request::Submit(wire::Submit {
                broker,
                account,
                api,
                request_token,
                api_session,
                state,
                wait_secs,
            }),
            "sign" => Request::Sign(wire::Sign {
                broker,
                account,
                api,
                body,
                min_valid_secs,
            }),
            "subscribe" => Request::Subscribe(wire::Subscribe { brokers }),
            "reload" => Request::Reload(wire::Reload { forget_removed }),
            "history" => Request::History(wire::History {
                broker,
                account,
                api,
                since_secs,
                limit,
            }),
            "rotate_key" => Request::RotateKey(wire::RotateKey { new_key_file }),
            _ => return Err(op),
        })
    }
}

/// Reads one request line in one pass (see [`Fields`]).
pub fn parse(line: &str) -> Result<Parsed<'_>, Unparsed> {
    let fields: Fields = serde_json::from_str(line).map_err(|e| Unparsed {
        id: salvage_id(line),
        error: RequestError::new(ErrorCode::BadRequest, format!("not a valid request: {e}")),
    })?;
    let id = fields.id;
    match fields.into_request() {
        Ok(request) => Ok(Parsed { id, request }),
        Err(op) => Err(Unparsed {
            id: id.map(RawValue::to_owned),
            error: RequestError::new(
                ErrorCode::UnknownOp,
                format!("unknown op {op:?}; ops are {}", Request::OPS.join(", ")),
            ),
        }),
    }
}

/// Extracts just the `id` of a line that failed to parse as a request,
/// so even a bad request gets its id back.
pub fn salvage_id(line: &str) -> Option<Box<RawValue>> {
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    let parsed: IdOnly = serde_json::from_str(line).ok()?;
    parsed.id.map(RawValue::to_owned)
}

/// India has one offset and no DST; times go out in it because every
/// broker cut-off is stated in IST.
fn ist(t: DateTime<Utc>) -> String {
    t.with_timezone(&crate::brokers::ist::offset())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The session as it goes out, borrowing from the live generation: the
/// same fields, in the same order, as [`crate::protocol::Session`] (a test
/// compares the two).
#[derive(serde::Serialize)]
struct WireSession<'a> {
    broker: &'a str,
    account: &'a str,
    api: &'a str,
    generation: u64,
    token: &'a str,
    expires_at: String,
    obtained_at: String,
    headers: std::collections::BTreeMap<&'a str, &'a str>,
    fields: &'a serde_json::Map<String, serde_json::Value>,
}

/// The session object of a `token` answer, serialised once per generation
/// and kept with it: every later answer copies these bytes.
pub fn session_json<'a>(key: &SessionKey, live: &'a Live) -> &'a RawValue {
    live.wire_cache().get_or_init(|| {
        let s = &live.session;
        let wire = WireSession {
            broker: key.broker.as_str(),
            account: &key.account,
            api: key.api.as_str(),
            generation: live.generation,
            token: s.material.token.expose(),
            expires_at: ist(s.meta.expires_at),
            obtained_at: ist(s.meta.obtained_at),
            headers: s
                .material
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose()))
                .collect(),
            fields: &s.material.fields,
        };
        let text = serde_json::to_string(&wire).expect("session serialises");
        RawValue::from_string(text).expect("serde_json output is valid JSON")
    })
}

/// `{"id":…,"ok":true,"session":{…}}`: the one answer on the hot path,
/// written straight from the cached session bytes (no serialiser runs).
/// It is [`crate::protocol::SessionAnswer`]'s line; a test checks that.
pub fn session_reply(id: Option<&RawValue>, session: &RawValue) -> String {
    let mut out = String::with_capacity(session.get().len() + 48);
    out.push('{');
    if let Some(id) = id {
        out.push_str("\"id\":");
        out.push_str(id.get());
        out.push(',');
    }
    out.push_str("\"ok\":true,\"session\":");
    out.push_str(session.get());
    out.push('}');
    out
}

/// `{"id":…,"ok":true, …answer}`.
pub fn ok_reply(id: Option<&RawValue>, answer: Answer) -> String {
    Reply::Ok(OkReply {
        id: id.map(Cow::Borrowed),
        ok: True,
        answer,
    })
    .to_line()
}

/// `{"id":…,"ok":false,"error":{…}}`.
pub fn error_reply(id: Option<&RawValue>, err: &RequestError) -> String {
    Reply::Err(ErrorReply {
        id: id.map(Cow::Borrowed),
        ok: False,
        error: ErrorBody {
            code: Cow::Borrowed(err.code.as_str()),
            message: Cow::Borrowed(&err.message),
            login_url: err.login_url.as_deref().map(Cow::Borrowed),
            retry_after_secs: err.retry_after_secs,
        },
    })
    .to_line()
}

/// One account line of `status`.
pub fn status_entry(s: &SlotStatus) -> StatusEntry {
    // The slot's clock, not this host's: the same one its expiry is read on.
    let now = s.at;
    StatusEntry {
        account: s.key.account.clone(),
        api: s.key.api.as_str().to_string(),
        app_expiry: s.app_expiry.clone(),
        broker: s.key.broker.as_str().to_string(),
        expires_at: s.expires_at.map(ist),
        expires_in_secs: s.expires_at.map(|t| (t - now).num_seconds().max(0)),
        generation: s.generation,
        last_error: s.last_error.as_ref().map(|(code, message)| LastError {
            code: code.clone(),
            message: message.clone(),
        }),
        last_login_at: s.last_login_at.map(ist),
        leader: s.ha.as_ref().map(|(_, host)| host.clone()),
        login_url: s.login_url.clone(),
        queued_behind: s.queued_behind,
        retry_after_secs: s.retry_after_secs,
        role: s.ha.as_ref().map(|(role, _)| role.as_str().to_string()),
        state: s.state.as_str().to_string(),
        warnings: s.warnings.clone(),
    }
}

/// One row of a `history` answer. Daemon rows (a key rotation) have no
/// account or api: `null` rather than an empty name.
pub fn history_event(row: &crate::store::AuditRow) -> HistoryEvent {
    let name = |s: &str| (!s.is_empty()).then(|| s.to_string());
    HistoryEvent {
        account: name(&row.account),
        api: name(&row.api),
        at: ist(row.at),
        broker: row.broker.clone(),
        detail: row.detail.clone(),
        event: row.event.clone(),
        generation: row.generation,
    }
}

/// The wire kind of a session event.
fn event_kind(kind: EventKind) -> SessionEventKind {
    match kind {
        EventKind::Renewed => SessionEventKind::Renewed,
        EventKind::Expiring => SessionEventKind::Expiring,
        EventKind::AuthRequired => SessionEventKind::AuthRequired,
        EventKind::LockedOut => SessionEventKind::LockedOut,
        EventKind::Conflict => SessionEventKind::Conflict,
        EventKind::LoggedOut => SessionEventKind::LoggedOut,
        EventKind::StoreUnavailable => SessionEventKind::StoreUnavailable,
    }
}

/// One event line of a `subscribe` stream (and `notify_command`'s stdin).
pub fn event_json(e: &Event) -> String {
    crate::protocol::Event::Session(SessionEvent {
        account: e.key.account.clone(),
        api: e.key.api.as_str().to_string(),
        broker: e.key.broker.as_str().to_string(),
        event: event_kind(e.kind),
        expires_at: e.expires_at.map(ist),
        generation: e.generation,
        login_url: e.login_url.clone(),
    })
    .to_line()
}

/// The `subscribe` line telling a slow subscriber it missed `missed` events.
pub fn lagged_event(missed: u64) -> String {
    crate::protocol::Event::Lagged(LaggedEvent {
        event: LaggedTag::Lagged,
        missed,
    })
    .to_line()
}

/// The `subscribe` line sent every `daemon.limits.heartbeat`: it tells the
/// subscriber the daemon is there, and the daemon that the subscriber still
/// reads (a stalled write closes the stream). A constant: it never changes,
/// and a test checks it is [`HeartbeatEvent`]'s line.
pub const HEARTBEAT_EVENT: &str = r#"{"event":"heartbeat"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, HeartbeatEvent, HeartbeatTag, REQUEST_FIELDS};

    fn parse_ok(line: &str) -> Parsed<'_> {
        parse(line).unwrap_or_else(|e| panic!("{line}: {}", e.error.message))
    }

    fn parse_err(line: &str) -> Unparsed {
        match parse(line) {
            Ok(p) => panic!("{line} parsed: {:?}", p.request),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_a_token_request_and_refuses_typos() {
        let p = parse_ok(
            r#"{"id":7,"op":"token","broker":"jainam","account":"main","min_valid_secs":60,"wait_secs":10}"#,
        );
        assert_eq!(p.id.unwrap().get(), "7");
        let protocol::Request::Token(t) = p.request else {
            panic!("not a token request")
        };
        assert_eq!(t.min_valid_secs, Some(60));
        assert_eq!(t.target().broker, Some("jainam"));
        let bad = r#"{"id":"x","op":"token","acount":"main"}"#;
        let e = parse_err(bad);
        assert_eq!(e.id.unwrap().get(), "\"x\"");
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert!(
            e.error.message.contains("unknown field `acount`"),
            "{}",
            e.error.message
        );
    }

    /// The reader's field list is the contract's: exactly the union of the
    /// operations' fields plus `id` and `op`, listed in
    /// [`REQUEST_FIELDS`]'s order, and the schema's `propertyNames` too.
    #[test]
    fn the_reader_knows_exactly_the_fields_of_the_operations() {
        let e = parse_err(r#"{"op":"hello","nope":1}"#);
        let listed: Vec<&str> = e
            .error
            .message
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(" at line")
            .next()
            .unwrap()
            .split(", ")
            .map(|f| f.trim_matches('`'))
            .collect();
        assert_eq!(listed, REQUEST_FIELDS);
        // Every "properties" of the requests' schema: the fields of every
        // operation (no request field holds an object type of its own).
        fn collect<'v>(v: &'v serde_json::Value, into: &mut std::collections::BTreeSet<&'v str>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                        into.extend(props.keys().map(String::as_str));
                    }
                    map.values().for_each(|v| collect(v, into));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, into)),
                _ => {}
            }
        }
        let schema = serde_json::to_value(schemars::schema_for!(Request)).unwrap();
        let mut union = std::collections::BTreeSet::from(["id"]);
        collect(&schema, &mut union);
        let known: std::collections::BTreeSet<&str> = REQUEST_FIELDS.into_iter().collect();
        assert_eq!(union, known, "the operations' fields vs REQUEST_FIELDS");
    }

    #[test]
    fn a_field_of_another_operation_is_ignored_and_an_unknown_one_refused() {
        let p = parse_ok(r#"{"op":"token","broker":"jainam","generation":3,"limit":2}"#);
        assert!(matches!(p.request, protocol::Request::Token(_)));
        let p = parse_ok(r#"{"op":"hello","broker":"jainam"}"#);
        assert!(matches!(p.request, protocol::Request::Hello(_)));
        for (line, field) in [
            (r#"{"op":"hello","brokr":1}"#, "brokr"),
            (r#"{"op":"sign","broker":"breeze","bdy":"{}"}"#, "bdy"),
            (
                r#"{"op":"submit","broker":"zerodha","request-token":"x"}"#,
                "request-token",
            ),
        ] {
            let e = parse_err(line);
            assert_eq!(e.error.code, ErrorCode::BadRequest);
            assert!(
                e.error
                    .message
                    .contains(&format!("unknown field `{field}`")),
                "{}",
                e.error.message
            );
        }
    }

    #[test]
    fn an_unknown_op_names_the_known_ones_and_a_missing_op_is_named() {
        let e = parse_err(r#"{"id":{"n":7},"op":"frobnicate"}"#);
        assert_eq!(e.error.code, ErrorCode::UnknownOp);
        assert_eq!(e.id.unwrap().get(), r#"{"n":7}"#);
        assert_eq!(
            e.error.message,
            "unknown op \"frobnicate\"; ops are hello, status, token, invalidate, login, logout, \
             login_url, submit, sign, subscribe, metrics, reload, history, rotate_key"
        );
        let e = parse_err(r#"{"id":1,"broker":"jainam"}"#);
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert!(
            e.error.message.contains("missing field `op`"),
            "{}",
            e.error.message
        );
        let e = parse_err(r#"{"op":"token","broker":"jainam","wait_secs":"soon"}"#);
        assert!(
            e.error.message.contains("invalid type: string \"soon\""),
            "{}",
            e.error.message
        );
        let e = parse_err("not json");
        assert_eq!(
            e.error.message,
            "not a valid request: expected ident at line 1 column 2"
        );
    }

    /// Every name in [`Request::OPS`] parses into the variant whose
    /// [`Request::op`] it is, and serialises back to it.
    #[test]
    fn every_op_round_trips() {
        for op in Request::OPS {
            let line = format!(r#"{{"op":"{op}"}}"#);
            let p = parse_ok(&line);
            assert_eq!(p.request.op(), op);
            assert_eq!(p.request.to_line(), line);
        }
    }

    /// The server's reader and `Request`'s own `Deserialize` (what other
    /// readers of request lines use) read the same request.
    #[test]
    fn both_readers_agree() {
        for line in [
            r#"{"op":"hello","id":[1]}"#,
            r#"{"op":"token","broker":"jainam","account":"m","api":"market","min_valid_secs":60,"wait_secs":10}"#,
            r#"{"op":"invalidate","broker":"kotak_neo","generation":4,"reason":{"stCode":100008},"http_status":401,"min_valid_secs":1,"wait_secs":2}"#,
            r#"{"op":"login","broker":"jainam","wait_secs":3}"#,
            r#"{"op":"logout","broker":"jainam","api":"market"}"#,
            r#"{"op":"login_url","broker":"zerodha","account":"a"}"#,
            r#"{"op":"submit","broker":"zerodha","request_token":"rt","api_session":"as","state":"s","wait_secs":5}"#,
            r#"{"op":"sign","broker":"breeze","body":{"a":1},"min_valid_secs":9}"#,
            r#"{"op":"subscribe","brokers":["jainam"]}"#,
            r#"{"op":"reload","forget_removed":true}"#,
            r#"{"op":"history","broker":"jainam","account":"a","api":"market","since_secs":60,"limit":2}"#,
            r#"{"op":"rotate_key","new_key_file":"/k"}"#,
            r#"{"op":"token","broker":"jainam","generation":3,"limit":2,"state":"x"}"#,
        ] {
            let typed: Request = serde_json::from_str(line).unwrap();
            assert_eq!(parse_ok(line).request, typed, "{line}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let p = parse_ok(
            r#"{"op":"submit","broker":"zerodha","request_token":"rt-SECRET","api_session":"as-SECRET","state":"st-SECRET"}"#,
        );
        let shown = format!("{:?}", p.request);
        assert!(!shown.contains("SECRET"), "{shown}");
        let p = parse_ok(r#"{"op":"sign","broker":"breeze","body":"{\"qty\":\"SECRET\"}"}"#);
        let shown = format!("{:?}", p.request);
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn replies_echo_the_id_or_leave_it_out() {
        let id = RawValue::from_string("1.50".into()).unwrap();
        let err = RequestError::new(ErrorCode::Unavailable, "later")
            .retry_after(std::time::Duration::from_millis(1500));
        assert_eq!(
            error_reply(Some(&id), &err),
            r#"{"id":1.50,"ok":false,"error":{"code":"unavailable","message":"later","retry_after_secs":2}}"#
        );
        assert_eq!(
            ok_reply(None, Answer::Empty(protocol::Empty {})),
            r#"{"ok":true}"#
        );
        assert_eq!(
            ok_reply(
                Some(&id),
                Answer::Metrics(protocol::MetricsAnswer { text: "x".into() })
            ),
            r#"{"id":1.50,"ok":true,"text":"x"}"#
        );
    }

    /// The hand-written hot path writes what the typed reply would.
    #[test]
    fn the_session_reply_is_the_typed_one() {
        let session = r#"{"broker":"jainam","account":"a","api":"interactive","generation":3,"token":"t","expires_at":"2026-11-25T08:08:00+05:30","obtained_at":"2026-11-24T08:08:00+05:30","headers":{"Authorization":"t","Content-Type":"application/json"},"fields":{"api_root":"http://x","user_id":"U"}}"#;
        let raw = RawValue::from_string(session.into()).unwrap();
        let id = RawValue::from_string("\"q\"".into()).unwrap();
        let parsed: protocol::Session = serde_json::from_str(session).unwrap();
        for id in [None, Some(&*id)] {
            let typed = ok_reply(
                id,
                Answer::Session(protocol::SessionAnswer {
                    session: parsed.clone(),
                }),
            );
            assert_eq!(session_reply(id, &raw), typed);
        }
        assert!(!format!("{parsed:?}").contains("\"t\""), "{parsed:?}");
    }

    #[test]
    fn event_lines_keep_their_bytes() {
        assert_eq!(
            protocol::Event::Heartbeat(HeartbeatEvent {
                event: HeartbeatTag::Heartbeat
            })
            .to_line(),
            HEARTBEAT_EVENT
        );
        assert_eq!(lagged_event(3), r#"{"event":"lagged","missed":3}"#);
    }

    #[test]
    fn times_are_in_ist() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T18:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ist(t), "2026-11-23T00:00:00+05:30");
    }
}
