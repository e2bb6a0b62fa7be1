//! Tests against the real server on 127.0.0.1:0 with reqwest.
//!
//! TOTP codes are only good for the current 30 s step, so every login pins
//! the sim clock 10 s into a step (`pin`): a code computed then stays
//! current for the ~19 s a test needs, whatever the real time.

use chrono::Utc;
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::server::{LOGIN, LOGOUT, PROFILE, RENEW, RMS};
use super::*;

async fn sim() -> AngelSim {
    AngelSim::start(AngelSimConfig::default()).await.unwrap()
}

/// Sets the sim clock `secs_ahead` (± up to 30 s) ahead of real time, 10 s
/// into a TOTP step; returns the offset.
fn pin(sim: &AngelSim, secs_ahead: i64) -> i64 {
    let real = Utc::now().timestamp();
    let off = secs_ahead + (10 - (real + secs_ahead)).rem_euclid(STEP_SECS);
    sim.set_clock_offset(off);
    off
}

fn code(step: i64) -> String {
    code_for(&totp_of(&AngelSimUser::demo().totp_seed).unwrap(), step).unwrap()
}

fn step_now(off: i64) -> i64 {
    step_of(Utc::now() + chrono::Duration::seconds(off))
}

/// Every header the SDKs send.
fn with_headers(rb: RequestBuilder) -> RequestBuilder {
    headers_but(rb, "", "")
}

/// The SDKs' headers with `name` set to `value` instead (reqwest appends a
/// header given twice, so the override replaces it here).
fn headers_but(mut rb: RequestBuilder, name: &str, value: &str) -> RequestBuilder {
    let key = AngelSimUser::demo().api_key;
    let all = [
        ("X-PrivateKey", key.as_str()),
        ("X-UserType", "USER"),
        ("X-SourceID", "WEB"),
        ("X-ClientLocalIP", "127.0.0.1"),
        ("X-ClientPublicIP", "106.193.147.98"),
        ("X-MACAddress", "02:00:00:00:00:01"),
        ("Accept", "application/json"),
    ];
    for (n, v) in all {
        rb = rb.header(n, if n == name { value } else { v });
    }
    rb
}

