//! Wire types of the socket protocol (newline-delimited JSON), converted
//! explicitly to and from domain types. Only this file knows field names.
//! The contract is documented in `docs/protocol.md`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::brokers::SessionKey;
use crate::session::{Event, Live, RequestError, SlotStatus};

/// Protocol version reported by `hello`; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// One request line. Unknown fields are refused so that typos are caught.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request<'a> {
    /// Echoed back verbatim (any JSON value).
    #[serde(default, borrow)]
    pub id: Option<&'a RawValue>,
    /// The operation.
    #[serde(borrow)]
    pub op: Cow<'a, str>,
    /// `kotak_neo` | `breeze` | `zerodha` | `jainam` | `angel_one`.
    #[serde(default, borrow)]
    pub broker: Option<Cow<'a, str>>,
    /// Account name; optional when the broker has one account.
    #[serde(default, borrow)]
    pub account: Option<Cow<'a, str>>,
    /// `interactive` (default) or `market`.
    #[serde(default, borrow)]
    pub api: Option<Cow<'a, str>>,
    /// `token`/`invalidate`: the session must stay valid this long.
    #[serde(default)]
    pub min_valid_secs: Option<u64>,
    /// How long to wait for a login.
    #[serde(default)]
    pub wait_secs: Option<u64>,
    /// `invalidate`: the generation the broker rejected.
    #[serde(default)]
    pub generation: Option<u64>,
    /// `invalidate`: what the broker said: its JSON body (as an object or a
    /// string) or its message. Decides dead session vs IP rule vs outage.
    #[serde(default)]
    pub reason: Option<serde_json::Value>,
    /// `invalidate`: the HTTP status of the broker's answer.
    #[serde(default)]
    pub http_status: Option<u16>,
    /// `reload`: also forget the stored sessions of removed accounts.
    #[serde(default)]
    pub forget_removed: Option<bool>,
    /// `subscribe`: only these brokers.
    #[serde(default)]
    pub brokers: Option<Vec<String>>,
    /// `submit` (Zerodha): the `request_token` from the login redirect.
    #[serde(default)]
    pub request_token: Option<String>,
    /// `submit` (Breeze): the `API_Session` from the login redirect.
    #[serde(default)]
    pub api_session: Option<String>,
    /// `submit`: the `state` the login redirect carried, when it did.
    #[serde(default)]
    pub state: Option<String>,
    /// `sign`: the exact request body (a string), or a JSON value that is
    /// sent compactly serialised (the answer then includes that text).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// `history`: only rows of the last this many seconds.
    #[serde(default)]
    pub since_secs: Option<u64>,
    /// `history`: at most this many rows (default and cap in `server::history`).
    #[serde(default)]
    pub limit: Option<u32>,
    /// `rotate_key`: the absolute path of the new key's file, which the
    /// daemon reads itself (absent: the daemon makes the key).
    #[serde(default)]
    pub new_key_file: Option<String>,
}

impl Request<'_> {
    /// The `reason` as text: a string as is, a JSON body re-serialised.
    pub fn reason_text(&self) -> Option<String> {
        match self.reason.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }
}

/// Extracts just the `id` of a line that failed to parse as a [`Request`],
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

#[derive(Serialize)]
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

/// The session object of a `token` answer, built once per generation.
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

/// Appends `"id":…,` when the request had an id.
fn open(out: &mut String, id: Option<&RawValue>) {
    out.push('{');
    if let Some(id) = id {
        out.push_str("\"id\":");
        out.push_str(id.get());
        out.push(',');
    }
}

/// `{"id":…,"ok":true,"session":{…}}`.
pub fn session_reply(id: Option<&RawValue>, session: &RawValue) -> String {
    let mut out = String::with_capacity(session.get().len() + 48);
    open(&mut out, id);
    out.push_str("\"ok\":true,\"session\":");
    out.push_str(session.get());
    out.push('}');
    out
}

/// `{"id":…,"ok":true, …extra}` where `extra` is a JSON object.
pub fn ok_reply(id: Option<&RawValue>, extra: serde_json::Value) -> String {
    let mut out = String::new();
    open(&mut out, id);
    out.push_str("\"ok\":true");
    if let serde_json::Value::Object(map) = extra {
        for (k, v) in map {
            out.push(',');
            out.push_str(&serde_json::to_string(&k).expect("string serialises"));
            out.push(':');
            out.push_str(&v.to_string());
        }
    }
    out.push('}');
    out
}

