//! The Kite endpoints: the browser login, the request-token exchange, the
//! profile, the logout and the ticker's websocket (`ticker.rs`), with
//! Kite's error envelope, and the layer in front of them all that adds
//! latency.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    Inner, KiteFail, KiteSimApp, SecondLogin, Session, Shared, control, random_alnum, ticker,
};

type Fields = HashMap<String, String>;

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(ticker::connect))
        .route("/connect/login", get(browser_login))
        .route(
            "/session/token",
            axum::routing::post(exchange).delete(logout),
        )
        .route("/user/profile", get(profile))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), delay))
        .with_state(shared)
}

/// The latency, by the sim's clock.
async fn delay(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (d, clock) = {
        let g = s.inner.lock();
        (g.latency, Arc::clone(&g.clock))
    };
    crate::serve::pause(&clock, d).await;
    next.run(req).await
}

pub(super) fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Kite's error envelope.
fn kite_error(status: StatusCode, message: &str, error_type: &str) -> Response {
    let body = json!({"status": "error", "message": message, "error_type": error_type});
    reply(status, body)
}

fn success(data: Value) -> Response {
    reply(StatusCode::OK, json!({"status": "success", "data": data}))
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn page(title: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
    )
}

async fn not_found() -> Response {
    kite_error(StatusCode::NOT_FOUND, "Route not found", "GeneralException")
}

fn token_exception(message: &str) -> Response {
    kite_error(StatusCode::FORBIDDEN, message, "TokenException")
}

fn dead_session() -> Response {
    token_exception("Incorrect `api_key` or `access_token`.")
}

fn input_exception(message: &str) -> Response {
    kite_error(StatusCode::BAD_REQUEST, message, "InputException")
}

/// `now` on the IST (+05:30) wall clock, as Kite writes `login_time`.
fn ist_time(now: DateTime<Utc>) -> String {
    (now + TimeDelta::minutes(330))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The browser step, approved at once: a fresh request token on the
/// registered redirect URL, with `redirect_params` appended verbatim.
async fn browser_login(State(s): State<Arc<Shared>>, Query(q): Query<Fields>) -> Response {
    if q.get("v").map(String::as_str) != Some("3") {
        let text = "This login URL is missing v=3 (Kite Connect v3).";
        return html(StatusCode::BAD_REQUEST, page("Invalid login URL", text));
    }
    let Some(app) = q.get("api_key").and_then(|k| s.app_index(k)) else {
        let text = "Invalid api_key: no Kite Connect app has this api_key.";
        return html(StatusCode::BAD_REQUEST, page("Invalid api_key", text));
    };
    let mut g = s.inner.lock();
    let Some(redirect) = g.redirects[app].clone() else {
        let text = "This app has no redirect URL registered in the developer console.";
        return html(StatusCode::BAD_REQUEST, page("No redirect URL", text));
    };
    let token = g.mint(&s.apps, app);
    drop(g);
    let sep = if redirect.ends_with(['?', '&']) {
        ""
    } else if redirect.contains('?') {
        "&"
    } else {
        "?"
    };
    let mut location =
        format!("{redirect}{sep}request_token={token}&action=login&type=login&status=success");
    if let Some(extra) = q.get("redirect_params").filter(|p| !p.is_empty()) {
        location.push('&');
        location.push_str(extra);
    }
    tracing::debug!(api_key = %s.apps[app].api_key, "kite sim: browser login approved");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// Lowercase hex SHA-256 of `api_key + request_token + api_secret`.
fn expected_checksum(app: &KiteSimApp, request_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(app.api_key.as_bytes());
    h.update(request_token.as_bytes());
    h.update(app.api_secret.as_bytes());
    hex::encode(h.finalize())
}

fn fault_answer(fail: KiteFail) -> Response {
    match fail {
        KiteFail::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = "Something went wrong while processing the request.";
            kite_error(status, message, "GeneralException")
        }
        KiteFail::Html => {
            let text = "The upstream server is not answering.";
            html(StatusCode::BAD_GATEWAY, page("502 Bad Gateway", text))
        }
        KiteFail::NotFound => {
            let text = "The requested URL was not found on this server.";
            html(StatusCode::NOT_FOUND, page("404 Not Found", text))
        }
        KiteFail::RateLimit => kite_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
            "NetworkException",
        ),
    }
}