async fn send(rb: RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn login_with(sim: &AngelSim, body: Value) -> (u16, Value) {
    let url = format!("{}{LOGIN}", sim.base_url());
    send(with_headers(Client::new().post(url)).json(&body)).await
}

async fn login(sim: &AngelSim, totp: &str) -> (u16, Value) {
    login_with(
        sim,
        json!({"clientcode": "D12345", "password": "7391", "totp": totp, "state": "s1"}),
    )
    .await
}

/// The tokens of a login in TOTP window `window` (codes are single-use).
async fn full_login(sim: &AngelSim, window: i64) -> Value {
    let off = pin(sim, window * STEP_SECS);
    let (status, body) = login(sim, &code(step_now(off))).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn renew(sim: &AngelSim, jwt: &str, body: Value) -> (u16, Value) {
    let url = format!("{}{RENEW}", sim.base_url());
    send(
        with_headers(Client::new().post(url))
            .bearer_auth(jwt)
            .json(&body),
    )
    .await
}

async fn call(sim: &AngelSim, path: &str, jwt: &str) -> (u16, Value) {
    let url = format!("{}{path}", sim.base_url());
    send(with_headers(Client::new().get(url)).bearer_auth(jwt)).await
}

fn claims(token: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS512);
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(&[]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

fn gateway(code: &str, message: &str) -> Value {
    json!({"success": false, "message": message, "errorCode": code, "data": ""})
}

fn envelope(code: &str, message: &str) -> Value {
    json!({"status": false, "message": message, "errorcode": code, "data": null})
}

fn strings(code: &str, message: &str) -> Value {
    json!({"status": "false", "message": message, "errorcode": code, "data": "null"})
}

#[tokio::test]
async fn login_calls_renew_and_logout() {
    let sim = sim().await;
    let data = full_login(&sim, 0).await;
    let jwt = data["jwtToken"].as_str().unwrap();
    assert!(!jwt.starts_with("Bearer"));
    assert_eq!(data["state"], "s1");
    let c = claims(jwt);
    assert_eq!(c["username"], "D12345");
    assert!(c["exp"].is_i64() && c["iat"].is_i64(), "{c}");
    assert!(
        c["token"].as_str().unwrap().split('.').count() == 3,
        "nested jwt"
    );
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS512);
    let text = c.to_string();
    assert!(!text.contains("7391\"") && !text.contains("MFRGGZDF"));
    let exp = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert_eq!(exp, 24 * 3600);

    let (status, body) = call(&sim, PROFILE, jwt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["status"], &body["data"]["clientcode"]),
        (&json!(true), &json!("D12345"))
    );
    assert_eq!(call(&sim, RMS, jwt).await.0, 200);
    assert_eq!(
        sim.last_headers(),
        SeenHeaders {
            user_type: "USER".into(),
            source_id: "WEB".into(),
            local_ip: "127.0.0.1".into(),
            public_ip: "106.193.147.98".into(),
            mac: "02:00:00:00:00:01".into(),
        }
    );

    let refresh = data["refreshToken"].as_str().unwrap();
    let (status, body) = renew(&sim, jwt, json!({ "refreshToken": refresh })).await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    let new = &body["data"];
    for k in ["jwtToken", "refreshToken", "feedToken"] {
        assert!(new[k].is_string() && new[k] != data[k], "{k} replaced");
    }
    let new_jwt = new["jwtToken"].as_str().unwrap();
    assert!(sim.is_token_valid(jwt), "the old jwt lives on by default");
    // The refresh token is single-use.
    assert_eq!(
        renew(&sim, new_jwt, json!({ "refreshToken": refresh })).await,
        (200, envelope("AB8050", "Invalid Refresh Token"))
    );
    assert_eq!(call(&sim, PROFILE, new_jwt).await.0, 200);

    let url = format!("{}{LOGOUT}", sim.base_url());
    let rb = with_headers(Client::new().post(url))
        .bearer_auth(new_jwt)
        .json(&json!({"clientcode": "D12345"}));
    assert_eq!(
        send(rb).await,
        (
            200,
            json!({"status": true, "message": "SUCCESS", "errorcode": "", "data": ""})
        )
    );
    assert!(!sim.is_token_valid(new_jwt));
    assert_eq!(
        call(&sim, PROFILE, new_jwt).await,
        (200, gateway("AG8001", "Invalid Token"))
    );
    assert_eq!(sim.issued_tokens().len(), 6);
    assert_eq!(
        sim.stats(),
        AngelStats {
            logins: 1,
            successful_logins: 1,
            renewals: 2,
            successful_renewals: 1,
            profiles: 3,
            calls: 1,
            logouts: 1,
        }
    );
}

#[tokio::test]
async fn every_call_checks_the_sdk_headers() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let body = json!({"clientcode": "D12345", "password": "7391", "totp": code(step_now(off))});
    let url = format!("{}{LOGIN}", sim.base_url());
    let bad_key = headers_but(Client::new().post(&url), "X-PrivateKey", "not-the-key").json(&body);
    assert_eq!(
        send(bad_key).await,
        (200, gateway("AG8004", "Invalid API Key"))
    );
    let cases = [
        ("X-UserType", "ADMIN"),
        ("X-SourceID", "APP"),
        ("X-MACAddress", " "),
        ("Accept", "text/html"),
    ];
    for (name, value) in cases {
        let rb = headers_but(Client::new().post(&url), name, value).json(&body);
        let (status, answer) = send(rb).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(name),
            "{answer}"
        );
    }
    // None of those spent the code.
    assert_eq!(login_with(&sim, body).await.0, 200);
    assert!(sim.totp_attempts().iter().filter(|a| a.accepted).count() == 1);
}

