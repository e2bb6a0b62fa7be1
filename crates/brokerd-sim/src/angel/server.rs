//! The SmartAPI endpoints: login, renewal, profile, a protected call and
//! logout, each behind the header check every SmartAPI call gets, and the
//! layer in front of them all that adds latency and stamps `Date` from the
//! sim clock.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::shapes::{self, failure, failure_strings, gateway, success};
use super::{
    AngelFail, DeadCode, DeadShape, Endpoint, Inner, Refusal, SeenHeaders, Session, Shared,
    TotpAttempt, after, code_for, control, step_of,
};

/// The paths, as the SDKs spell them.
pub(super) const LOGIN: &str = "/rest/auth/angelbroking/user/v1/loginByPassword";
pub(super) const RENEW: &str = "/rest/auth/angelbroking/jwt/v1/generateTokens";
pub(super) const PROFILE: &str = "/rest/secure/angelbroking/user/v1/getProfile";
pub(super) const RMS: &str = "/rest/secure/angelbroking/user/v1/getRMS";
pub(super) const LOGOUT: &str = "/rest/secure/angelbroking/user/v1/logout";

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(LOGIN, post(login))
        .route(RENEW, post(renew))
        .route(PROFILE, get(profile))
        .route(RMS, get(rms))
        .route(LOGOUT, post(logout))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), stamp))
        .with_state(shared)
}

/// Latency before, `Date` (by the sim clock) after.
async fn stamp(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (d, clock) = {
        let g = s.inner.lock();
        (g.latency, Arc::clone(&g.clock))
    };
    if !d.is_zero() {
        let endpoint = endpoint_of(req.uri().path());
        s.inner.lock().held.push(endpoint);
        // By the sim's base clock: a test's manual clock moves through it.
        let until = clock.now() + d;
        brokerd_core::time::sleep_until(&*clock, until, tokio::time::sleep).await;
        let mut g = s.inner.lock();
        if let Some(i) = g.held.iter().position(|e| *e == endpoint) {
            g.held.swap_remove(i);
        }
    }
    let mut resp = next.run(req).await;
    let now = s.inner.lock().now();
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert(header::DATE, v);
    }
    resp
}

/// Which of the fault endpoints a request's path is.
fn endpoint_of(path: &str) -> Endpoint {
    match path {
        LOGIN => Endpoint::Login,
        RENEW => Endpoint::Renew,
        _ => Endpoint::Call,
    }
}

async fn not_found() -> Response {
    shapes::not_found_page()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)?.to_str().ok().filter(|v| !v.trim().is_empty())
}

