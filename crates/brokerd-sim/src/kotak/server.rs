//! The Kotak endpoints: the two login steps, four post-login calls, their
//! answers in Kotak's many error shapes, and the layer in front of them all
//! that adds latency and stamps `Date` from the sim clock.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::{
    DeadShape, Inner, IpRule, KotakFail, Session, Shared, TotpAttempt, View, code_for, control,
    next_ist_midnight, step_of,
};

/// The `neo-fin-key` every Kotak client sends.
const NEO_FIN_KEY: &str = "neotradeapi";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/login/1.0/tradeApiLogin", post(trade_api_login))
        .route("/login/1.0/tradeApiValidate", post(trade_api_validate))
        .route("/quick/user/limits", post(limits))
        .route("/quick/user/orders", get(orders))
        .route("/quick/user/positions", get(positions))
        .route("/portfolio/v2/positions", get(positions_v2))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), stamp))
        .with_state(shared)
}

/// Latency before, `Date` after: the header tells when the answer left,
/// which is what a client comparing clocks needs (hyper keeps ours).
async fn stamp(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (d, clock) = {
        let g = s.inner.lock();
        (g.latency, std::sync::Arc::clone(&g.clock))
    };
    if !d.is_zero() {
        // By the sim's base clock: a test's manual clock moves through it.
        let until = clock.now() + d;
        brokerd_core::time::sleep_until(&*clock, until, tokio::time::sleep).await;
    }
    let mut resp = next.run(req).await;
    let now = s.inner.lock().now();
    // chrono rather than httpdate: httpdate panics on pre-1970 times, which
    // a large negative clock offset would reach.
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert(header::DATE, v);
    }
    resp
}

pub(super) fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// The API gateway's answer to a wrong access token (or session token).
fn gateway_fault() -> Response {
    let fault = json!({"code": 900901, "message": "Invalid Credentials",
        "description": "Invalid Credentials. Make sure you have provided the correct security credentials"});
    reply(StatusCode::UNAUTHORIZED, json!({ "fault": fault }))
}

fn missing(field: &str) -> Response {
    let msg = format!("Missing required field '{field}'");
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": [{"code": "400", "message": msg}]}),
    )
}

fn failure(st_code: u16, msg: &str) -> Response {
    reply(
        StatusCode::OK,
        json!({"stCode": st_code, "errMsg": msg, "status": "failure"}),
    )
}

fn invalid_credentials() -> Response {
    let body =
        json!({"status": "error", "message": "Invalid credentials or TOTP.", "errorCode": "401"});
    reply(StatusCode::UNAUTHORIZED, body)
}

fn server_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"stCode": code, "errMsg": "Internal server error", "status": "failure"});
    reply(status, body)
}

