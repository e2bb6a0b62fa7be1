//! The Breeze endpoints: the browser login, `customerdetails` and `funds`,
//! answering errors the way Breeze does (HTTP 200, the error in the body),
//! behind a layer that adds latency.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDateTime;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{BreezeFail, Delivery, KeyCheck, Shared, control};

const API: &str = "/breezeapi/api/v1";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/apiuser/login", get(login))
        .route(&format!("{API}/customerdetails"), get(customerdetails))
        .route(&format!("{API}/funds"), get(funds))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), latency))
        .with_state(shared)
}

/// The latency, by the sim's clock.
async fn latency(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (d, clock) = {
        let g = s.inner.lock();
        (g.latency, Arc::clone(&g.clock))
    };
    crate::serve::pause(&clock, d).await;
    next.run(req).await
}

/// Breeze's envelope with an HTTP status of its own.
pub(super) fn envelope(
    http: StatusCode,
    success: Value,
    status: u16,
    error: Option<&str>,
) -> Response {
    let body = json!({"Success": success, "Status": status, "Error": error});
    (http, axum::Json(body)).into_response()
}

/// An error the Breeze way: HTTP 200, `Status` and `Error` in the body.
fn error(status: u16, msg: &str) -> Response {
    envelope(StatusCode::OK, Value::Null, status, Some(msg))
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found() -> Response {
    not_found_page()
}

/// What the web server answers for a path it does not serve.
fn not_found_page() -> Response {
    let page =
        "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>";
    html(StatusCode::NOT_FOUND, page.into())
}

/// Escapes text for an HTML attribute value.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn login_refused(why: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html><html><head><title>Breeze login</title></head><body><h1>Login failed</h1><p>{}</p></body></html>",
        attr(why)
    );
    html(StatusCode::BAD_REQUEST, page)
}

/// The browser step, approved at once: a fresh session key goes to the
/// app's redirect URL, as a query parameter or a POSTed form field.
async fn login(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut g = s.inner.lock();
    let Some(app) = q.get("api_key").and_then(|k| g.app(k)) else {
        return login_refused("Invalid API key.");
    };
    let Some(redirect) = g.apps[app].redirect_url.clone() else {
        return login_refused("No redirect URL is registered for this app.");
    };
    let key = g.mint(app);
    let delivery = g.delivery;
    drop(g);
    tracing::debug!(delivery = ?delivery, "breeze sim: browser login approved");
    match delivery {
        Delivery::Query => {
            let sep = if redirect.contains('?') { '&' } else { '?' };
            let location = format!("{redirect}{sep}apisession={key}");
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Delivery::Form => {
            let page = format!(
                "<!DOCTYPE html><html><head><title>Breeze login</title></head><body>\
                 <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"API_Session\" value=\"{key}\"></form>\
                 <script>document.forms[0].submit();</script></body></html>",
                attr(&redirect)
            );
            html(StatusCode::OK, page)
        }
    }
}

fn injected(fail: BreezeFail) -> Response {
    match fail {
        BreezeFail::ServerError(code) => {
            let http = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            envelope(
                http,
                Value::Null,
                http.as_u16(),
                Some("Internal Server Error"),
            )
        }
        BreezeFail::Html => {
            let page = "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>";
            html(StatusCode::SERVICE_UNAVAILABLE, page.into())
        }
        BreezeFail::NotFound => not_found_page(),
        BreezeFail::RateLimit => error(500, "Limit exceed: API call per minute."),
        BreezeFail::ResourceNotAvailable => error(500, "Resource not available."),
    }
}

async fn customerdetails(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let mut g = s.inner.lock();
    g.customerdetails += 1;
    if let Some(fail) = g.faults.pop_front() {
        drop(g);
        tracing::debug!(fail = ?fail, "breeze sim: injected customerdetails failure");
        return injected(fail);
    }
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let (Some(key), Some(app_key)) = (field("SessionToken"), field("AppKey")) else {
        return error(
            500,
            "Request body must be JSON with SessionToken and AppKey.",
        );
    };
    let Some(app) = g.app(&app_key) else {
        return error(500, "Public Key does not exist.");
    };
    let (user_id, user_name) = match g.exchange(app, &key) {
        KeyCheck::Live { user_id, user_name } => (user_id, user_name),
        KeyCheck::Unknown => return error(500, "Invalid session."),
        KeyCheck::Gone => return error(500, "Resource not available."),
    };
    drop(g);
    let date = "24-Nov-2026";
    let success = json!({
        "exg_trade_date": {"NSE": date, "BSE": date, "FNO": date, "NDX": date},
        "exg_status": {"NSE": "O", "BSE": "O", "FNO": "Y", "NDX": "O"},
        "segments_allowed": {"Trading": "Y", "Equity": "Y", "Derivatives": "Y", "Currency": "N"},
        "idirect_userid": user_id,
        "session_token": super::session_token(&user_id, &key),
        "idirect_user_name": user_name,
        "idirect_ORD_TYP": "N",
        "idirect_lastlogin_time": "24-Nov-2026 09:01:02",
        "mf_holding_mode_popup_flg": "N",
        "commodity_exchange_status": "N",
        "commodity_trade_date": date,
        "commodity_allowed": "C"
    });
    envelope(StatusCode::OK, success, 200, None)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?.to_str().ok().filter(|v| !v.is_empty())
}

/// `token <hex(SHA-256(timestamp + body + secret))>`, the sim's own copy.
fn expected_checksum(timestamp: &str, body: &[u8], secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(body);
    h.update(secret.as_bytes());
    format!("token {}", hex::encode(h.finalize()))
}

/// The signed `funds` call. A wrong checksum and a dead session get the
/// same answer, as from the real API. The answer to a malformed or stale
/// `X-Timestamp` is undocumented; `Invalid Timestamp.` is the sim's guess.
async fn funds(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let mut g = s.inner.lock();
    g.funds += 1;
    let Some(app) = header(&h, "x-appkey").and_then(|k| g.app(k)) else {
        return error(500, "Public Key does not exist.");
    };
    let ts = header(&h, "x-timestamp").unwrap_or_default();
    let Ok(at) = NaiveDateTime::parse_from_str(ts, "%Y-%m-%dT%H:%M:%S.000Z") else {
        return error(500, "Authentication Fail :: Invalid Timestamp.");
    };
    if let Some(tol) = g.tolerance {
        let age = (g.clock.now() - at.and_utc()).abs();
        if age.to_std().map_or(true, |age| age > tol) {
            return error(500, "Authentication Fail :: Invalid Timestamp.");
        }
    }
    let want = expected_checksum(ts, &body, &g.apps[app].secret_key);
    let checksum_ok = header(&h, "x-checksum") == Some(want.as_str());
    let session_ok = header(&h, "x-sessiontoken").and_then(|t| g.live_session(t)) == Some(app);
    drop(g);
    if !(checksum_ok && session_ok) {
        tracing::debug!(checksum_ok, session_ok, "breeze sim: funds refused");
        return error(5, "Authentication Fail :: Invalid Checksum.");
    }
    let success = json!({"bank_account": "XXXXXXXX1234", "total_bank_balance": 100000.0,
        "allocated_equity": 50000.0, "allocated_fno": 50000.0, "block_by_trade_equity": 0.0,
        "block_by_trade_fno": 0.0, "unallocated_balance": "0"});
    envelope(StatusCode::OK, success, 200, None)
}
