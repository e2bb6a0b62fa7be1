//! Tests against the real server on 127.0.0.1:0 with reqwest.
//!
//! TOTP codes are only good for the current 30 s step, so every login pins
//! the sim clock 10 s into a step (`pin`): a code computed then stays
//! current for the ~19 s a test needs, whatever the real time.

use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};

use super::*;

async fn sim() -> KotakSim {
    KotakSim::start(KotakSimConfig::default()).await.unwrap()
}

/// Sets the sim clock `secs_ahead` (± up to 30 s) ahead of real time, 10 s
/// into a TOTP step; returns the offset.
fn pin(sim: &KotakSim, secs_ahead: i64) -> i64 {
    let real = Utc::now().timestamp();
    let off = secs_ahead + (10 - (real + secs_ahead)).rem_euclid(STEP_SECS);
    sim.set_clock_offset(off);
    off
}

/// The demo user's code for `step`.
fn code(step: i64) -> String {
    code_for(&totp_of(&KotakSimUser::demo().totp_seed).unwrap(), step).unwrap()
}

/// The sim clock's current step, given its offset.
fn step_now(off: i64) -> i64 {
    step_of(Utc::now() + chrono::Duration::seconds(off))
}

fn with_keys(rb: RequestBuilder, access: &str) -> RequestBuilder {
    rb.header("Authorization", access)
        .header("neo-fin-key", "neotradeapi")
}