#[tokio::test]
async fn totp_current_step_only_and_single_use() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let step = step_now(off);
    let invalid = (200, envelope("AB1050", "Invalid totp"));
    assert_eq!(login(&sim, &code(step - 1)).await, invalid);
    assert_eq!(login(&sim, &code(step + 1)).await, invalid);
    assert_eq!(login(&sim, "12345x").await, invalid);
    // A wrong PIN is refused before the code is looked at: it stays unspent.
    let wrong_pin = json!({"clientcode": "D12345", "password": "9999", "totp": code(step)});
    assert_eq!(
        login_with(&sim, wrong_pin).await,
        (200, strings("AB1007", "Login Id or password is invalid"))
    );
    assert_eq!(login(&sim, &code(step)).await.0, 200);
    assert_eq!(login(&sim, &code(step)).await, invalid, "a reused window");
    let got: Vec<(i64, Option<i64>, bool)> = sim
        .totp_attempts()
        .iter()
        .map(|a| (a.step, a.matched_step, a.accepted))
        .collect();
    assert_eq!(
        got,
        [
            (step, Some(step - 1), false),
            (step, Some(step + 1), false),
            (step, None, false),
            (step, Some(step), false),
            (step, Some(step), true),
            (step, Some(step), false),
        ]
    );
    // The next window's code is good once the clock reaches it.
    let off = pin(&sim, 30);
    assert_eq!(login(&sim, &code(step_now(off))).await.0, 200);
    assert_eq!(sim.stats().successful_logins, 2);
}

#[tokio::test]
async fn renewal_refusals() {
    let sim = sim().await;
    let data = full_login(&sim, 0).await;
    let jwt = data["jwtToken"].as_str().unwrap();
    let refresh = data["refreshToken"].as_str().unwrap();
    assert_eq!(
        renew(&sim, jwt, json!({"refreshToken": "nope"})).await,
        (200, envelope("AB8050", "Invalid Refresh Token"))
    );
    let url = format!("{}{RENEW}", sim.base_url());
    let no_bearer = with_headers(Client::new().post(&url)).json(&json!({"refreshToken": refresh}));
    assert_eq!(
        send(no_bearer).await,
        (200, gateway("AG8003", "Token missing"))
    );
    assert_eq!(
        renew(&sim, "forged", json!({"refreshToken": refresh})).await,
        (200, gateway("AG8001", "Invalid Token"))
    );
    // The Java SDK's checksum: checked when sent, demanded only when told.
    sim.set_require_checksum(true);
    assert_eq!(
        renew(&sim, jwt, json!({"refreshToken": refresh})).await.1["errorcode"],
        "AB8050"
    );
    let bad_sum = json!({"refreshToken": refresh, "checksum": "00"});
    assert_eq!(renew(&sim, jwt, bad_sum).await.1["errorcode"], "AB8050");
    let sum = hex::encode(Sha256::digest(
        format!("demo-angel-api-key{refresh}{jwt}").as_bytes(),
    ));
    sim.set_renew_revokes_old(true);
    let (status, body) = renew(&sim, jwt, json!({"refreshToken": refresh, "checksum": sum})).await;
    assert_eq!((status, &body["status"]), (200, &json!(true)), "{body}");
    assert_eq!(sim.checksums_seen(), 1);
    assert!(!sim.is_token_valid(jwt), "revoked when told to");

    // An expired refresh token, then an expired jwt.
    sim.set_require_checksum(false);
    sim.set_refresh_lifetime(Duration::ZERO);
    let data = full_login(&sim, 1).await;
    let (jwt, refresh) = (
        data["jwtToken"].as_str().unwrap(),
        data["refreshToken"].as_str().unwrap(),
    );
    assert_eq!(
        renew(&sim, jwt, json!({ "refreshToken": refresh })).await,
        (200, envelope("AB8051", "Refresh Token Expired"))
    );
    sim.set_jwt_lifetime(Duration::from_secs(60));
    let data = full_login(&sim, 2).await;
    let jwt = data["jwtToken"].as_str().unwrap();
    sim.set_clock_offset(pin(&sim, 2 * STEP_SECS) + 61);
    assert_eq!(
        renew(&sim, jwt, json!({"refreshToken": data["refreshToken"]})).await,
        (200, gateway("AG8002", "Token Expired"))
    );
    assert_eq!(
        call(&sim, PROFILE, jwt).await,
        (200, gateway("AG8002", "Token Expired"))
    );
}