async fn exchange(
    State(s): State<Arc<Shared>>,
    h: HeaderMap,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let fault = {
        let mut g = s.inner.lock();
        g.exchanges += 1;
        g.faults.pop_front()
    };
    if let Some(fail) = fault {
        tracing::debug!(?fail, "kite sim: injected exchange failure");
        return fault_answer(fail);
    }
    if h.get("x-kite-version").and_then(|v| v.to_str().ok()) != Some("3") {
        return input_exception("Missing or invalid `X-Kite-Version` header; send 3.");
    }
    let Ok(Form(f)) = form else {
        return input_exception("Expected a form-encoded body.");
    };
    let get = |k: &str| f.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(api_key), Some(request_token), Some(checksum)) =
        (get("api_key"), get("request_token"), get("checksum"))
    else {
        return input_exception("Missing `api_key`, `request_token` or `checksum`.");
    };
    let Some(app) = s.app_index(api_key) else {
        return input_exception("Invalid `api_key`.");
    };
    if checksum != expected_checksum(&s.apps[app], request_token) {
        return token_exception("Invalid `checksum`.");
    }
    let mut g = s.inner.lock();
    // Spent whatever happens next: request tokens are single-use.
    let pending = g.requests.remove(request_token);
    let ttl = g.request_ttl;
    let now = g.clock.now();
    let ttl = TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX);
    let fresh = |at: DateTime<Utc>| now - at < ttl;
    let Some(pending) = pending.filter(|p| p.app == app && fresh(p.at)) else {
        return token_exception("Token is invalid or has expired.");
    };
    let access_token = issue(&mut g, app, &pending.user_id);
    g.successes += 1;
    let session = &g.sessions[&access_token];
    let mut data = profile_data(&s.apps[app], &session.user_id);
    if let Value::Object(m) = &mut data {
        m.insert("api_key".into(), json!(s.apps[app].api_key));
        m.insert("access_token".into(), json!(access_token));
        m.insert("public_token".into(), json!(session.public_token));
        m.insert("refresh_token".into(), json!(""));
        m.insert("enctoken".into(), json!(""));
        m.insert("login_time".into(), json!(session.login_time));
    }
    g.last_exchange = Some(data.clone());
    drop(g);
    tracing::debug!(user_id = %pending.user_id, "kite sim: access token issued");
    success(data)
}

/// The access token for a fresh exchange by `user_id` on `app`, per the
/// second-login mode.
fn issue(g: &mut Inner, app: usize, user_id: &str) -> String {
    let now = g.clock.now();
    let mine = |s: &Session| s.alive(now) && s.app == app && s.user_id == user_id;
    if g.second_login == SecondLogin::SameToken
        && let Some((token, _)) = g.sessions.iter().find(|(_, s)| mine(s))
    {
        return token.clone();
    }
    g.sessions
        .values_mut()
        .filter(|s| mine(s))
        .for_each(|s| s.revoked = true);
    let token = random_alnum(32);
    let session = Session {
        app,
        user_id: user_id.to_string(),
        public_token: random_alnum(32),
        login_time: ist_time(now),
        revoked: false,
        expires_at: g.cutoff.map(|t| brokerd_core::time::ist::next_at(now, t)),
    };
    g.sessions.insert(token.clone(), session);
    g.issued.push(token.clone());
    token
}

/// The profile of `user_id` (the app's user's name when it is that user).
fn profile_data(app: &KiteSimApp, user_id: &str) -> Value {
    let name = if user_id == app.user_id {
        app.user_name.clone()
    } else {
        format!("KITE USER {user_id}")
    };
    let short = name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    json!({
        "user_id": user_id, "user_type": "individual",
        "email": format!("{}@example.com", user_id.to_ascii_lowercase()),
        "user_name": name, "user_shortname": short, "broker": "ZERODHA",
        "exchanges": ["NSE", "BSE", "NFO", "BFO", "CDS", "MCX"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": null, "meta": {"demat_consent": "physical"},
    })
}

async fn profile(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    let auth = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("token "))
        .and_then(|v| v.split_once(':'));
    let mut g = s.inner.lock();
    g.profiles += 1;
    let Some((api_key, token)) = auth else {
        return dead_session();
    };
    let user = s
        .app_index(api_key)
        .and_then(|app| Some((app, g.live(app, token)?.user_id.clone())));
    let Some((app, user_id)) = user else {
        return dead_session();
    };
    drop(g);
    success(profile_data(&s.apps[app], &user_id))
}

async fn logout(State(s): State<Arc<Shared>>, Query(q): Query<Fields>) -> Response {
    let mut g = s.inner.lock();
    g.logouts += 1;
    let app = q.get("api_key").and_then(|k| s.app_index(k));
    let token = q.get("access_token");
    let (Some(app), Some(token)) = (app, token) else {
        return dead_session();
    };
    if g.live(app, token).is_none() {
        return dead_session();
    }
    if let Some(session) = g.sessions.get_mut(token.as_str()) {
        session.revoked = true;
    }
    drop(g);
    tracing::debug!("kite sim: access token logged out");
    success(json!(true))
}
