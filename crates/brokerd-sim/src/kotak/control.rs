//! The `/_sim/` control surface, so the demo can inject faults over HTTP:
//! `POST /_sim/reject_all`, `POST /_sim/fail_next?n=&mode=[&ms=]` (mode: an
//! HTTP status such as `503`, `424`, `html`, `not_found`, `timeout`, `wrong_totp`,
//! `wrong_mpin`, `wrong_ucc`, `bad_access_token`),
//! `POST /_sim/kill_after[?ms=]` (no `ms` switches it off),
//! `POST /_sim/hold_logins?on=true|false` (hold `tradeApiLogin` answers),
//! `GET /_sim/totp_attempts` (every TOTP received, with its window; never
//! the code) and `GET /_sim/stats`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{KotakFail, STEP_SECS, Shared};
use crate::control::{self, Query as Q, bad, ok};

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/reject_all", post(reject_all))
        .route("/_sim/fail_next", post(fail_next))
        .route("/_sim/kill_after", post(kill_after))
        .route("/_sim/hold_logins", post(hold_logins))
        .route("/_sim/totp_attempts", get(totp_attempts))
        .route("/_sim/stats", get(stats))
}

async fn reject_all(State(s): State<Arc<Shared>>) -> Response {
    s.inner.lock().revoke_all();
    ok(json!({}))
}

async fn fail_next(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let Some(n) = crate::control::fault_count(&q) else {
        return bad("n must be a count");
    };
    let fail = match q.get("mode").map(String::as_str) {
        Some("424") => KotakFail::Status424,
        Some("html") => KotakFail::Html,
        Some("not_found") => KotakFail::NotFound,
        Some("timeout") => match control::timeout(&q) {
            Ok(d) => KotakFail::Timeout(d),
            Err(why) => return bad(why),
        },
        Some("wrong_totp") => KotakFail::WrongTotp,
        Some("wrong_mpin") => KotakFail::WrongMpin,
        Some("wrong_ucc") => KotakFail::WrongUcc,
        Some("bad_access_token") => KotakFail::BadAccessToken,
        Some(code) => match crate::control::status_mode(code) {
            Some(c) => KotakFail::ServerError(c),
            None => return bad("unknown mode"),
        },
        None => return bad("mode is required"),
    };
    let mut g = s.inner.lock();
    g.queue_faults(n, fail);
    ok(json!({"login_faults": g.login_faults.len(), "mpin_faults": g.mpin_faults}))
}

async fn kill_after(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    match control::kill_after(&q) {
        Ok(after) => s.inner.lock().kill_after = after,
        Err(why) => return bad(why),
    }
    ok(json!({}))
}

async fn hold_logins(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let on = match control::switch(&q) {
        Ok(on) => on,
        Err(why) => return bad(why),
    };
    s.hold.send_replace(on);
    ok(json!({"hold_logins": on}))
}

async fn totp_attempts(State(s): State<Arc<Shared>>) -> Response {
    let g = s.inner.lock();
    let attempts: Vec<Value> = g
        .totp_attempts
        .iter()
        .map(|a| control::totp_attempt(a.at_unix_ms, a.step, a.matched_step, a.accepted))
        .collect();
    ok(json!(attempts))
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let g = s.inner.lock();
    let live = g
        .sessions
        .keys()
        .filter(|t| g.live_session(t).is_some())
        .count();
    let stats = json!({
        "logins": g.logins, "validates": g.validates, "successful_logins": g.successes,
        "login_faults": g.login_faults.len(), "mpin_faults": g.mpin_faults,
        "totp_attempts": g.totp_attempts.len(), "live_sessions": live,
        "held_logins": g.held, "hold_logins": *s.hold.borrow(),
        "issued_tokens": g.issued.len(),
    });
    ok(control::with(
        stats,
        control::totp_clock(g.now(), STEP_SECS),
    ))
}