#[tokio::test]
async fn every_injected_shape() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    let cases: Vec<(AngelFail, u16, Value)> = vec![
        (
            AngelFail::Status(503),
            503,
            envelope("AB1004", "Something Went Wrong, Please Try After Sometime"),
        ),
        (
            AngelFail::Ab1004,
            200,
            envelope("AB1004", "Something Went Wrong, Please Try After Sometime"),
        ),
        (
            AngelFail::Ab2000,
            200,
            envelope("AB2000", "Error not specified"),
        ),
        (
            AngelFail::Ab2001,
            200,
            envelope("AB2001", "Internal Error, Please try after sometime"),
        ),
        (
            AngelFail::WrongTotp,
            200,
            envelope("AB1050", "Invalid totp"),
        ),
        (
            AngelFail::BadCredentials,
            200,
            strings("AB1007", "Login Id or password is invalid"),
        ),
        (
            AngelFail::Blocked,
            200,
            envelope("AB1006", "Client Is Block For Trading"),
        ),
        (
            AngelFail::UserNotFound,
            200,
            envelope("AB1032", "User Not Found"),
        ),
        (
            AngelFail::BadApiKey,
            200,
            gateway("AG8004", "Invalid API Key"),
        ),
        (
            AngelFail::PasswordLoginNotAllowed,
            200,
            envelope(
                "",
                "LoginByPassword is not allowed. Please switch to Login by MPIN now.",
            ),
        ),
        (
            AngelFail::RefreshInvalid,
            200,
            envelope("AB8050", "Invalid Refresh Token"),
        ),
        (
            AngelFail::RefreshExpired,
            200,
            envelope("AB8051", "Refresh Token Expired"),
        ),
        (
            AngelFail::Dead(DeadCode::Ag8002),
            200,
            gateway("AG8002", "Token Expired"),
        ),
        (
            AngelFail::Dead(DeadCode::Ab1010),
            200,
            envelope("AB1010", "AMX Session Expired"),
        ),
        (
            AngelFail::Dead(DeadCode::Ab1011),
            200,
            strings("AB1011", "Client not login"),
        ),
    ];
    for (fail, status, body) in &cases {
        sim.fail_next(Endpoint::Login, 1, fail.clone());
        assert_eq!(
            &login(&sim, &good).await,
            &(*status, body.clone()),
            "{fail:?}"
        );
    }
    // Non-JSON shapes.
    let url = format!("{}{LOGIN}", sim.base_url());
    let raw = |fail: AngelFail| {
        sim.fail_next(Endpoint::Login, 1, fail);
        with_headers(Client::new().post(&url))
            .json(&json!({"clientcode": "D12345", "password": "7391", "totp": good}))
            .send()
    };
    let r = raw(AngelFail::RateLimit).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        "Access denied because of exceeding access rate"
    );
    let r = raw(AngelFail::Waf).await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Request Rejected") && page.contains("support ID"));
    let r = raw(AngelFail::BadGateway).await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().starts_with("<html>"));
    let r = raw(AngelFail::NotFound).await.unwrap();
    assert_eq!(r.status(), 404);
    // None of them spent the code.
    assert_eq!(login(&sim, &good).await.0, 200);
    assert_eq!(sim.stats().successful_logins, 1);

    // Renewal and call queues are their own.
    let data = full_login(&sim, 1).await;
    let jwt = data["jwtToken"].as_str().unwrap();
    sim.fail_next(Endpoint::Renew, 1, AngelFail::RefreshExpired);
    sim.fail_next(Endpoint::Call, 1, AngelFail::Dead(DeadCode::Ag8001));
    sim.fail_next(Endpoint::Call, 1, AngelFail::RateLimit);
    assert_eq!(
        renew(&sim, jwt, json!({"refreshToken": data["refreshToken"]})).await,
        (200, envelope("AB8051", "Refresh Token Expired"))
    );
    assert_eq!(
        call(&sim, RMS, jwt).await,
        (200, gateway("AG8001", "Invalid Token"))
    );
    assert_eq!(call(&sim, RMS, jwt).await, (403, Value::Null));
    assert_eq!(call(&sim, RMS, jwt).await.0, 200, "queue drained");
}

#[tokio::test]
async fn a_timed_out_login_is_processed_and_spends_the_code() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    sim.fail_next(
        Endpoint::Login,
        1,
        AngelFail::Timeout(Duration::from_secs(5)),
    );
    let url = format!("{}{LOGIN}", sim.base_url());
    let r = with_headers(Client::new().post(&url))
        .timeout(Duration::from_millis(200))
        .json(&json!({"clientcode": "D12345", "password": "7391", "totp": good}))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(sim.stats().successful_logins, 1);
    assert_eq!(login(&sim, &good).await.1["errorcode"], "AB1050");
}

