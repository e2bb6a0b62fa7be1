//! The XTS endpoints: login, check and logout for both apis, their
//! answers in XTS envelopes, the latency layer in front of them all, and
//! the login's own latency and rate limit.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use rand::Rng;
use serde_json::{Value, json};

use super::{FailMode, Issued, Shared, XtsSimUser, control, idx};
use brokerd_core::Api;
use brokerd_core::time::SharedClock;

pub(super) fn router(shared: Arc<Shared>, prefix: &str) -> Router {
    // Accept "apimarketdata", "/apimarketdata/" and "" alike.
    let md = format!("/{}", prefix.trim_matches('/'));
    let md = md.trim_end_matches('/');
    Router::new()
        .route(
            "/interactive/user/session",
            post(|s: State<Arc<Shared>>, r: Request| login(s, Api::Interactive, r)).delete(
                |s: State<Arc<Shared>>, h: HeaderMap, q: Query<Q>| {
                    logout(s, Api::Interactive, h, q)
                },
            ),
        )
        .route("/interactive/user/profile", get(profile))
        .route(
            &format!("{md}/auth/login"),
            post(|s: State<Arc<Shared>>, r: Request| login(s, Api::Market, r)),
        )
        .route(
            &format!("{md}/auth/logout"),
            delete(|s: State<Arc<Shared>>, h: HeaderMap, q: Query<Q>| logout(s, Api::Market, h, q)),
        )
        .route(&format!("{md}/config/clientConfig"), get(client_config))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), latency))
        .with_state(shared)
}

pub(super) type Q = HashMap<String, String>;

async fn latency(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (d, clock) = {
        let g = s.inner.lock();
        (g.latency, Arc::clone(&g.clock))
    };
    delay(&clock, d).await;
    next.run(req).await
}

/// Waits `d` by the sim's clock: a test's manual clock moves through it.
async fn delay(clock: &SharedClock, d: std::time::Duration) {
    if !d.is_zero() {
        let until = clock.now() + d;
        brokerd_core::time::sleep_until(&**clock, until, tokio::time::sleep).await;
    }
}

pub(super) fn envelope(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: u16, code: &str, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"type": "error", "code": code, "description": description, "result": {}});
    envelope(status, body)
}

fn wrong_secret() -> Response {
    error(400, "e-app-0005", "Invalid AppKey or SecretKey")
}

fn bad_request(missing: &[&str]) -> Response {
    let errors: Vec<Value> = missing
        .iter()
        .map(|f| {
            json!({"field": f, "location": "body", "messages": [format!("\"{f}\" is required")],
                   "types": ["any.required"]})
        })
        .collect();
    let body = json!({"type": "error", "description": "Bad Request", "result": {"errors": errors}});
    envelope(StatusCode::BAD_REQUEST, body)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    // Express's default 404, which is what a wrong prefix gets in the wild.
    let body = format!(
        "<!DOCTYPE html><html><body><pre>Cannot {method} {}</pre></body></html>",
        uri.path()
    );
    html(StatusCode::NOT_FOUND, body)
}

/// The login fields from a JSON or form-encoded body, by Content-Type.
async fn login_fields(req: Request) -> HashMap<String, String> {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Form::<Q>::from_request(req, &())
            .await
            .map(|f| f.0)
            .unwrap_or_default();
    }
    let bytes = Bytes::from_request(req, &()).await.unwrap_or_default();
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return HashMap::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
        .collect()
}

fn too_many_requests() -> Response {
    error(429, "e-rate-0001", "Too Many Requests")
}

