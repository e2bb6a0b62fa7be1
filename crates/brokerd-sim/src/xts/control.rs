//! The `/_sim/` control surface, so the demo can inject faults over HTTP:
//! `POST /_sim/reject_all`, `POST /_sim/fail_next?api=&n=&mode=[&ms=]`
//! (mode: an HTTP status such as `503`, `wrong_secret`, `html`, `timeout`)
//! and `GET /_sim/stats` (counts per api, tokens, accounts known, logins
//! refused by the rate limit and in flight).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;

use super::server::{Q, envelope};
use super::{FailMode, Shared, idx};
use brokerd_core::Api;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/reject_all", post(reject_all))
        .route("/_sim/fail_next", post(fail_next))
        .route("/_sim/stats", get(stats))
}

fn ok(result: serde_json::Value) -> Response {
    envelope(StatusCode::OK, json!({"type": "success", "result": result}))
}

fn bad(why: &str) -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        json!({"type": "error", "description": why, "result": {}}),
    )
}

async fn reject_all(State(s): State<Arc<Shared>>) -> Response {
    s.inner
        .lock()
        .tokens
        .values_mut()
        .for_each(|t| t.revoked = true);
    ok(json!({}))
}

async fn fail_next(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let Some(api) = q.get("api").and_then(|a| Api::parse(a)) else {
        return bad("api must be interactive or market");
    };
    let Some(n) = crate::control::fault_count(&q) else {
        return bad("n must be a count");
    };
    let ms = q.get("ms").and_then(|m| m.parse().ok()).unwrap_or(30_000);
    let mode = match q.get("mode").map(String::as_str) {
        Some("wrong_secret") => FailMode::WrongSecret,
        Some("html") => FailMode::Html,
        Some("timeout") => FailMode::Timeout(Duration::from_millis(ms)),
        Some(code) => match crate::control::status_mode(code) {
            Some(c) => FailMode::ServerError(c),
            None => return bad("mode must be an HTTP status, wrong_secret, html or timeout"),
        },
        None => return bad("mode is required"),
    };
    let mut g = s.inner.lock();
    g.apis[idx(api)]
        .faults
        .extend(std::iter::repeat_n(mode, n as usize));
    let queued = g.apis[idx(api)].faults.len();
    ok(json!({"queued": queued}))
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let g = s.inner.lock();
    let per_api = |api: Api| {
        let a = &g.apis[idx(api)];
        json!({"logins": a.logins, "successful_logins": a.successes, "logouts": a.logouts,
               "checks": a.checks, "pending_faults": a.faults.len()})
    };
    let live = g
        .tokens
        .keys()
        .filter(|t| g.live(t, None).is_some())
        .count();
    ok(
        json!({"interactive": per_api(Api::Interactive), "market": per_api(Api::Market),
              "issued_tokens": g.issued.len(), "live_tokens": live, "accounts": g.accounts.len(),
              "rate_limited_logins": g.rate.refused, "logins_in_flight": s.in_flight.current()}),
    )
}