#[tokio::test]
async fn dead_shapes_and_what_kills_a_session() {
    let sim = sim().await;
    let data = full_login(&sim, 0).await;
    let jwt = data["jwtToken"].as_str().unwrap().to_string();
    let shapes = [
        (
            DeadShape::Gateway200,
            200,
            gateway("AG8001", "Invalid Token"),
        ),
        (
            DeadShape::Gateway401,
            401,
            gateway("AG8001", "Invalid Token"),
        ),
        (
            DeadShape::Ab1010,
            200,
            envelope("AB1010", "AMX Session Expired"),
        ),
        (
            DeadShape::Ab1011,
            200,
            strings("AB1011", "Client not login"),
        ),
    ];
    for (shape, status, body) in shapes {
        sim.set_dead_shape(shape);
        assert_eq!(call(&sim, RMS, "forged").await, (status, body), "{shape:?}");
    }
    sim.set_dead_shape(DeadShape::Gateway200);
    let url = format!("{}{RMS}", sim.base_url());
    assert_eq!(
        send(with_headers(Client::new().get(url))).await,
        (200, gateway("AG8003", "Token missing"))
    );

    // A second login leaves the first alone unless told otherwise.
    let second = full_login(&sim, 1).await;
    assert!(sim.is_token_valid(&jwt));
    sim.set_one_session_per_account(true);
    let third = full_login(&sim, 2).await;
    assert!(!sim.is_token_valid(&jwt));
    assert!(!sim.is_token_valid(second["jwtToken"].as_str().unwrap()));
    let third = third["jwtToken"].as_str().unwrap();
    assert!(sim.is_token_valid(third));

    sim.set_kill_after(Some(Duration::ZERO));
    assert!(!sim.is_token_valid(third));
    sim.set_kill_after(None);
    assert!(sim.is_token_valid(third));
    sim.reject_all_now();
    assert!(!sim.is_token_valid(third));

    // A logout that does not kill (as users report).
    sim.set_logout_kills(false);
    let fourth = full_login(&sim, 3).await;
    let fourth = fourth["jwtToken"].as_str().unwrap();
    let url = format!("{}{LOGOUT}", sim.base_url());
    let rb = with_headers(Client::new().post(url))
        .bearer_auth(fourth)
        .json(&json!({"clientcode": "D12345"}));
    assert_eq!(send(rb).await.0, 200);
    assert!(sim.is_token_valid(fourth));
}

#[tokio::test]
async fn a_jwt_without_exp_still_ends() {
    let sim = sim().await;
    sim.set_jwt_without_exp(true);
    sim.set_jwt_lifetime(Duration::from_secs(60));
    let data = full_login(&sim, 0).await;
    let jwt = data["jwtToken"].as_str().unwrap();
    assert!(claims(jwt).get("exp").is_none());
    assert!(sim.is_token_valid(jwt));
    sim.set_clock_offset(pin(&sim, 0) + 61);
    assert!(!sim.is_token_valid(jwt));
}

