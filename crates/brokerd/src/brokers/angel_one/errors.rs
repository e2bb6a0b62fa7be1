//! Angel One's answer shapes, normalised in one place and classified the
//! way the session slot must branch. Shapes: `shared/brokers/angel_one.md`:
//! the documented envelope (`status`/`message`/`errorcode`/`data`, with
//! booleans or, in the docs' failure sample, strings), the gateway's
//! (`success`/`message`/`errorCode`/`data`), at any HTTP status; a
//! plain-text 403 rate limit; HTML pages (a WAF, a proxy).

use serde_json::Value;

use crate::brokers::Report;

/// An answer reduced to what classification needs, rendered
/// `[code] message` (or the message alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// HTTP status of the answer.
    pub status: u16,
    /// `status` or `success`, read as a boolean from a bool or a string.
    pub ok: Option<bool>,
    /// `errorcode` or `errorCode`, when not empty.
    pub code: Option<String>,
    /// `message`, or a description of a body that is not JSON.
    pub message: String,
    /// Whether the body was JSON.
    pub json: bool,
}

impl std::fmt::Display for Normalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "[{code}] {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A JSON scalar as text (codes may come as numbers).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `true`/`false` from a bool or a string (`"false"` in the docs' sample).
fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Reads an answer; `raw` is the start of a body that is not JSON (quoted
/// shortened, never whole: a page may echo the request).
pub fn normalize(status: u16, body: Option<&Value>, raw: &str) -> Normalized {
    let Some(body) = body.filter(|b| b.is_object()) else {
        let excerpt: String = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(80)
            .collect();
        let message = if excerpt.is_empty() {
            format!("HTTP {status} with an empty body")
        } else {
            format!("HTTP {status} with a non-JSON body ({excerpt:?})")
        };
        return Normalized {
            status,
            ok: None,
            code: None,
            message,
            json: false,
        };
    };
    Normalized {
        status,
        ok: flag(body.get("status")).or_else(|| flag(body.get("success"))),
        code: text(body.get("errorcode")).or_else(|| text(body.get("errorCode"))),
        message: text(body.get("message"))
            .unwrap_or_else(|| format!("HTTP {status} without a message")),
        json: true,
    }
}

/// What an answer means, whichever call it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `status`/`success` true.
    Success,
    /// The jwtToken (or feed token) is dead: `AG8001`–`AG8003`, `AB1010`,
    /// `AB1011`, or their messages.
    DeadSession,
    /// The refresh token is dead (`AB8050`, `AB8051`): log in again.
    RefreshDead,
    /// `AB1050`: the TOTP was refused (wrong, stale or reused).
    Totp,
    /// The credentials were refused: PIN, client code, API key, a blocked
    /// or unknown client.
    Credentials,
    /// The request cannot work as configured (a login method Angel no
    /// longer allows, a header it refuses).
    Config,
    /// An IP rule (orders from another than the registered static IP).
    IpNotAllowed,
    /// Outage, overload, rate limit, WAF, non-JSON: try again later.
    Transient,
    /// A failure none of the above recognises.
    Other,
}

const DEAD_CODES: [&str; 5] = ["AG8001", "AG8002", "AG8003", "AB1010", "AB1011"];
const CREDENTIAL_CODES: [&str; 7] = [
    "AB1000", "AB1001", "AB1002", "AB1006", "AB1007", "AB1032", "AG8004",
];
const TRANSIENT_CODES: [&str; 3] = ["AB1004", "AB2000", "AB2001"];
const DEAD_MESSAGES: [&str; 7] = [
    "invalid token",
    "token expired",
    "token missing",
    "session expired",
    "client not login",
    "invalid auth token",
    "invalid feed token",
];

/// Classifies any answer. Codes decide first; messages only where the
/// code is missing (a client's report, a WebSocket's `x-error-message`).
pub fn classify(n: &Normalized) -> Class {
    let code = n.code.as_deref().unwrap_or("").to_ascii_uppercase();
    let msg = n.message.to_ascii_lowercase();
    if n.ok == Some(true) {
        return Class::Success;
    }
    if DEAD_CODES.contains(&code.as_str()) {
        return Class::DeadSession;
    }
    if matches!(code.as_str(), "AB8050" | "AB8051") || msg.contains("refresh token") {
        return Class::RefreshDead;
    }
    if code == "AB1050" || msg.contains("totp") {
        return Class::Totp;
    }
    if CREDENTIAL_CODES.contains(&code.as_str()) || msg.contains("invalid api key") {
        return Class::Credentials;
    }
    if TRANSIENT_CODES.contains(&code.as_str())
        || msg.contains("exceeding access rate")
        || msg.contains("request rejected")
        || msg.contains("try after sometime")
    {
        return Class::Transient;
    }
    if DEAD_MESSAGES.iter().any(|m| msg.contains(m)) {
        return Class::DeadSession;
    }
    if msg.contains("loginbypassword is not allowed") || msg.contains("invalid header") {
        return Class::Config;
    }
    if mentions_ip_rule(&msg) {
        return Class::IpNotAllowed;
    }
    // A 401 says who is asking is not recognised: on a session call, the
    // token (the API key and client code have their own messages above).
    if n.status == 401 && n.code.is_none() {
        return Class::DeadSession;
    }
    if !n.json || n.status == 403 || n.status == 429 || n.status >= 500 {
        return Class::Transient;
    }
    Class::Other
}