/// Why the headers of a call are refused.
enum BadHeaders {
    /// `X-PrivateKey` missing or unknown.
    ApiKey,
    /// A header the SDKs always send is missing or wrong.
    Missing(&'static str),
}

impl BadHeaders {
    /// The gateway's `AG8004` for an unknown key; for a missing header the
    /// real answer is undocumented, the sim's guess is HTTP 400 naming it.
    fn answer(self) -> Response {
        match self {
            Self::ApiKey => gateway(StatusCode::OK, "AG8004", "Invalid API Key"),
            Self::Missing(name) => failure(
                StatusCode::BAD_REQUEST,
                "",
                &format!("Invalid Header - {name}"),
            ),
        }
    }
}

/// The user whose API key is in `X-PrivateKey`, once every header the SDKs
/// send is there.
fn headers_user(s: &Shared, h: &HeaderMap, post: bool) -> Result<usize, BadHeaders> {
    s.inner.lock().last_headers = SeenHeaders {
        user_type: header(h, "x-usertype").unwrap_or_default().into(),
        source_id: header(h, "x-sourceid").unwrap_or_default().into(),
        local_ip: header(h, "x-clientlocalip").unwrap_or_default().into(),
        public_ip: header(h, "x-clientpublicip").unwrap_or_default().into(),
        mac: header(h, "x-macaddress").unwrap_or_default().into(),
    };
    let user = header(h, "x-privatekey")
        .and_then(|k| s.users.iter().position(|u| u.api_key == k))
        .ok_or(BadHeaders::ApiKey)?;
    if header(h, "x-usertype") != Some("USER") {
        return Err(BadHeaders::Missing("X-UserType"));
    }
    if header(h, "x-sourceid") != Some("WEB") {
        return Err(BadHeaders::Missing("X-SourceID"));
    }
    for name in ["X-ClientLocalIP", "X-ClientPublicIP", "X-MACAddress"] {
        if header(h, name).is_none() {
            return Err(BadHeaders::Missing(name));
        }
    }
    if !header(h, "accept").is_some_and(|a| a.contains("application/json")) {
        return Err(BadHeaders::Missing("Accept"));
    }
    if post && !header(h, "content-type").is_some_and(|a| a.starts_with("application/json")) {
        return Err(BadHeaders::Missing("Content-Type"));
    }
    Ok(user)
}

/// String fields of a JSON object body; anything else reads as empty.
fn fields(body: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn text<'a>(f: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    f.get(key)?.as_str().filter(|v| !v.is_empty())
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill(&mut b[..]);
    hex::encode(b)
}

/// The jwt of `Authorization: Bearer …`.
fn bearer(h: &HeaderMap) -> Option<&str> {
    header(h, "authorization")?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// How a refused jwt is answered, per the configured shape.
fn dead_answer(shape: DeadShape, why: Refusal) -> Response {
    let ag = match why {
        Refusal::Missing => DeadCode::Ag8003,
        Refusal::Expired => DeadCode::Ag8002,
        Refusal::Invalid => DeadCode::Ag8001,
    };
    match shape {
        DeadShape::Gateway200 => shapes::dead(ag, StatusCode::OK),
        DeadShape::Gateway401 => shapes::dead(ag, StatusCode::UNAUTHORIZED),
        DeadShape::Ab1010 => shapes::dead(DeadCode::Ab1010, StatusCode::OK),
        DeadShape::Ab1011 => shapes::dead(DeadCode::Ab1011, StatusCode::OK),
    }
}

impl Shared {
    /// An HS512 jwtToken whose payload nests the session's own token under
    /// `token`, as Angel's do; `exp` unless switched off.
    fn jwt(&self, g: &Inner, client_code: &str, now: DateTime<Utc>, exp: DateTime<Utc>) -> String {
        let inner_claims = json!({"sub": client_code, "iat": now.timestamp(),
            "jti": random_token(16), "source": "SPA"});
        let inner = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &inner_claims,
            &self.key,
        )
        .expect("HS256 over a JSON object encodes");
        let mut claims = json!({"username": client_code, "roles": 0, "usertype": "USER",
            "token": inner, "iat": now.timestamp()});
        if !g.no_exp {
            claims["exp"] = json!(exp.timestamp());
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &claims,
            &self.key,
        )
        .expect("HS512 over a JSON object encodes")
    }

    /// Issues a jwtToken, refreshToken and feedToken for `user`.
    fn issue(&self, g: &mut Inner, user: usize) -> Value {
        let now = g.now();
        let expires_at = after(now, g.lifetime);
        let jwt = self.jwt(g, &self.users[user].client_code, now, expires_at);
        let refresh = random_token(24);
        let feed = random_token(16);
        let session = Session {
            user,
            refresh_token: refresh.clone(),
            refresh_expires_at: after(now, g.refresh_lifetime),
            refresh_used: false,
            at: g.clock.now(),
            expires_at,
            revoked: false,
        };
        g.sessions.insert(jwt.clone(), session);
        g.issued
            .extend([jwt.clone(), refresh.clone(), feed.clone()]);
        json!({"jwtToken": jwt, "refreshToken": refresh, "feedToken": feed})
    }

    /// Records one received TOTP and says whether it is accepted: only when
    /// `acceptable`, the code is the current step's and that step's code was
    /// not accepted before. An accepted code is spent.
    fn note_totp(&self, g: &mut Inner, user: Option<usize>, code: &str, acceptable: bool) -> bool {
        let now = g.now();
        let step = step_of(now);
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

/// Sleeps out an injected `Timeout` after the call was processed.
async fn delayed(fault: Option<AngelFail>, answer: Response) -> Response {
    if let Some(AngelFail::Timeout(d)) = fault {
        tokio::time::sleep(d).await;
    }
    answer
}

async fn login(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut g = s.inner.lock();
        g.stats.logins += 1;
        g.next_fault(Endpoint::Login)
    };
    let answer = login_answer(&s, &h, &fields(&body), fault.as_ref());
    delayed(fault, answer).await
}

fn login_answer(
    s: &Shared,
    h: &HeaderMap,
    f: &Map<String, Value>,
    fault: Option<&AngelFail>,
) -> Response {
    let client_code = text(f, "clientcode");
    let known = client_code.and_then(|c| s.users.iter().position(|u| u.client_code == c));
    // Every refusal still records the code, so a test sees each TOTP that
    // reached the sim and which window it was for.
    let refuse = |answer: Response| {
        if let Some(code) = text(f, "totp") {
            s.note_totp(&mut s.inner.lock(), known, code, false);
        }
        answer
    };
    if let Some(answer) = fault.and_then(shapes::injected) {
        return refuse(answer);
    }
    let user = match headers_user(s, h, true) {
        Ok(user) => user,
        Err(bad) => return refuse(bad.answer()),
    };
    let u = &s.users[user];
    if client_code != Some(u.client_code.as_str()) || text(f, "password") != Some(u.pin.as_str()) {
        return refuse(failure_strings("AB1007", "Login Id or password is invalid"));
    }
    let mut g = s.inner.lock();
    let code = text(f, "totp").unwrap_or_default();
    let acceptable = fault != Some(&AngelFail::WrongTotp);
    if !s.note_totp(&mut g, Some(user), code, acceptable) {
        tracing::debug!(client_code = %u.client_code, "angel sim: loginByPassword rejected (totp)");
        return shapes::invalid_totp();
    }
    if g.one_session {
        g.sessions
            .values_mut()
            .filter(|x| x.user == user)
            .for_each(|x| x.revoked = true);
    }
    let mut data = s.issue(&mut g, user);
    g.stats.successful_logins += 1;
    if let Some(state) = text(f, "state") {
        data["state"] = json!(state);
    }
    tracing::debug!(client_code = %u.client_code, "angel sim: session issued");
    success(data)
}

async fn renew(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut g = s.inner.lock();
        g.stats.renewals += 1;
        g.next_fault(Endpoint::Renew)
    };
    let answer = match fault.as_ref().and_then(shapes::injected) {
        Some(answer) => answer,
        None => renew_answer(&s, &h, &fields(&body)),
    };
    delayed(fault, answer).await
}

fn renew_answer(s: &Shared, h: &HeaderMap, f: &Map<String, Value>) -> Response {
    let user = match headers_user(s, h, true) {
        Ok(user) => user,
        Err(bad) => return bad.answer(),
    };
    let mut g = s.inner.lock();
    let jwt = bearer(h);
    let (owner, refresh, refresh_ok) = match g.live(jwt) {
        Ok(x) => (
            x.user,
            x.refresh_token.clone(),
            !x.refresh_used && g.now() < x.refresh_expires_at,
        ),
        Err(why) => return dead_answer(g.dead_shape, why),
    };
    let jwt = jwt.expect("a live session has a token").to_string();
    if owner != user || text(f, "refreshToken") != Some(refresh.as_str()) {
        return shapes::invalid_refresh();
    }
    // The Java SDK's checksum: sha256(api_key + refreshToken + jwt), hex.
    match text(f, "checksum") {
        Some(sum) => {
            let want = hex::encode(Sha256::digest(
                format!("{}{refresh}{jwt}", s.users[user].api_key).as_bytes(),
            ));
            if sum != want {
                return shapes::invalid_refresh();
            }
            g.checksums_seen += 1;
        }
        None if g.require_checksum => return shapes::invalid_refresh(),
        None => {}
    }
    if !refresh_ok {
        return failure(StatusCode::OK, "AB8051", "Refresh Token Expired");
    }
    let revoke_old = g.renew_revokes_old;
    if let Some(old) = g.sessions.get_mut(&jwt) {
        old.refresh_used = true;
        old.revoked |= revoke_old;
    }
    let data = s.issue(&mut g, user);
    g.stats.successful_renewals += 1;
    success(data)
}

/// The common part of the session calls: counted, headers checked, an
/// injected fault answered, the jwt checked. `Ok` carries the user.
fn session_call(
    s: &Shared,
    h: &HeaderMap,
    post: bool,
    count: impl FnOnce(&mut Inner),
) -> (Option<AngelFail>, Result<usize, Response>) {
    let fault = {
        let mut g = s.inner.lock();
        count(&mut g);
        g.next_fault(Endpoint::Call)
    };
    if let Some(answer) = fault.as_ref().and_then(shapes::injected) {
        return (fault, Err(answer));
    }
    let user = match headers_user(s, h, post) {
        Ok(user) => user,
        Err(bad) => return (fault, Err(bad.answer())),
    };
    let g = s.inner.lock();
    let result = match g.live(bearer(h)) {
        Ok(x) if x.user == user => Ok(user),
        // Another app's key with this token: the gateway refuses the token.
        Ok(_) => Err(dead_answer(g.dead_shape, Refusal::Invalid)),
        Err(why) => Err(dead_answer(g.dead_shape, why)),
    };
    (fault, result)
}

async fn profile(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    let (fault, result) = session_call(&s, &h, false, |g| g.stats.profiles += 1);
    let answer = match result {
        Ok(user) => {
            let u = &s.users[user];
            success(json!({"clientcode": u.client_code, "name": u.name,
                "email": "", "mobileno": "", "exchanges": ["NSE", "BSE", "NFO", "MCX"],
                "products": ["MARGIN", "MIS", "NRML", "CNC", "CO", "BO"],
                "lastlogintime": "", "brokerid": "B2C"}))
        }
        Err(answer) => answer,
    };
    delayed(fault, answer).await
}

async fn rms(State(s): State<Arc<Shared>>, h: HeaderMap) -> Response {
    let (fault, result) = session_call(&s, &h, false, |g| g.stats.calls += 1);
    let answer = match result {
        Ok(_) => success(json!({"net": "250000.00", "availablecash": "250000.00",
            "utiliseddebits": "0.00"})),
        Err(answer) => answer,
    };
    delayed(fault, answer).await
}

async fn logout(State(s): State<Arc<Shared>>, h: HeaderMap, body: Bytes) -> Response {
    let (fault, result) = session_call(&s, &h, true, |g| g.stats.logouts += 1);
    let answer = match result {
        Ok(user) => {
            if text(&fields(&body), "clientcode") != Some(s.users[user].client_code.as_str()) {
                failure_strings("AB1007", "Login Id or password is invalid")
            } else {
                let mut g = s.inner.lock();
                if g.logout_kills
                    && let Some(jwt) = bearer(&h)
                    && let Some(x) = g.sessions.get_mut(jwt)
                {
                    x.revoked = true;
                }
                success(json!(""))
            }
        }
        Err(answer) => answer,
    };
    delayed(fault, answer).await
}
