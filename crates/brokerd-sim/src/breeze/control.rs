//! The `/_sim/` control surface, so the demo can drive the sim over HTTP:
//! `POST /_sim/kill_all`, `POST /_sim/fail_next?n=&mode=` (mode: an HTTP
//! status such as `503`, `html`, `not_found`, `rate_limit`, `resource_not_available`),
//! `POST /_sim/mint?api_key=` (a session key as if a person had logged in)
//! and `GET /_sim/stats`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::server::envelope;
use super::{BreezeFail, Shared};

type Q = HashMap<String, String>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/kill_all", post(kill_all))
        .route("/_sim/fail_next", post(fail_next))
        .route("/_sim/mint", post(mint))
        .route("/_sim/stats", get(stats))
}

fn ok(data: Value) -> Response {
    envelope(StatusCode::OK, data, 200, None)
}

fn bad(why: &str) -> Response {
    envelope(StatusCode::BAD_REQUEST, Value::Null, 400, Some(why))
}

async fn kill_all(State(s): State<Arc<Shared>>) -> Response {
    s.inner
        .lock()
        .keys
        .values_mut()
        .for_each(|k| k.killed = true);
    ok(json!({}))
}

async fn fail_next(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let Some(n) = crate::control::fault_count(&q) else {
        return bad("n must be a count");
    };
    let fail = match q.get("mode").map(String::as_str) {
        Some("html") => BreezeFail::Html,
        Some("not_found") => BreezeFail::NotFound,
        Some("rate_limit") => BreezeFail::RateLimit,
        Some("resource_not_available") => BreezeFail::ResourceNotAvailable,
        Some(code) => match crate::control::status_mode(code) {
            Some(c) => BreezeFail::ServerError(c),
            None => return bad("unknown mode"),
        },
        None => return bad("mode is required"),
    };
    let mut g = s.inner.lock();
    g.faults.extend(std::iter::repeat_n(fail, n as usize));
    ok(json!({"faults": g.faults.len()}))
}

async fn mint(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let mut g = s.inner.lock();
    let Some(app) = q.get("api_key").and_then(|k| g.app(k)) else {
        return bad("unknown api_key");
    };
    let key = g.mint(app);
    ok(json!({ "API_Session": key }))
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let g = s.inner.lock();
    let live = g
        .sessions
        .keys()
        .filter(|t| g.live_session(t).is_some())
        .count();
    ok(json!({
        "customerdetails": g.customerdetails, "funds": g.funds,
        "faults": g.faults.len(), "session_keys": g.keys.len(),
        "live_sessions": live, "issued_session_tokens": g.issued.len(),
    }))
}
