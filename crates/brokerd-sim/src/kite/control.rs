//! The `/_sim/` control surface, so the demo can steer the simulator over
//! HTTP: `POST /_sim/kill_all` (master logout),
//! `POST /_sim/fail_next?n=&mode=` (mode: an HTTP status such as `503`,
//! `html`, `not_found`, `rate_limit`), `POST /_sim/browser_user[?user_id=]` (none: the
//! app's own user), `POST /_sim/second_login?mode=new_token|same_token`,
//! `POST /_sim/redirect_url?api_key=&url=`, `POST /_sim/request_token_ttl?ms=`,
//! `GET /_sim/ticker` (every ticker connection attempt: its access token, the
//! status answered, its subscriptions; the simulator's own made-up tokens),
//! `POST /_sim/ticker_drop` (closes every open ticker connection) and
//! `GET /_sim/stats`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::server::reply;
use super::{KiteFail, SecondLogin, Shared};

type Q = HashMap<String, String>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/kill_all", post(kill_all))
        .route("/_sim/fail_next", post(fail_next))
        .route("/_sim/browser_user", post(browser_user))
        .route("/_sim/second_login", post(second_login))
        .route("/_sim/redirect_url", post(redirect_url))
        .route("/_sim/request_token_ttl", post(request_token_ttl))
        .route("/_sim/ticker", get(ticker))
        .route("/_sim/ticker_drop", post(ticker_drop))
        .route("/_sim/stats", get(stats))
}

fn ok(data: Value) -> Response {
    reply(StatusCode::OK, json!({"status": "success", "data": data}))
}

fn bad(why: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"status": "error", "message": why, "error_type": "InputException"}),
    )
}

async fn kill_all(State(s): State<Arc<Shared>>) -> Response {
    s.inner.lock().kill_all();
    ok(json!({}))
}

async fn fail_next(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let Some(n) = crate::control::fault_count(&q) else {
        return bad("n must be a count");
    };
    let fail = match q.get("mode").map(String::as_str) {
        Some("html") => KiteFail::Html,
        Some("not_found") => KiteFail::NotFound,
        Some("rate_limit" | "429") => KiteFail::RateLimit,
        Some(code) => match crate::control::status_mode(code) {
            Some(c) => KiteFail::ServerError(c),
            None => return bad("unknown mode"),
        },
        None => return bad("mode is required"),
    };
    let mut g = s.inner.lock();
    g.queue_faults(n, fail);
    ok(json!({"faults": g.faults.len()}))
}

async fn browser_user(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let user = q.get("user_id").filter(|u| !u.is_empty()).cloned();
    s.inner.lock().browser_user = user;
    ok(json!({}))
}

async fn second_login(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let mode = match q.get("mode").map(String::as_str) {
        Some("new_token") => SecondLogin::NewTokenKillsOld,
        Some("same_token") => SecondLogin::SameToken,
        _ => return bad("mode must be new_token or same_token"),
    };
    s.inner.lock().second_login = mode;
    ok(json!({}))
}

async fn redirect_url(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let (Some(key), Some(url)) = (q.get("api_key"), q.get("url")) else {
        return bad("api_key and url are required");
    };
    let Some(i) = s.app_index(key) else {
        return bad("unknown api_key");
    };
    s.inner.lock().redirects[i] = Some(url.clone());
    ok(json!({}))
}

async fn request_token_ttl(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let Some(Ok(ms)) = q.get("ms").map(|m| m.parse::<u64>()) else {
        return bad("ms must be milliseconds");
    };
    s.inner.lock().request_ttl = Duration::from_millis(ms);
    ok(json!({}))
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let g = s.inner.lock();
    let now = g.clock.now();
    let live = g.sessions.values().filter(|x| x.alive(now)).count();
    ok(json!({
        "exchanges": g.exchanges, "successful_exchanges": g.successes,
        "profiles": g.profiles, "logouts": g.logouts, "faults": g.faults.len(),
        "pending_request_tokens": g.requests.len(), "live_sessions": live,
        "issued_tokens": g.issued.len(),
        "request_token_ttl_ms": u64::try_from(g.request_ttl.as_millis()).unwrap_or(u64::MAX),
    }))
}

async fn ticker(State(s): State<Arc<Shared>>) -> Response {
    let g = s.inner.lock();
    let attempts: Vec<Value> = g
        .ticker
        .iter()
        .map(|a| {
            json!({"api_key": a.api_key, "access_token": a.access_token,
                "accepted": a.accepted, "status": a.status, "x_kite_version": a.kite_version,
                "user_agent": a.user_agent, "subscribed": a.subscribed, "open": a.open})
        })
        .collect();
    ok(json!(attempts))
}

async fn ticker_drop(State(s): State<Arc<Shared>>) -> Response {
    s.ticker_drop.send_modify(|n| *n += 1);
    ok(json!({}))
}