async fn login(State(s): State<Arc<Shared>>, api: Api, req: Request) -> Response {
    let _in_flight = s.in_flight.enter();
    let fields = login_fields(req).await;
    let (fault, admitted, latency, clock) = {
        let mut g = s.inner.lock();
        let now = g.clock.now();
        let account = fields
            .get("appKey")
            .and_then(|k| g.account_of(s.pattern.as_ref(), api, k));
        if let Some(i) = account {
            g.accounts[i].logins[idx(api)] += 1;
        }
        let a = &mut g.apis[idx(api)];
        a.logins += 1;
        a.login_times.push(now);
        let admitted = g.rate.admit(now);
        // A refused login never reaches the faults queued for real ones.
        let fault = admitted
            .then(|| g.apis[idx(api)].faults.pop_front())
            .flatten();
        (fault, admitted, g.login_latency, Arc::clone(&g.clock))
    };
    tracing::debug!(%api, fault = ?fault, admitted, "xts sim: login attempt");
    if !admitted {
        return too_many_requests();
    }
    let hold = match fault {
        Some(FailMode::ServerError(code)) => {
            let reason = StatusCode::from_u16(code)
                .ok()
                .and_then(|c| c.canonical_reason());
            return error(code, "e-server-0001", reason.unwrap_or("Server Error"));
        }
        Some(FailMode::WrongSecret) => return wrong_secret(),
        Some(FailMode::Html) => {
            let body = "<html><body><h1>502 Bad Gateway</h1></body></html>".to_owned();
            return html(StatusCode::BAD_GATEWAY, body);
        }
        Some(FailMode::Timeout(d)) => Some(d),
        None => None,
    };
    let answer = issue(&s, api, fields);
    delay(&clock, latency).await;
    if let Some(d) = hold {
        tokio::time::sleep(d).await;
    }
    answer
}