#[tokio::test]
async fn control_surface() {
    let sim = sim().await;
    let c = Client::new();
    let post = |path: &str| c.post(format!("{}/_sim/{path}", sim.base_url())).send();
    assert_eq!(
        post("fail_next?at=renew&n=2&mode=ab8051")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(post("fail_next?mode=waf").await.unwrap().status(), 200);
    assert_eq!(
        post("fail_next?at=call&mode=ag8002")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(post("fail_next?mode=599").await.unwrap().status(), 200);
    assert_eq!(post("fail_next?mode=nope").await.unwrap().status(), 400);
    assert_eq!(post("fail_next?at=x&mode=waf").await.unwrap().status(), 400);
    assert_eq!(
        post("fail_next?mode=timeout&ms=x").await.unwrap().status(),
        400
    );
    assert_eq!(post("dead_shape?shape=ab1011").await.unwrap().status(), 200);
    assert_eq!(post("dead_shape?shape=x").await.unwrap().status(), 400);
    assert_eq!(post("one_session?on=true").await.unwrap().status(), 200);
    assert_eq!(post("kill_after?ms=5").await.unwrap().status(), 200);
    assert_eq!(post("kill_after").await.unwrap().status(), 200);
    assert_eq!(post("reject_all").await.unwrap().status(), 200);
    let stats: Value = c
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["data"]["queued"],
        json!({"login": 2, "renew": 2, "call": 1})
    );
    {
        let g = sim.shared.inner.lock();
        assert_eq!(g.dead_shape, DeadShape::Ab1011);
        assert!(g.one_session && g.kill_after.is_none());
    }
    let off = pin(&sim, 0);
    sim.fail_next(Endpoint::Login, 0, AngelFail::Ab1004);
    let _ = login(&sim, &code(step_now(off))).await;
    let attempts: Value = c
        .get(format!("{}/_sim/totp_attempts", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a = &attempts["data"][0];
    assert_eq!(a["matched_step"], json!(step_now(off)));
    assert_eq!(a["accepted"], json!(false), "the WAF page came first");
    assert!(!attempts.to_string().contains(&code(step_now(off))));
    let r = c
        .get(format!("{}/nowhere", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("date"));
}

#[tokio::test]
async fn a_bad_seed_fails_start_without_echoing_it() {
    let mut user = AngelSimUser::demo();
    user.totp_seed = "NOT*BASE32*SECRETVALUE".into();
    let cfg = AngelSimConfig {
        users: vec![user],
        ..AngelSimConfig::default()
    };
    let err = AngelSim::start(cfg).await.err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(!err.to_string().contains("SECRETVALUE"), "{err}");
}

/// On a manual clock the sim reads no real time: the TOTP window, token
/// expiry, refresh-token expiry and kill-after all follow the clock's moves.
#[tokio::test]
async fn a_manual_clock_drives_windows_expiry_and_kill_after() {
    use brokerd_core::time::{Clock, ManualClock};
    let sim = sim().await;
    // A day back from real time, 10 s into a step: a real-time sim would
    // refuse every code below.
    let start = Utc::now() - chrono::Duration::days(1);
    let start = start - chrono::Duration::seconds(start.timestamp().rem_euclid(STEP_SECS) - 10);
    let clock = ManualClock::new(start);
    sim.set_clock(clock.clone());
    sim.set_jwt_lifetime(Duration::from_secs(60));
    sim.set_refresh_lifetime(Duration::from_secs(30));
    let (status, body) = login(&sim, &code(step_of(clock.now()))).await;
    assert_eq!(status, 200, "{body}");
    let first = body["data"].clone();
    let jwt = first["jwtToken"].as_str().unwrap();
    assert_eq!(sim.totp_attempts()[0].matched_step, Some(step_of(start)));
    // The next window's code is good once the clock, not real time, is there.
    clock.advance(chrono::Duration::seconds(STEP_SECS));
    let (status, body) = login(&sim, &code(step_of(clock.now()))).await;
    assert_eq!(status, 200, "{body}");
    // The first login's refresh token lasts 30 s by the same clock.
    clock.set(start + chrono::Duration::seconds(31));
    let (status, body) = renew(&sim, jwt, json!({"refreshToken": first["refreshToken"]})).await;
    assert_eq!(body["errorcode"], "AB8051", "{status} {body}");
    // 59 s after the first login its token lives; at 60 s it is over.
    clock.set(start + chrono::Duration::seconds(59));
    assert!(sim.is_token_valid(jwt));
    clock.set(start + chrono::Duration::seconds(60));
    assert!(!sim.is_token_valid(jwt));
    // Kill-after counts from the issue on the clock.
    let second = body_of_login(&sim, &clock).await;
    let jwt = second["jwtToken"].as_str().unwrap();
    sim.set_kill_after(Some(Duration::from_secs(10)));
    clock.advance(chrono::Duration::seconds(9));
    assert!(sim.is_token_valid(jwt));
    clock.advance(chrono::Duration::seconds(1));
    assert!(!sim.is_token_valid(jwt));
}

/// A login in the manual clock's current window, 10 s into it first.
async fn body_of_login(sim: &AngelSim, clock: &brokerd_core::time::ManualClock) -> Value {
    use brokerd_core::time::Clock;
    let now = clock.now();
    clock.advance(chrono::Duration::seconds(
        STEP_SECS + 10 - now.timestamp().rem_euclid(STEP_SECS),
    ));
    let (status, body) = login(sim, &code(step_of(clock.now()))).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}