fn html(status: StatusCode, body: &'static str) -> Response {
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

/// What nginx answers for a path it does not serve.
fn not_found_page() -> Response {
    let page = "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center><hr><center>nginx</center></body></html>";
    html(StatusCode::NOT_FOUND, page)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?.to_str().ok().filter(|v| !v.is_empty())
}

/// The user whose access token is in `Authorization` (raw: `Bearer x` is
/// wrong), provided `neo-fin-key` is right. The real answer to a missing
/// `neo-fin-key` is undocumented; the gateway fault is the sim's guess.
fn access_user(s: &Shared, h: &HeaderMap) -> Option<usize> {
    if header(h, "neo-fin-key") != Some(NEO_FIN_KEY) {
        return None;
    }
    let token = header(h, "authorization")?;
    s.users.iter().position(|u| u.access_token == token)
}

type Fields = HashMap<String, String>;

/// String fields of a JSON object body; anything else reads as empty, so
/// a malformed body gets the missing-field answer.
fn json_fields(body: &[u8]) -> Fields {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Fields::new();
    };
    map.into_iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn random_id() -> String {
    let n: u128 = rand::thread_rng().r#gen();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl Shared {
    /// An HS256 JWT for `ucc`; the claims hold no secret.
    fn jwt(&self, ucc: &str, now: DateTime<Utc>, exp: DateTime<Utc>) -> Option<String> {
        let claims = json!({"sub": ucc, "iat": now.timestamp(), "exp": exp.timestamp(),
            "jti": format!("{:032x}", rand::thread_rng().r#gen::<u128>())});
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        jsonwebtoken::encode(&header, &claims, &self.key).ok()
    }

    /// Records one received TOTP for `user` and says whether it is accepted:
    /// only when `acceptable`, the code is the current step's and that step's
    /// code was not used before. An accepted code is spent.
    fn note_totp(&self, g: &mut Inner, user: Option<usize>, code: &str, acceptable: bool) -> bool {
        let now = g.now();
        let step = step_of(now);
        // Current first: should two steps share a code, the current wins.
        let matched = user.and_then(|u| {
            [step, step - 1, step + 1]
                .into_iter()
                .find(|s| code_for(&self.totps[u], *s).as_deref() == Some(code))
        });
        let accepted =
            acceptable && matched == Some(step) && user.is_some_and(|u| g.spent.insert((u, step)));
        g.totp_attempts.push(TotpAttempt {
            at_unix_ms: now.timestamp_millis(),
            step,
            matched_step: matched,
            accepted,
        });
        accepted
    }
}

async fn trade_api_login(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut g = s.inner.lock();
        g.logins += 1;
        g.login_faults.pop_front()
    };
    tracing::debug!(fault = ?fault, "kotak sim: tradeApiLogin attempt");
    let answer = login_answer(&s, &h, &json_fields(&body), fault.as_ref());
    held_back(&s).await;
    if let Some(KotakFail::Timeout(d)) = fault {
        tokio::time::sleep(d).await;
    }
    answer
}

/// Waits while logins are held (`hold_logins`), counted in `held` until the
/// answer goes out or the client goes away (the future is then dropped).
async fn held_back(s: &Shared) {
    struct Counted<'a>(&'a Shared);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.inner.lock().held -= 1;
        }
    }
    let mut hold = s.hold.subscribe();
    if !*hold.borrow_and_update() {
        return;
    }
    s.inner.lock().held += 1;
    let _counted = Counted(s);
    tracing::debug!("kotak sim: tradeApiLogin answer held");
    // Err: the simulator is gone, and the answer with it.
    let _ = hold.wait_for(|on| !*on).await;
}

fn login_answer(s: &Shared, h: &HeaderMap, f: &Fields, fault: Option<&KotakFail>) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str);
    let ucc = get("ucc");
    // Every refusal still records the code, so a test sees each TOTP that
    // reached the sim and which window it was for.
    let refuse = |answer: Response| {
        if let Some(code) = get("totp") {
            let user = s.users.iter().position(|u| Some(u.ucc.as_str()) == ucc);
            s.note_totp(&mut s.inner.lock(), user, code, false);
        }
        answer
    };
    match fault {
        Some(KotakFail::ServerError(code)) => return refuse(server_error(*code)),
        Some(KotakFail::Status424) => {
            let body = json!({"status": "error", "message": "Temporary backend issue, retry later", "errorCode": "424"});
            return refuse(reply(StatusCode::FAILED_DEPENDENCY, body));
        }
        Some(KotakFail::Html) => {
            let page = "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>";
            return refuse(html(StatusCode::BAD_GATEWAY, page));
        }
        Some(KotakFail::NotFound) => return refuse(not_found_page()),
        _ => {}
    }
    let ui = access_user(s, h).filter(|_| fault != Some(&KotakFail::BadAccessToken));
    let Some(ui) = ui else {
        return refuse(gateway_fault());
    };
    for (key, name) in [
        ("mobileNumber", "MobileNumber"),
        ("ucc", "Ucc"),
        ("totp", "Totp"),
    ] {
        if get(key).is_none() {
            return refuse(missing(name));
        }
    }
    let user = &s.users[ui];
    // HTTP 200 with stCode 429: not a rate limit, whatever the number says.
    if ucc != Some(user.ucc.as_str()) || fault == Some(&KotakFail::WrongUcc) {
        return refuse(failure(429, "Invalid UCC"));
    }
    let mut g = s.inner.lock();
    let now = g.now();
    let expires_at = next_ist_midnight(now);
    let Some(token) = s.jwt(&user.ucc, now, expires_at) else {
        drop(g);
        return refuse(server_error(500));
    };
    let acceptable =
        get("mobileNumber") == Some(user.mobile.as_str()) && fault != Some(&KotakFail::WrongTotp);
    if !s.note_totp(
        &mut g,
        Some(ui),
        get("totp").unwrap_or_default(),
        acceptable,
    ) {
        tracing::debug!(ucc = %user.ucc, "kotak sim: tradeApiLogin rejected");
        return invalid_credentials();
    }
    let sid = random_id();
    g.views.insert(
        token.clone(),
        View {
            user: ui,
            sid: sid.clone(),
            expires_at,
            revoked: false,
        },
    );
    g.issued.extend([token.clone(), sid.clone()]);
    drop(g);
    tracing::debug!(ucc = %user.ucc, "kotak sim: view token issued");
    let data = json!({"token": token, "sid": sid, "rid": random_id(), "kType": "View",
        "status": "success", "ucc": user.ucc, "greetingName": user.greeting_name,
        "dataCenter": user.data_center});
    reply(StatusCode::OK, json!({ "data": data }))
}