/// Whether a message speaks of the static-IP rule (its code is undocumented).
fn mentions_ip_rule(msg: &str) -> bool {
    let ip = msg.contains("static ip")
        || msg
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "ip");
    ip && [
        "not allowed",
        "not registered",
        "whitelist",
        "static",
        "mismatch",
    ]
    .iter()
    .any(|w| msg.contains(w))
}

/// Why a login failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    /// Outage, overload, rate limit, non-JSON: back off and retry.
    Transient(String),
    /// `AB1050`: one retry with the next window's code is allowed.
    Totp(String),
    /// Credentials refused: never retried automatically.
    Rejected(String),
    /// The request cannot work as configured.
    Config(String),
}

/// Classifies a `loginByPassword` answer; `Ok` carries `data` only when
/// the answer says success and holds a jwtToken.
pub fn classify_login<'a>(
    status: u16,
    body: Option<&'a Value>,
    raw: &str,
) -> Result<&'a Value, LoginFailure> {
    let n = normalize(status, body, raw);
    match classify(&n) {
        Class::Success => body
            .and_then(|b| b.get("data"))
            .filter(|d| {
                d.get("jwtToken")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty())
            })
            .ok_or_else(|| {
                LoginFailure::Transient(format!(
                    "loginByPassword answered success without a jwtToken ({n})"
                ))
            }),
        Class::Totp => Err(LoginFailure::Totp(n.to_string())),
        Class::Credentials => Err(LoginFailure::Rejected(rejected_hint(&n))),
        Class::Config if n.message.to_ascii_lowercase().contains("loginbypassword") => {
            Err(LoginFailure::Config(format!(
                "Angel One refused the login method ({n}): log in with the client code (not \
                 an email or mobile number) and the 4-digit PIN, and enable TOTP for the \
                 account at smartapi.angelone.in/enable-totp"
            )))
        }
        Class::Config => Err(LoginFailure::Config(format!(
            "Angel One refused the request ({n}); check the account's angel_one settings \
             (local_ip, public_ip, mac_address)"
        ))),
        Class::IpNotAllowed => Err(LoginFailure::Config(format!(
            "Angel One refused this machine's IP ({n}); log in from the static IP registered \
             for the SmartAPI app and set public_ip to it"
        ))),
        // A dead-token answer to a call that carried no token: a gateway
        // hiccup, not a verdict on the credentials.
        Class::DeadSession | Class::RefreshDead | Class::Transient => Err(LoginFailure::Transient(
            format!("Angel One login answered {n} (HTTP {status})"),
        )),
        // Unknown failures are final: brokers lock accounts after repeated
        // wrong attempts, and a loop on an unknown answer could be one.
        Class::Other => Err(LoginFailure::Rejected(format!(
            "Angel One rejected the login ({n})"
        ))),
    }
}

/// The operator's fix for a refused credential, by code.
fn rejected_hint(n: &Normalized) -> String {
    let fix = match n.code.as_deref() {
        Some("AG8004") => {
            "the API key was refused: copy it again from the SmartAPI app \
                           (smartapi.angelone.in, My Apps)"
        }
        Some("AB1006") => "the client is blocked for trading: contact Angel One",
        Some("AB1032") => "no such user: check client_code (the client id, e.g. D12345)",
        _ if n.message.to_ascii_lowercase().contains("api key") => {
            "the API key was refused: copy it again from the SmartAPI app"
        }
        _ => {
            "check client_code and the 4-digit pin; Angel One blocks the account after \
              repeated wrong PINs, so brokerd does not retry"
        }
    };
    format!("Angel One rejected the login ({n}): {fix}")
}

/// What a client's report of a rejection means: `status` is the HTTP status
/// it saw (0 when unknown), `reason` the broker's body or message (or a
/// WebSocket's `x-error-message`). Only a dead token or feed token is a
/// dead session; anything unrecognised leaves the session alone.
pub fn report(status: u16, reason: &str) -> Report {
    let json: Option<Value> = serde_json::from_str(reason).ok().filter(Value::is_object);
    let mut n = normalize(status, json.as_ref(), reason);
    if json.is_none() {
        // A plain-text report is the client's own words, not a body.
        n.message = reason.trim().to_string();
    }
    match classify(&n) {
        Class::DeadSession | Class::RefreshDead => {
            Report::DeadSession(format!("Angel One refused the session: {n}"))
        }
        Class::IpNotAllowed => Report::IpNotAllowed(format!(
            "Angel One refused the IP ({n}); orders must come from the registered static IP"
        )),
        Class::Success
        | Class::Totp
        | Class::Credentials
        | Class::Config
        | Class::Transient
        | Class::Other => Report::Transient(format!(
            "Angel One call failed, the session is not in question: {n}"
        )),
    }
}