/// Checks the credentials and issues a token, killing the app key's older ones.
fn issue(s: &Shared, api: Api, fields: HashMap<String, String>) -> Response {
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let missing: Vec<&str> = ["appKey", "secretKey", "source"]
        .into_iter()
        .filter(|k| get(k).is_none())
        .collect();
    if !missing.is_empty() {
        return bad_request(&missing);
    }
    let (app_key, secret_key) = (
        get("appKey").unwrap_or_default(),
        get("secretKey").unwrap_or_default(),
    );
    let mut g = s.inner.lock();
    let found = g
        .account_of(s.pattern.as_ref(), api, app_key)
        .map(|i| (i, Arc::clone(&g.accounts[i].user)))
        .filter(|(_, u)| u.keys(api).1 == secret_key);
    let Some((ui, user)) = found else {
        drop(g);
        tracing::debug!(%api, "xts sim: login rejected");
        return wrong_secret();
    };
    let (lifetime, include_exp) = (g.apis[idx(api)].lifetime, g.apis[idx(api)].include_exp);
    let now = g.clock.now() + chrono::Duration::seconds(g.clock_offset_secs);
    let mut claims = json!({
        "userID": user.user_id, "api": api.as_str(), "iat": now.timestamp(),
        "jti": format!("{:032x}", rand::thread_rng().r#gen::<u128>()),
    });
    if include_exp {
        let exp = chrono::Duration::from_std(lifetime)
            .ok()
            .and_then(|l| now.checked_add_signed(l))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        claims["exp"] = exp.timestamp().into();
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let token = match jsonwebtoken::encode(&header, &claims, &s.key) {
        Ok(t) => t,
        Err(_) => return error(500, "e-server-0002", "Token generation failed"),
    };
    // One live login per app key (per api): the new token kills older ones.
    for t in g
        .tokens
        .values_mut()
        .filter(|t| t.api == api && t.user == ui)
    {
        t.revoked = true;
    }
    let at = g.clock.now();
    let deadline = chrono::Duration::from_std(lifetime)
        .ok()
        .and_then(|l| at.checked_add_signed(l));
    g.tokens.insert(
        token.clone(),
        Issued {
            api,
            user: ui,
            at,
            deadline,
            revoked: false,
        },
    );
    g.issued.push(token.clone());
    g.apis[idx(api)].successes += 1;
    g.accounts[ui].successes[idx(api)] += 1;
    drop(g);
    tracing::debug!(%api, user = %user.user_id, "xts sim: login ok");
    let body = match api {
        Api::Interactive => json!({
            "type": "success", "code": "s-user-0001", "description": "Valid User.",
            "result": {"token": token, "userID": user.user_id,
                "isInvestorClient": user.is_investor_client, "clientCodes": user.client_codes,
                "exchangeSegmentArray": ["NSECM", "NSEFO"], "enums": {}, "isOneTouchUser": false}
        }),
        Api::Market => json!({
            "type": "success", "code": "e-response-0010", "description": "Provided Valid Credentials",
            "result": {"token": token, "userID": user.user_id, "appVersion": "1.0.0",
                "application_expiry_date": user.application_expiry_date}
        }),
    };
    envelope(StatusCode::OK, body)
}

fn invalid_token(status: u16) -> Response {
    error(status, "e-session-0007", "Invalid Token")
}

/// The raw token of `Authorization` (XTS uses no `Bearer` prefix).
fn token_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()
}

/// The user behind a live `api` token, or the status its Invalid Token
/// answer gets (401 when the header is missing).
fn authorize(s: &Shared, headers: &HeaderMap, api: Api) -> Result<Arc<XtsSimUser>, u16> {
    let token = token_of(headers).ok_or(401u16)?;
    let g = s.inner.lock();
    g.live(token, Some(api))
        .map(|t| Arc::clone(&g.accounts[t.user].user))
        .ok_or(g.invalid_status)
}

/// Counts a session check of `api` and waits the check latency.
async fn checked(s: &Shared, api: Api) {
    let (d, clock) = {
        let mut g = s.inner.lock();
        let now = g.clock.now();
        let a = &mut g.apis[idx(api)];
        a.checks += 1;
        a.check_times.push(now);
        (g.check_latency, Arc::clone(&g.clock))
    };
    delay(&clock, d).await;
}

/// Dealers must name one of their clients; investors act for themselves.
fn client_id(user: &XtsSimUser, q: &Q) -> Option<String> {
    if user.is_investor_client {
        return Some(user.client_codes.first().unwrap_or(&user.user_id).clone());
    }
    q.get("clientID")
        .filter(|c| user.client_codes.contains(c))
        .cloned()
}

async fn profile(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<Q>) -> Response {
    checked(&s, Api::Interactive).await;
    let user = match authorize(&s, &headers, Api::Interactive) {
        Ok(u) => u,
        Err(status) => return invalid_token(status),
    };
    let Some(client) = client_id(&user, &q) else {
        return bad_request(&["clientID"]);
    };
    let result = json!({"ClientId": client, "ClientName": "Simulated Client",
        "IsInvestorClient": user.is_investor_client, "ClientExchangeDetailsList": {}});
    let body = json!({"type": "success", "code": "s-user-0005", "description": "User profile.", "result": result});
    envelope(StatusCode::OK, body)
}

async fn client_config(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    checked(&s, Api::Market).await;
    if let Err(status) = authorize(&s, &headers, Api::Market) {
        return invalid_token(status);
    }
    let result = json!({"exchangeSegments": {"NSECM": 1, "NSEFO": 2, "NSECD": 3, "BSECM": 11},
        "xtsMessageCode": {"touchlineEvent": 1501, "marketDepthEvent": 1502},
        "publishFormat": ["Binary", "JSON"], "broadCastMode": ["Full", "Partial"]});
    let body = json!({"type": "success", "code": "s-response-0001", "description": "Client config.", "result": result});
    envelope(StatusCode::OK, body)
}

async fn logout(s: State<Arc<Shared>>, api: Api, headers: HeaderMap, q: Query<Q>) -> Response {
    let user = match authorize(&s, &headers, api) {
        Ok(u) => u,
        Err(status) => return invalid_token(status),
    };
    if api == Api::Interactive && client_id(&user, &q).is_none() {
        return bad_request(&["clientID"]);
    }
    let token = token_of(&headers).unwrap_or_default();
    let mut g = s.inner.lock();
    // Re-checked under the lock so two racing logouts do not both succeed.
    if g.live(token, Some(api)).is_none() {
        let status = g.invalid_status;
        return invalid_token(status);
    }
    if let Some(t) = g.tokens.get_mut(token) {
        t.revoked = true;
    }
    g.apis[idx(api)].logouts += 1;
    drop(g);
    tracing::debug!(%api, user = %user.user_id, "xts sim: logout");
    let body = json!({"type": "success", "code": "s-user-0002", "description": "Logged out", "result": {}});
    envelope(StatusCode::OK, body)
}