async fn trade_api_validate(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let forced_wrong = {
        let mut g = s.inner.lock();
        g.validates += 1;
        let forced = g.mpin_faults > 0;
        g.mpin_faults = g.mpin_faults.saturating_sub(1);
        forced
    };
    let Some(ui) = access_user(&s, &h) else {
        return gateway_fault();
    };
    let mut g = s.inner.lock();
    let view_ok = header(&h, "auth")
        .and_then(|t| g.live_view(t))
        .is_some_and(|v| v.user == ui && header(&h, "sid") == Some(v.sid.as_str()));
    if !view_ok {
        return gateway_fault();
    }
    let user = &s.users[ui];
    let fields = json_fields(&body);
    let Some(mpin) = fields.get("mpin") else {
        return missing("Mpin");
    };
    if forced_wrong || *mpin != user.mpin {
        tracing::debug!(ucc = %user.ucc, "kotak sim: tradeApiValidate rejected");
        return failure(401, "Invalid MPIN");
    }
    let now = g.now();
    let expires_at = match g.lifetime {
        None => next_ist_midnight(now),
        Some(d) => TimeDelta::from_std(d)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
    };
    let Some(token) = s.jwt(&user.ucc, now, expires_at) else {
        return server_error(500);
    };
    if g.one_session {
        g.sessions
            .values_mut()
            .filter(|x| x.user == ui)
            .for_each(|x| x.revoked = true);
    }
    let sid = random_id();
    let session = Session {
        user: ui,
        sid: sid.clone(),
        at: g.clock.now(),
        expires_at,
        revoked: false,
    };
    g.sessions.insert(token.clone(), session);
    g.issued.extend([token.clone(), sid.clone()]);
    g.successes += 1;
    let mut data = json!({"token": token, "sid": sid, "rid": random_id(), "baseUrl": s.base_url,
        "dataCenter": user.data_center, "kType": "Trade", "status": "success", "hsServerId": ""});
    if let Some((feed, rt)) = &g.feed_urls {
        data["feedUrl"] = json!(feed);
        data["rtUrl"] = json!(rt);
    }
    g.last_trade = Some(data.clone());
    drop(g);
    tracing::debug!(ucc = %user.ucc, "kotak sim: trade token issued");
    reply(StatusCode::OK, json!({ "data": data }))
}

/// Checks `Auth` + `Sid` of a post-login call: `None` for a live session
/// without an IP rule, else the answer to send instead of the data.
fn refusal(s: &Shared, h: &HeaderMap) -> Option<Response> {
    if header(h, "neo-fin-key") != Some(NEO_FIN_KEY) {
        return Some(gateway_fault());
    }
    let g = s.inner.lock();
    let live = header(h, "auth")
        .and_then(|t| g.live_session(t))
        .is_some_and(|x| header(h, "sid") == Some(x.sid.as_str()));
    if !live {
        return Some(dead(g.dead_shape));
    }
    let body = match g.ip_rule? {
        IpRule::NotWhitelisted => json!({"stCode": 100008, "errMsg": "unauthorized"}),
        IpRule::SessionIpMismatch => {
            json!({"stCode": 1037, "errMsg": "session ip doesnt match with reqest ip"})
        }
    };
    Some(reply(StatusCode::OK, body))
}