#[derive(Serialize)]
struct WireError<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
}

/// `{"id":…,"ok":false,"error":{…}}`.
pub fn error_reply(id: Option<&RawValue>, err: &RequestError) -> String {
    let wire = WireError {
        code: err.code.as_str(),
        message: &err.message,
        login_url: err.login_url.as_deref(),
        retry_after_secs: err.retry_after_secs,
    };
    let mut out = String::new();
    open(&mut out, id);
    out.push_str("\"ok\":false,\"error\":");
    out.push_str(&serde_json::to_string(&wire).expect("error serialises"));
    out.push('}');
    out
}

/// One account line of `status`.
pub fn status_json(s: &SlotStatus) -> serde_json::Value {
    let now = Utc::now();
    serde_json::json!({
        "broker": s.key.broker.as_str(),
        "account": s.key.account,
        "api": s.key.api.as_str(),
        "state": s.state.as_str(),
        "generation": s.generation,
        "expires_at": s.expires_at.map(ist),
        "expires_in_secs": s.expires_at.map(|t| (t - now).num_seconds().max(0)),
        "last_login_at": s.last_login_at.map(ist),
        "last_error": s.last_error.as_ref().map(|(code, message)| serde_json::json!({"code": code, "message": message})),
        "retry_after_secs": s.retry_after_secs,
        "login_url": s.login_url,
        "app_expiry": s.app_expiry,
        "warnings": s.warnings,
    })
}

/// One row of a `history` answer. Daemon rows (a key rotation) have no
/// account or api: `null` rather than an empty name.
pub fn history_json(row: &crate::store::AuditRow) -> serde_json::Value {
    let name = |s: &str| (!s.is_empty()).then(|| s.to_string());
    serde_json::json!({
        "at": ist(row.at),
        "event": row.event,
        "broker": row.broker,
        "account": name(&row.account),
        "api": name(&row.api),
        "generation": row.generation,
        "detail": row.detail,
    })
}

/// One event line of a `subscribe` stream.
pub fn event_json(e: &Event) -> String {
    serde_json::json!({
        "event": e.kind.as_str(),
        "broker": e.key.broker.as_str(),
        "account": e.key.account,
        "api": e.key.api.as_str(),
        "generation": e.generation,
        "expires_at": e.expires_at.map(ist),
        "login_url": e.login_url,
    })
    .to_string()
}

/// The `subscribe` line telling a slow subscriber it missed `missed` events.
pub fn lagged_event(missed: u64) -> String {
    serde_json::json!({"event": "lagged", "missed": missed}).to_string()
}

/// The `subscribe` line sent every `daemon.limits.heartbeat`: it tells the
/// subscriber the daemon is there, and the daemon that the subscriber still
/// reads (a stalled write closes the stream).
pub const HEARTBEAT_EVENT: &str = r#"{"event":"heartbeat"}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ErrorCode;

    #[test]
    fn parses_a_token_request_and_refuses_typos() {
        let r: Request = serde_json::from_str(r#"{"id":7,"op":"token","broker":"jainam","account":"main","min_valid_secs":60,"wait_secs":10}"#).unwrap();
        assert_eq!(r.op, "token");
        assert_eq!(r.id.unwrap().get(), "7");
        assert_eq!(r.min_valid_secs, Some(60));
        let bad = r#"{"id":"x","op":"token","acount":"main"}"#;
        assert!(serde_json::from_str::<Request>(bad).is_err());
        assert_eq!(salvage_id(bad).unwrap().get(), "\"x\"");
    }

    #[test]
    fn replies_echo_the_id_or_leave_it_out() {
        let id = RawValue::from_string("\"abc\"".into()).unwrap();
        let err = RequestError::new(ErrorCode::Unavailable, "later")
            .retry_after(std::time::Duration::from_millis(1500));
        let line = error_reply(Some(&id), &err);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], "abc");
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "unavailable");
        assert_eq!(v["error"]["retry_after_secs"], 2);
        let v: serde_json::Value =
            serde_json::from_str(&ok_reply(None, serde_json::json!({"x": 1}))).unwrap();
        assert_eq!(v, serde_json::json!({"ok": true, "x": 1}));
    }

    #[test]
    fn times_are_in_ist() {
        let t = DateTime::parse_from_rfc3339("2026-11-22T18:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ist(t), "2026-11-23T00:00:00+05:30");
    }
}
