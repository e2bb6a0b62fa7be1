//! The `/_sim/` control surface, so the demo can inject faults over HTTP:
//! `POST /_sim/reject_all`, `POST /_sim/fail_next?at=login|renew|call&n=&mode=[&ms=]`
//! (mode: an HTTP status such as `503`, or `ab1004`, `ab2000`, `ab2001`,
//! `rate_limit`, `waf`, `html`, `not_found`, `timeout`, `wrong_totp`,
//! `ab1007`, `ab1006`, `ab1032`, `ag8004`, `password_login`, `ab8050`,
//! `ab8051`, `ag8001`, `ag8002`, `ag8003`, `ab1010`, `ab1011`),
//! `POST /_sim/kill_after[?ms=]` (no `ms` switches it off),
//! `POST /_sim/dead_shape?shape=gateway200|gateway401|ab1010|ab1011`,
//! `POST /_sim/one_session?on=true|false`,
//! `GET /_sim/totp_attempts` (every TOTP received, with its window; never
//! the code) and `GET /_sim/stats`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AngelFail, DeadCode, DeadShape, Endpoint, STEP_SECS, Shared};
use crate::control::{self, Query as Q, bad, ok};

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/reject_all", post(reject_all))
        .route("/_sim/fail_next", post(fail_next))
        .route("/_sim/kill_after", post(kill_after))
        .route("/_sim/dead_shape", post(dead_shape))
        .route("/_sim/one_session", post(one_session))
        .route("/_sim/totp_attempts", get(totp_attempts))
        .route("/_sim/stats", get(stats))
}

async fn reject_all(State(s): State<Arc<Shared>>) -> Response {
    let mut g = s.inner.lock();
    g.sessions.values_mut().for_each(|x| x.revoked = true);
    ok(json!({}))
}

/// The fault a `mode` names; `Err` says why there is none.
fn mode(q: &Q) -> Result<AngelFail, &'static str> {
    Ok(
        match q
            .get("mode")
            .map(String::as_str)
            .ok_or("mode is required")?
        {
            "ab1004" => AngelFail::Ab1004,
            "ab2000" => AngelFail::Ab2000,
            "ab2001" => AngelFail::Ab2001,
            "rate_limit" => AngelFail::RateLimit,
            "waf" => AngelFail::Waf,
            "html" => AngelFail::BadGateway,
            "not_found" => AngelFail::NotFound,
            "timeout" => AngelFail::Timeout(control::timeout(q)?),
            "wrong_totp" => AngelFail::WrongTotp,
            "ab1007" => AngelFail::BadCredentials,
            "ab1006" => AngelFail::Blocked,
            "ab1032" => AngelFail::UserNotFound,
            "ag8004" => AngelFail::BadApiKey,
            "password_login" => AngelFail::PasswordLoginNotAllowed,
            "ab8050" => AngelFail::RefreshInvalid,
            "ab8051" => AngelFail::RefreshExpired,
            "ag8001" => AngelFail::Dead(DeadCode::Ag8001),
            "ag8002" => AngelFail::Dead(DeadCode::Ag8002),
            "ag8003" => AngelFail::Dead(DeadCode::Ag8003),
            "ab1010" => AngelFail::Dead(DeadCode::Ab1010),
            "ab1011" => AngelFail::Dead(DeadCode::Ab1011),
            code => AngelFail::Status(crate::control::status_mode(code).ok_or("unknown mode")?),
        },
    )
}

async fn fail_next(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let Some(n) = crate::control::fault_count(&q) else {
        return bad("n must be a count");
    };
    let at = match q.get("at").map(String::as_str) {
        None | Some("login") => Endpoint::Login,
        Some("renew") => Endpoint::Renew,
        Some("call") => Endpoint::Call,
        Some(_) => return bad("at must be login, renew or call"),
    };
    let fail = match mode(&q) {
        Ok(f) => f,
        Err(why) => return bad(why),
    };
    let mut g = s.inner.lock();
    g.queue(at, n, fail);
    ok(
        json!({"login": g.queued(Endpoint::Login), "renew": g.queued(Endpoint::Renew),
        "call": g.queued(Endpoint::Call)}),
    )
}

async fn kill_after(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    match control::kill_after(&q) {
        Ok(after) => s.inner.lock().kill_after = after,
        Err(why) => return bad(why),
    }
    ok(json!({}))
}

async fn dead_shape(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let shape = match q.get("shape").map(String::as_str) {
        Some("gateway200") => DeadShape::Gateway200,
        Some("gateway401") => DeadShape::Gateway401,
        Some("ab1010") => DeadShape::Ab1010,
        Some("ab1011") => DeadShape::Ab1011,
        _ => return bad("shape must be gateway200, gateway401, ab1010 or ab1011"),
    };
    s.inner.lock().dead_shape = shape;
    ok(json!({}))
}

async fn one_session(State(s): State<Arc<Shared>>, Query(q): Query<Q>) -> Response {
    let on = match control::switch(&q) {
        Ok(on) => on,
        Err(why) => return bad(why),
    };
    s.inner.lock().one_session = on;
    ok(json!({"one_session": on}))
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
        .filter(|t| g.live(Some(t)).is_ok())
        .count();
    let st = g.stats;
    let stats = json!({
        "logins": st.logins, "successful_logins": st.successful_logins,
        "renewals": st.renewals, "successful_renewals": st.successful_renewals,
        "profiles": st.profiles, "calls": st.calls, "logouts": st.logouts,
        "queued": {"login": g.queued(Endpoint::Login), "renew": g.queued(Endpoint::Renew),
            "call": g.queued(Endpoint::Call)},
        "totp_attempts": g.totp_attempts.len(), "live_sessions": live,
        "issued_tokens": g.issued.len(),
    });
    ok(control::with(
        stats,
        control::totp_clock(g.now(), STEP_SECS),
    ))
}