fn dead(shape: DeadShape) -> Response {
    match shape {
        DeadShape::Http401 => reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid session, please re-login"}),
        ),
        DeadShape::Code100022 => reply(
            StatusCode::OK,
            json!({"stCode": 100022, "errMsg": "invalid session token", "stat": "Not_Ok"}),
        ),
        DeadShape::Fault900901 => gateway_fault(),
        DeadShape::Flattened900901 => reply(
            StatusCode::OK,
            json!({"code": "900901", "message": "Invalid Credentials",
                "description": "Invalid JWT token. Make sure you have provided the correct security credentials"}),
        ),
    }
}

fn ok_data(data: Value) -> Response {
    reply(
        StatusCode::OK,
        json!({"stat": "Ok", "stCode": 200, "data": data}),
    )
}

async fn limits(State(s): State<Arc<Shared>>, req: Request) -> Response {
    if let Some(answer) = refusal(&s, req.headers()) {
        return answer;
    }
    // The SDK posts a form whose `jData` is JSON; the error for anything
    // else is the sim's own (Kotak's is undocumented).
    let form = Form::<Fields>::from_request(req, &()).await.ok();
    let j_data = form.as_ref().and_then(|f| f.get("jData"));
    if !j_data.is_some_and(|j| serde_json::from_str::<Value>(j).is_ok_and(|v| v.is_object())) {
        let body = json!({"stat": "Not_Ok", "stCode": 400, "errMsg": "jData must be a JSON object in a form body"});
        return reply(StatusCode::BAD_REQUEST, body);
    }
    ok_data(
        json!([{"seg": "ALL", "exch": "ALL", "prod": "ALL", "Net": "250000.00",
        "MarginUsed": "0.00", "CollateralValue": "250000.00"}]),
    )
}

async fn orders(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Some(answer) = refusal(&s, &h) {
        return answer;
    }
    ok_data(
        json!([{"nOrdNo": "250101000000001", "trdSym": "NIFTY-EQ", "exSeg": "nse_cm",
        "trnsTp": "B", "qty": 1, "prc": "0.00", "prcTp": "MKT", "ordSt": "complete"}]),
    )
}

async fn positions(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Some(answer) = refusal(&s, &h) {
        return answer;
    }
    ok_data(
        json!([{"trdSym": "NIFTY-EQ", "exSeg": "nse_cm", "prod": "CNC",
        "flBuyQty": "1", "flSellQty": "0", "buyAmt": "0.00", "sellAmt": "0.00"}]),
    )
}

/// `GET portfolio/v2/positions`, where kotakneoapi 3.x's `positions()` goes
/// (its `settings.py`; `quick/user/positions` is the older path). Same
/// session checks as the other post-login calls; the answer has the fields
/// of the SDK's documented sample (raw strings, `tok`, carry-forward
/// quantities and `ltp`), made-up values.
async fn positions_v2(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    if let Some(answer) = refusal(&s, &h) {
        return answer;
    }
    ok_data(json!([{
        "actId": "DEMO1", "prod": "NRML", "exSeg": "nse_fo", "trdSym": "NIFTY26DECFUT",
        "sym": "NIFTY", "tok": "35001", "type": "FUTIDX", "series": "XX", "optTp": "XX",
        "stkPrc": "0.00", "lotSz": "75", "brdLtQty": 75, "multiplier": "1",
        "precision": "2", "prcNum": "1", "prcDen": "1", "genNum": "1", "genDen": "1",
        "cfBuyQty": "0", "cfSellQty": "0", "cfBuyAmt": "0.00", "cfSellAmt": "0.00",
        "flBuyQty": "75", "flSellQty": "0", "buyAmt": "1800000.00", "sellAmt": "0.00",
        "ltp": "24010.00", "sqrFlg": "Y", "posFlg": "true", "expDt": "29 Dec, 2026",
        "hsUpTm": "2026/11/30 10:15:00"
    }]))
}