async fn send(rb: RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    // Null when the body is not JSON (injected HTML).
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn login_body(totp: &str) -> Value {
    let u = KotakSimUser::demo();
    json!({"mobileNumber": u.mobile, "ucc": u.ucc, "totp": totp})
}

async fn login_raw(sim: &KotakSim, access: &str, body: Value) -> (u16, Value) {
    let url = format!("{}/login/1.0/tradeApiLogin", sim.base_url());
    send(with_keys(Client::new().post(url), access).json(&body)).await
}

async fn login(sim: &KotakSim, totp: &str) -> (u16, Value) {
    login_raw(sim, &KotakSimUser::demo().access_token, login_body(totp)).await
}

async fn validate(sim: &KotakSim, view: &Value, mpin: &str) -> (u16, Value) {
    let url = format!("{}/login/1.0/tradeApiValidate", sim.base_url());
    let rb = with_keys(Client::new().post(url), &KotakSimUser::demo().access_token)
        .header("sid", view["sid"].as_str().unwrap_or_default())
        .header("Auth", view["token"].as_str().unwrap_or_default())
        .json(&json!({ "mpin": mpin }));
    send(rb).await
}

/// A trade session's `data`, logging in during TOTP window `window` (each
/// login needs its own window: codes are single-use).
async fn full_login(sim: &KotakSim, window: i64) -> Value {
    let off = pin(sim, window * STEP_SECS);
    let (status, body) = login(sim, &code(step_now(off))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = validate(sim, &body["data"], "123456").await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// A post-login call with the session's token and sid.
/// A post-login call: `path` under `quick/user/`, or a full path when it
/// has a `/` (`portfolio/v2/positions`).
async fn call(sim: &KotakSim, path: &str, trade: &Value) -> (u16, Value) {
    let url = if path.contains('/') {
        format!("{}/{path}", sim.base_url())
    } else {
        format!("{}/quick/user/{path}", sim.base_url())
    };
    let c = Client::new();
    let rb = if path == "limits" {
        c.post(url)
            .form(&[("jData", r#"{"seg":"ALL","exch":"ALL","prod":"ALL"}"#)])
    } else {
        c.get(url)
    };
    let rb = rb
        .header("Auth", trade["token"].as_str().unwrap_or_default())
        .header("Sid", trade["sid"].as_str().unwrap_or_default())
        .header("neo-fin-key", "neotradeapi");
    send(rb).await
}

fn claims(token: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(&[]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

fn fault() -> Value {
    json!({"fault": {"code": 900901, "message": "Invalid Credentials",
        "description": "Invalid Credentials. Make sure you have provided the correct security credentials"}})
}

fn date_of(r: &reqwest::Response) -> DateTime<Utc> {
    let d = r.headers()["date"].to_str().unwrap();
    DateTime::parse_from_rfc2822(d).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn two_step_login_then_post_login_calls() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let (status, body) = login(&sim, &code(step_now(off))).await;
    assert_eq!(status, 200, "{body}");
    let view = &body["data"];
    assert_eq!(
        (&view["kType"], &view["status"], &view["ucc"]),
        (&json!("View"), &json!("success"), &json!("DEMO1"))
    );
    assert_eq!(
        (&view["greetingName"], &view["dataCenter"]),
        (&json!("DEMO USER"), &json!("gdc"))
    );
    let (status, body) = validate(&sim, view, "123456").await;
    assert_eq!(status, 200, "{body}");
    let trade = &body["data"];
    assert_eq!(
        (&trade["kType"], &trade["status"], &trade["hsServerId"]),
        (&json!("Trade"), &json!("success"), &json!(""))
    );
    assert_eq!(trade["baseUrl"], sim.base_url());
    assert!(trade["rid"].is_string());
    // Feed URLs only when a test asks for them; the answer is kept for tests.
    assert!(trade.get("feedUrl").is_none() && trade.get("rtUrl").is_none());
    assert_eq!(sim.last_trade_answer().as_ref(), Some(trade));
    for path in ["limits", "orders", "positions", "portfolio/v2/positions"] {
        let (status, body) = call(&sim, path, trade).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            (&body["stat"], &body["stCode"]),
            (&json!("Ok"), &json!(200))
        );
        assert!(!body["data"].as_array().unwrap().is_empty());
    }
    let t = trade["token"].as_str().unwrap();
    let c = claims(t);
    assert_eq!(c["sub"], "DEMO1");
    assert!(c["jti"].is_string() && c["iat"].is_i64() && c["exp"].is_i64());
    let text = c.to_string();
    assert!(!text.contains("123456") && !text.contains("JBSWY3DP"));
    assert!(sim.is_token_valid(t));
    let want: Vec<&str> = [&view["token"], &view["sid"], &trade["token"], &trade["sid"]]
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(sim.issued_tokens(), want);
    assert_eq!(
        (
            sim.login_count(),
            sim.validate_count(),
            sim.successful_logins()
        ),
        (1, 1, 1)
    );
    // The view token is no trade token, and the sid must be the session's.
    assert_eq!(call(&sim, "orders", view).await.0, 401);
    let wrong_sid = json!({"token": t, "sid": view["sid"]});
    assert_eq!(call(&sim, "orders", &wrong_sid).await.0, 401);
    // Limits wants its form body.
    let r = Client::new()
        .post(format!("{}/quick/user/limits", sim.base_url()))
        .header("Auth", t)
        .header("Sid", trade["sid"].as_str().unwrap())
        .header("neo-fin-key", "neotradeapi")
        .json(&json!({"seg": "ALL"}));
    assert_eq!(send(r).await.0, 400);
    // No neo-fin-key: the gateway fault.
    let r = Client::new()
        .get(format!("{}/quick/user/orders", sim.base_url()))
        .header("Auth", t)
        .header("Sid", trade["sid"].as_str().unwrap());
    assert_eq!(send(r).await, (401, fault()));
}

#[tokio::test]
async fn login_and_validate_failure_shapes() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    let access = KotakSimUser::demo().access_token;
    let body = login_body(&good);
    assert_eq!(
        login_raw(&sim, &format!("Bearer {access}"), body.clone()).await,
        (401, fault())
    );
    let url = format!("{}/login/1.0/tradeApiLogin", sim.base_url());
    let no_fin_key = Client::new()
        .post(&url)
        .header("Authorization", &access)
        .json(&body);
    assert_eq!(send(no_fin_key).await, (401, fault()));
    let missing = |f: &str| json!({"error": [{"code": "400", "message": format!("Missing required field '{f}'")}]});
    let no_mobile = json!({"ucc": "DEMO1", "totp": good});
    assert_eq!(
        login_raw(&sim, &access, no_mobile).await,
        (400, missing("MobileNumber"))
    );
    let no_totp = json!({"mobileNumber": "+919999900001", "ucc": "DEMO1"});
    assert_eq!(
        login_raw(&sim, &access, no_totp).await,
        (400, missing("Totp"))
    );
    let bad_ucc = json!({"mobileNumber": "+919999900001", "ucc": "XX9", "totp": good});
    assert_eq!(
        login_raw(&sim, &access, bad_ucc).await,
        (
            200,
            json!({"stCode": 429, "errMsg": "Invalid UCC", "status": "failure"})
        )
    );
    let invalid =
        json!({"status": "error", "message": "Invalid credentials or TOTP.", "errorCode": "401"});
    let ten_digits = json!({"mobileNumber": "9999900001", "ucc": "DEMO1", "totp": good});
    assert_eq!(
        login_raw(&sim, &access, ten_digits).await,
        (401, invalid.clone())
    );
    let wrong = if good == "000000" { "111111" } else { "000000" };
    assert_eq!(login(&sim, wrong).await, (401, invalid));
    assert!(sim.issued_tokens().is_empty());
    // Not one of those spent the code.
    let (status, view) = login(&sim, &good).await;
    assert_eq!(status, 200);
    let view = &view["data"];

    let mut forged = view.clone();
    forged["token"] = json!("not-a-token");
    assert_eq!(validate(&sim, &forged, "123456").await, (401, fault()));
    let mut wrong_sid = view.clone();
    wrong_sid["sid"] = json!("not-the-sid");
    assert_eq!(validate(&sim, &wrong_sid, "123456").await, (401, fault()));
    assert_eq!(
        validate(&sim, view, "654321").await,
        (
            200,
            json!({"stCode": 401, "errMsg": "Invalid MPIN", "status": "failure"})
        )
    );
    assert_eq!(validate(&sim, view, "").await, (400, missing("Mpin")));
    assert_eq!(validate(&sim, view, "123456").await.0, 200);
    assert_eq!(
        (
            sim.login_count(),
            sim.validate_count(),
            sim.successful_logins()
        ),
        (8, 5, 1)
    );
}

#[tokio::test]
async fn totp_current_step_only_and_single_use() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let step = step_now(off);
    assert_eq!(login(&sim, &code(step - 1)).await.0, 401);
    assert_eq!(login(&sim, &code(step + 1)).await.0, 401);
    assert_eq!(login(&sim, "12345x").await.0, 401);
    assert_eq!(login(&sim, &code(step)).await.0, 200);
    assert_eq!(login(&sim, &code(step)).await.0, 401, "replay");
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
            (step, Some(step), true),
            (step, Some(step), false),
        ]
    );
    let at = sim.totp_attempts()[0].at_unix_ms;
    assert_eq!(at.div_euclid(30_000), step);
    // Seed 000: a code read from a row minutes old matches no window.
    assert_eq!(login(&sim, &code(step - 4)).await.0, 401);
    assert_eq!(sim.totp_attempts()[5].matched_step, None);
}

#[tokio::test]
async fn clock_offset_moves_totp_check_and_date_header() {
    let sim = sim().await;
    let off = pin(&sim, 3600);
    let real_step = step_of(Utc::now());
    assert_eq!(login(&sim, &code(real_step)).await.0, 401);
    assert_eq!(sim.totp_attempts()[0].matched_step, None);
    assert_eq!(login(&sim, &code(step_now(off))).await.0, 200);

    let c = Client::new();
    let r = c.head(format!("{}/", sim.base_url())).send().await.unwrap();
    let skew = (date_of(&r) - Utc::now()).num_seconds();
    assert!(
        (off - 2..=off + 1).contains(&skew),
        "skew {skew}, offset {off}"
    );
    let r = c
        .get(format!("{}/no/such/path", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!((date_of(&r) - Utc::now()).num_seconds() >= off - 2);
    // A clock before 1970 still gets a Date (and no panic).
    sim.set_clock_offset(-60 * 366 * 86_400);
    let r = c.head(format!("{}/", sim.base_url())).send().await.unwrap();
    assert!(date_of(&r).timestamp() < 0);
}

#[tokio::test]
async fn injected_login_faults() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    sim.fail_next_logins(1, KotakFail::ServerError(503));
    sim.fail_next_logins(1, KotakFail::Status424);
    sim.fail_next_logins(1, KotakFail::Html);
    sim.fail_next_logins(1, KotakFail::WrongTotp);
    sim.fail_next_logins(1, KotakFail::WrongUcc);
    sim.fail_next_logins(1, KotakFail::BadAccessToken);
    sim.fail_next_logins(1, KotakFail::WrongMpin);
    assert_eq!(
        login(&sim, &good).await,
        (
            503,
            json!({"stCode": 503, "errMsg": "Internal server error", "status": "failure"})
        )
    );
    assert_eq!(
        login(&sim, &good).await,
        (
            424,
            json!({"status": "error", "message": "Temporary backend issue, retry later", "errorCode": "424"})
        )
    );
    let url = format!("{}/login/1.0/tradeApiLogin", sim.base_url());
    let r = with_keys(Client::new().post(url), &KotakSimUser::demo().access_token)
        .json(&login_body(&good))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(login(&sim, &good).await.0, 401);
    assert_eq!(login(&sim, &good).await.1["stCode"], 429);
    assert_eq!(login(&sim, &good).await, (401, fault()));
    // Each injected refusal recorded the code without spending it.
    let attempts = sim.totp_attempts();
    assert_eq!(attempts.len(), 6);
    assert!(
        attempts
            .iter()
            .all(|a| !a.accepted && a.matched_step == Some(a.step))
    );
    let (status, view) = login(&sim, &good).await;
    assert_eq!(status, 200);
    // WrongMpin waited for the validate step.
    assert_eq!(
        validate(&sim, &view["data"], "123456").await.1["errMsg"],
        "Invalid MPIN"
    );
    assert_eq!(validate(&sim, &view["data"], "123456").await.0, 200);
    assert_eq!(
        (
            sim.login_count(),
            sim.validate_count(),
            sim.successful_logins()
        ),
        (7, 2, 1)
    );
}

#[tokio::test]
async fn timeout_fault_logs_in_and_spends_the_code() {
    let sim = sim().await;
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    sim.fail_next_logins(1, KotakFail::Timeout(Duration::from_millis(400)));
    let quick = Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let url = format!("{}/login/1.0/tradeApiLogin", sim.base_url());
    let err = with_keys(quick.post(url), &KotakSimUser::demo().access_token)
        .json(&login_body(&good))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // The server issued a view token although the client gave up, so the
    // same code is now a replay: a retry needs the next window.
    assert_eq!(sim.issued_tokens().len(), 2);
    assert_eq!(login(&sim, &good).await.0, 401);
    let off = pin(&sim, STEP_SECS);
    assert_eq!(login(&sim, &code(step_now(off))).await.0, 200);
}

#[tokio::test]
async fn kill_after_drops_tokens_whose_exp_is_far() {
    let sim = sim().await;
    sim.set_trade_token_lifetime(Some(Duration::from_secs(3600)));
    sim.set_kill_after(Some(Duration::from_millis(300)));
    let trade = full_login(&sim, 0).await;
    assert_eq!(call(&sim, "limits", &trade).await.0, 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        call(&sim, "limits", &trade).await,
        (401, json!({"message": "Invalid session, please re-login"}))
    );
    let t = trade["token"].as_str().unwrap();
    assert!(!sim.is_token_valid(t));
    let exp = brokerd_core::jwt::expiry(t).unwrap();
    let iat = claims(t)["iat"].as_i64().unwrap();
    assert_eq!(exp.timestamp() - iat, 3600);
    // A fresh login gets a fresh 300 ms.
    let again = full_login(&sim, 1).await;
    assert_eq!(call(&sim, "orders", &again).await.0, 200);
    sim.set_kill_after(None);
    assert!(sim.is_token_valid(t), "kill-after is read at check time");
}

#[tokio::test]
async fn reject_all_now_and_one_session_per_account() {
    let sim = sim().await;
    sim.set_trade_token_lifetime(Some(Duration::from_secs(3600)));
    let first = full_login(&sim, 0).await;
    let second = full_login(&sim, 1).await;
    // Kotak allows several sessions by default.
    assert_eq!(call(&sim, "orders", &first).await.0, 200);
    assert_eq!(call(&sim, "orders", &second).await.0, 200);
    sim.set_one_session_per_account(true);
    let third = full_login(&sim, 2).await;
    assert_eq!(call(&sim, "orders", &first).await.0, 401);
    assert_eq!(call(&sim, "orders", &second).await.0, 401);
    assert_eq!(call(&sim, "orders", &third).await.0, 200);

    let off = pin(&sim, 3 * STEP_SECS);
    let (_, view) = login(&sim, &code(step_now(off))).await;
    sim.reject_all_now();
    assert_eq!(call(&sim, "orders", &third).await.0, 401);
    assert!(!sim.is_token_valid(third["token"].as_str().unwrap()));
    assert_eq!(
        validate(&sim, &view["data"], "123456").await,
        (401, fault())
    );
    let fresh = full_login(&sim, 4).await;
    assert_eq!(call(&sim, "orders", &fresh).await.0, 200);
    assert_eq!(sim.successful_logins(), 4);
}

#[tokio::test]
async fn dead_shapes_and_ip_rules() {
    let sim = sim().await;
    let trade = full_login(&sim, 0).await;
    let dead = json!({"token": "stale-token", "sid": trade["sid"]});
    let shapes = [
        (
            DeadShape::Http401,
            401,
            json!({"message": "Invalid session, please re-login"}),
        ),
        (
            DeadShape::Code100022,
            200,
            json!({"stCode": 100022, "errMsg": "invalid session token", "stat": "Not_Ok"}),
        ),
        (DeadShape::Fault900901, 401, fault()),
        (
            DeadShape::Flattened900901,
            200,
            json!({"code": "900901", "message": "Invalid Credentials",
                "description": "Invalid JWT token. Make sure you have provided the correct security credentials"}),
        ),
    ];
    for (shape, status, body) in shapes {
        sim.set_dead_shape(shape);
        for path in ["positions", "portfolio/v2/positions"] {
            assert_eq!(
                call(&sim, path, &dead).await,
                (status, body.clone()),
                "{path} {shape:?}"
            );
        }
    }
    sim.set_ip_rule(Some(IpRule::NotWhitelisted));
    assert_eq!(
        call(&sim, "limits", &trade).await,
        (200, json!({"stCode": 100008, "errMsg": "unauthorized"}))
    );
    sim.set_ip_rule(Some(IpRule::SessionIpMismatch));
    assert_eq!(
        call(&sim, "orders", &trade).await,
        (
            200,
            json!({"stCode": 1037, "errMsg": "session ip doesnt match with reqest ip"})
        )
    );
    // A dead session is dead first; the IP rule is no reason to log in.
    assert_eq!(call(&sim, "orders", &dead).await.1["code"], "900901");
    assert!(sim.is_token_valid(trade["token"].as_str().unwrap()));
    sim.set_ip_rule(None);
    assert_eq!(call(&sim, "orders", &trade).await.0, 200);
}

#[tokio::test]
async fn default_exp_is_the_next_ist_midnight() {
    let sim = sim().await;
    let ist = chrono::FixedOffset::east_opt(19_800).unwrap();
    // 2025-11-06 09:15:06 IST, the seed-001 login (6 s into a step).
    let at = |d: u32, h: u32, m: u32, s: u32| {
        let t = ist.with_ymd_and_hms(2025, 11, d, h, m, s).unwrap();
        let off = t.timestamp() - Utc::now().timestamp();
        sim.set_clock_offset(off);
        off
    };
    let exp_of = |trade: &Value| {
        brokerd_core::jwt::expiry(trade["token"].as_str().unwrap())
            .unwrap()
            .with_timezone(&ist)
    };
    let sim = &sim;
    let login_now = |off: i64| async move {
        let (status, view) = login(sim, &code(step_now(off))).await;
        assert_eq!(status, 200, "{view}");
        validate(sim, &view["data"], "123456").await.1["data"].clone()
    };
    let morning = login_now(at(6, 9, 15, 6)).await;
    let midnight = ist.with_ymd_and_hms(2025, 11, 7, 0, 0, 0).unwrap();
    assert_eq!(exp_of(&morning), midnight);
    // Logged in 2 s before midnight: dead 2 s later, by the sim clock.
    let late = login_now(at(6, 23, 59, 58)).await;
    assert_eq!(exp_of(&late), midnight);
    assert_eq!(call(sim, "orders", &late).await.0, 200);
    at(7, 0, 0, 3);
    assert_eq!(call(sim, "orders", &late).await.0, 401);
    // Logged in just after midnight: a whole day.
    let early = login_now(at(7, 0, 0, 4)).await;
    assert_eq!(exp_of(&early), midnight + chrono::Duration::days(1));
}

#[tokio::test]
async fn latency_control_surface_and_shutdown() {
    let sim = sim().await;
    let c = Client::new();
    let url = |p: &str| format!("{}/_sim/{p}", sim.base_url());
    assert_eq!(
        c.post(url("fail_next?mode=html&n=2"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.post(url("fail_next?mode=bogus"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    assert_eq!(login(&sim, &good).await.0, 502);
    assert_eq!(login(&sim, &good).await.0, 502);
    c.post(url("fail_next?mode=not_found"))
        .send()
        .await
        .unwrap();
    assert_eq!(login(&sim, &good).await.0, 404);
    c.post(url("fail_next?mode=wrong_mpin"))
        .send()
        .await
        .unwrap();
    let (_, view) = login(&sim, &good).await;
    assert_eq!(
        validate(&sim, &view["data"], "123456").await.1["stCode"],
        401
    );
    let trade = validate(&sim, &view["data"], "123456").await.1["data"].clone();
    c.post(url("kill_after?ms=0")).send().await.unwrap();
    assert_eq!(call(&sim, "orders", &trade).await.0, 401);
    c.post(url("kill_after")).send().await.unwrap();
    assert_eq!(call(&sim, "orders", &trade).await.0, 200);
    assert_eq!(
        c.post(url("reject_all")).send().await.unwrap().status(),
        200
    );
    let (_, stats) = send(c.get(url("stats"))).await;
    let d = &stats["data"];
    assert_eq!((&d["logins"], &d["validates"]), (&json!(4), &json!(2)));
    assert_eq!(
        (&d["successful_logins"], &d["live_sessions"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(d["totp_step"], step_now(off));

    sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(send(c.get(url("stats"))).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.set_latency(Duration::ZERO);

    sim.shutdown().await;
    assert!(c.get(url("stats")).send().await.is_err());
}

#[tokio::test]
async fn a_bad_seed_fails_start_without_echoing_it() {
    let user = KotakSimUser {
        totp_seed: "not base32 at all!".into(),
        ..KotakSimUser::demo()
    };
    let cfg = KotakSimConfig {
        users: vec![user],
        ..Default::default()
    };
    let Err(err) = KotakSim::start(cfg).await else {
        panic!("a bad seed must fail start");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(!err.to_string().contains("base32 at all"));
    // Grouped lower-case seeds, as authenticator apps show them, are fine.
    let user = KotakSimUser {
        totp_seed: "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp".into(),
        ..KotakSimUser::demo()
    };
    let cfg = KotakSimConfig {
        users: vec![user],
        ..Default::default()
    };
    assert!(KotakSim::start(cfg).await.is_ok());
}

#[tokio::test]
async fn held_logins_are_processed_but_answered_only_when_released() {
    let sim = sim().await;
    let c = Client::new();
    let url = |p: &str| format!("{}/_sim/{p}", sim.base_url());
    let off = pin(&sim, 0);
    let good = code(step_now(off));
    assert_eq!(
        c.post(url("hold_logins?on=maybe"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        c.post(url("hold_logins?on=true"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A client that gives up while its answer is held: the code arrived and
    // is spent, and the held answer stops counting once it is gone.
    let abandoned = {
        let sim = sim.clone();
        let good = good.clone();
        tokio::spawn(async move { login(&sim, &good).await })
    };
    for _ in 0..200 {
        if sim.held_logins() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.held_logins(), 1);
    let attempts = sim.totp_attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].matched_step, Some(step_now(off)));
    assert!(attempts[0].accepted, "processed while held");
    abandoned.abort();
    for _ in 0..200 {
        if sim.held_logins() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.held_logins(), 0, "a client that went away is not held");
    // A waiting client gets its answer when holding is switched off.
    let waiting = {
        let sim = sim.clone();
        tokio::spawn(async move { login(&sim, &code(step_now(off))).await })
    };
    for _ in 0..200 {
        if sim.held_logins() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, stats) = send(c.get(url("stats"))).await;
    assert_eq!(
        (&stats["data"]["held_logins"], &stats["data"]["hold_logins"]),
        (&json!(1), &json!(true))
    );
    assert!(!waiting.is_finished());
    c.post(url("hold_logins?on=false")).send().await.unwrap();
    let (status, body) = waiting.await.unwrap();
    // The same window's code again: refused as spent, but answered.
    assert_eq!((status, &body["errorCode"]), (401, &json!("401")));
    let (_, list) = send(c.get(url("totp_attempts"))).await;
    let list = list["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["matched_step"], json!(step_now(off)));
    assert_eq!(list[1]["accepted"], json!(false));
    assert!(list[1].get("code").is_none() && list[1].get("totp").is_none());
}
