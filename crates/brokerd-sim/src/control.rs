//! What the simulators' `/_sim/` control surfaces share: how many faults to
//! queue, a mode that is an HTTP status, and, for the two TOTP brokers'
//! simulators (Kotak Neo, Angel One), the common envelope, argument
//! readers, `kill_after`, and the TOTP attempts and clock in their stats.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// A control request's query.
pub(crate) type Query = HashMap<String, String>;

/// `n` of a control request (default 1); `None` when it is not a count.
pub(super) fn fault_count(q: &Query) -> Option<u32> {
    q.get("n").map_or(Some(1), |n| n.parse().ok())
}

/// A `mode` that names a valid HTTP status code.
pub(super) fn status_mode(mode: &str) -> Option<u16> {
    mode.parse::<u16>()
        .ok()
        .filter(|c| axum::http::StatusCode::from_u16(*c).is_ok())
}

/// `{"status":"success","data":…}`, the TOTP simulators' control answer.
pub(crate) fn ok(data: Value) -> Response {
    (
        StatusCode::OK,
        Json(json!({"status": "success", "data": data})),
    )
        .into_response()
}

/// A refused control request: 400 with `why`.
pub(crate) fn bad(why: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "error", "message": why})),
    )
        .into_response()
}

/// `ms` of a control request: `None` when absent, `Err` when not
/// milliseconds.
pub(crate) fn millis(q: &Query) -> Option<Result<Duration, ()>> {
    q.get("ms")
        .map(|m| m.parse().map(Duration::from_millis).map_err(drop))
}

/// The `timeout` mode's hold: `ms`, or 30 s (longer than a client's
/// timeout) when absent.
pub(crate) fn timeout(q: &Query) -> Result<Duration, &'static str> {
    match millis(q) {
        None => Ok(Duration::from_secs(30)),
        Some(Ok(d)) => Ok(d),
        Some(Err(())) => Err("ms must be milliseconds"),
    }
}

/// `POST /_sim/kill_after[?ms=]`'s setting: `Some(ms)`, or `None` (off)
/// without `ms`; `Err` says why the request is refused.
pub(crate) fn kill_after(q: &Query) -> Result<Option<Duration>, &'static str> {
    match millis(q) {
        None => Ok(None),
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(())) => Err("ms must be milliseconds"),
    }
}

/// An `on=true|false` switch; `Err` says why the request is refused.
pub(crate) fn switch(q: &Query) -> Result<bool, &'static str> {
    match q.get("on").map(String::as_str) {
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        _ => Err("on must be true or false"),
    }
}

/// One TOTP a simulator received, as `GET /_sim/totp_attempts` lists it
/// (never the code).
pub(crate) fn totp_attempt(
    at_unix_ms: i64,
    step: i64,
    matched_step: Option<i64>,
    accepted: bool,
) -> Value {
    json!({"at_unix_ms": at_unix_ms, "step": step, "matched_step": matched_step,
        "accepted": accepted})
}

/// The simulator clock's fields in `GET /_sim/stats`: its time, its 30 s
/// TOTP step and the seconds left in it.
pub(crate) fn totp_clock(now: DateTime<Utc>, step_secs: i64) -> [(&'static str, Value); 3] {
    [
        ("clock_unix_ms", json!(now.timestamp_millis())),
        ("totp_step", json!(now.timestamp().div_euclid(step_secs))),
        (
            "totp_step_secs_left",
            json!(step_secs - now.timestamp().rem_euclid(step_secs)),
        ),
    ]
}

/// `fields` added to a JSON object.
pub(crate) fn with(
    mut object: Value,
    fields: impl IntoIterator<Item = (&'static str, Value)>,
) -> Value {
    if let Value::Object(m) = &mut object {
        for (k, v) in fields {
            m.insert(k.into(), v);
        }
    }
    object
}
