//! Tests against the real server on 127.0.0.1:0 with reqwest. Checksums
//! here are computed by the tests themselves, not by the client module.

use chrono::Utc;
use reqwest::{Client, Method, redirect};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

const DEMO_KEY: &str = "demo+breeze=key^01";
const DEMO_SECRET: &str = "demo-breeze-secret-key";
const REDIRECT: &str = "https://app.example/breeze/callback";

fn other_app() -> BreezeSimApp {
    BreezeSimApp {
        app_key: "other%app#key".into(),
        secret_key: "other-secret".into(),
        user_id: "OT9999".into(),
        user_name: "OTHER".into(),
        redirect_url: Some("https://other.example/cb?x=1".into()),
    }
}

async fn sim() -> BreezeSim {
    let cfg = BreezeSimConfig {
        apps: vec![BreezeSimApp::demo(), other_app()],
        ..BreezeSimConfig::default()
    };
    let sim = BreezeSim::start(cfg).await.unwrap();
    sim.set_redirect_url(DEMO_KEY, REDIRECT);
    sim
}

fn no_redirects() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

fn login_url(sim: &BreezeSim, app_key: &str) -> String {
    let base = format!("{}/apiuser/login", sim.base_url());
    reqwest::Url::parse_with_params(&base, [("api_key", app_key)])
        .unwrap()
        .to_string()
}

/// The browser step, Query delivery: the session key from `Location`.
async fn browser_login(sim: &BreezeSim, app_key: &str) -> String {
    let r = no_redirects()
        .get(login_url(sim, app_key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    let (_, key) = url.query_pairs().find(|(k, _)| k == "apisession").unwrap();
    key.into_owned()
}

async fn send(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn api(sim: &BreezeSim, path: &str) -> String {
    format!("{}/breezeapi/api/v1/{path}", sim.base_url())
}

async fn customerdetails_raw(sim: &BreezeSim, body: &str) -> (u16, Value) {
    let rb = Client::new()
        .request(Method::GET, api(sim, "customerdetails"))
        .header("Content-Type", "application/json")
        .body(body.to_string());
    send(rb).await
}

async fn customerdetails(sim: &BreezeSim, key: &str, app_key: &str) -> (u16, Value) {
    let body = json!({"SessionToken": key, "AppKey": app_key}).to_string();
    customerdetails_raw(sim, &body).await
}

fn err(status: u16, msg: &str) -> (u16, Value) {
    (
        200,
        json!({"Success": null, "Status": status, "Error": msg}),
    )
}

fn checksum(ts: &str, body: &str, secret: &str) -> String {
    let digest = Sha256::digest(format!("{ts}{body}{secret}").as_bytes());
    format!("token {}", hex::encode(digest))
}

fn now_ts() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}

struct Signed<'a> {
    app_key: &'a str,
    token: &'a str,
    ts: String,
    checksum: String,
    body: &'a str,
}

impl<'a> Signed<'a> {
    fn new(app_key: &'a str, token: &'a str, secret: &str, body: &'a str) -> Self {
        let ts = now_ts();
        let checksum = checksum(&ts, body, secret);
        Self {
            app_key,
            token,
            ts,
            checksum,
            body,
        }
    }

    async fn funds(&self, sim: &BreezeSim) -> (u16, Value) {
        let rb = Client::new()
            .request(Method::GET, api(sim, "funds"))
            .header("X-Checksum", &self.checksum)
            .header("X-Timestamp", &self.ts)
            .header("X-AppKey", self.app_key)
            .header("X-SessionToken", self.token)
            .header("Content-Type", "application/json")
            .body(self.body.to_string());
        send(rb).await
    }
}

fn bad_checksum() -> (u16, Value) {
    err(5, "Authentication Fail :: Invalid Checksum.")
}

/// A fresh session of the demo app: (session key, session token).
async fn session(sim: &BreezeSim) -> (String, String) {
    let key = sim.mint_session_key(DEMO_KEY);
    let (status, body) = customerdetails(sim, &key, DEMO_KEY).await;
    assert_eq!((status, &body["Status"]), (200, &json!(200)), "{body}");
    let token = body["Success"]["session_token"].as_str().unwrap();
    (key, token.to_string())
}

#[tokio::test]
async fn query_delivery_redirects_with_a_fresh_numeric_key() {
    let sim = sim().await;
    let r = no_redirects()
        .get(login_url(&sim, DEMO_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let key = location
        .strip_prefix(&format!("{REDIRECT}?apisession="))
        .unwrap();
    assert!((7..=8).contains(&key.len()), "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_digit()), "{key}");
    let second = browser_login(&sim, DEMO_KEY).await;
    assert_ne!(key, second);
    // A redirect URL with a query of its own gets `&apisession=`.
    let r = no_redirects()
        .get(login_url(&sim, "other%app#key"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://other.example/cb?x=1&apisession="),
        "{location}"
    );
    // The minted key works, once for each login.
    assert_eq!(customerdetails(&sim, key, DEMO_KEY).await.0, 200);
    assert_eq!(customerdetails(&sim, &second, DEMO_KEY).await.0, 200);
    assert_eq!(sim.issued_session_tokens().len(), 2);
}

#[tokio::test]
async fn form_delivery_posts_api_session() {
    let sim = sim().await;
    sim.set_delivery(Delivery::Form);
    let r = no_redirects()
        .get(login_url(&sim, DEMO_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = r.text().await.unwrap();
    let form = format!(r#"<form method="post" action="{REDIRECT}">"#);
    assert!(page.contains(&form), "{page}");
    assert!(
        page.contains("<script>") && page.contains(".submit()"),
        "{page}"
    );
    let marker = r#"<input type="hidden" name="API_Session" value=""#;
    let rest = &page[page.find(marker).unwrap() + marker.len()..];
    let key = &rest[..rest.find('"').unwrap()];
    assert!(key.len() >= 7 && key.bytes().all(|b| b.is_ascii_digit()));
    let (status, body) = customerdetails(&sim, key, DEMO_KEY).await;
    assert_eq!((status, &body["Status"]), (200, &json!(200)));
}

#[tokio::test]
async fn login_page_wants_the_encoded_app_key_and_a_redirect() {
    let sim = sim().await;
    // Unencoded, `+` reads as a space and the key is unknown.
    let raw = format!("{}/apiuser/login?api_key={DEMO_KEY}", sim.base_url());
    let r = no_redirects().get(raw).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("Invalid API key."));
    let r = no_redirects()
        .get(login_url(&sim, "no-such-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A second sim whose demo app has no redirect URL registered.
    let bare = BreezeSim::start(BreezeSimConfig::default()).await.unwrap();
    let r = no_redirects()
        .get(login_url(&bare, DEMO_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("No redirect URL"));
    // The encoded key works, `#` and `%` included.
    assert!(browser_login(&sim, "other%app#key").await.len() >= 7);
    bare.shutdown().await;
}

#[tokio::test]
async fn customerdetails_turns_a_key_into_a_session() {
    let sim = sim().await;
    let key = browser_login(&sim, DEMO_KEY).await;
    let (status, body) = customerdetails(&sim, &key, DEMO_KEY).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&body["Status"], &body["Error"]),
        (&json!(200), &Value::Null)
    );
    let s = &body["Success"];
    assert_eq!(s["idirect_userid"], "BZ1234");
    assert_eq!(s["idirect_user_name"], "DEMO BREEZE");
    assert_eq!(s["exg_status"]["FNO"], "Y");
    assert_eq!(s["segments_allowed"]["Currency"], "N");
    assert_eq!(s["commodity_allowed"], "C");
    let token = s["session_token"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), format!("BZ1234:{key}"));
    assert!(sim.is_session_valid(token));
    assert!(!sim.is_session_valid("QloxMjM0OjEyMzQ1Njc="));
    // Asking again (how a client validates) gives the same token.
    let (_, again) = customerdetails(&sim, &key, DEMO_KEY).await;
    assert_eq!(again["Success"]["session_token"], token);
    assert_eq!(sim.issued_session_tokens(), vec![token.to_string()]);
    assert_eq!(sim.customerdetails_count(), 2);
}

#[tokio::test]
async fn customerdetails_refusals() {
    let sim = sim().await;
    let key = sim.mint_session_key(DEMO_KEY);
    for body in ["", "not json", r#"{"SessionToken":"1234567"}"#, "[]"] {
        let (status, b) = customerdetails_raw(&sim, body).await;
        assert_eq!(
            (status, &b["Status"], &b["Success"]),
            (200, &json!(500), &Value::Null)
        );
        assert!(b["Error"].as_str().unwrap().contains("SessionToken"), "{b}");
    }
    assert_eq!(
        customerdetails(&sim, "0000000", DEMO_KEY).await,
        err(500, "Invalid session.")
    );
    // Another app's key is no session of this app.
    let other = sim.mint_session_key("other%app#key");
    assert_eq!(
        customerdetails(&sim, &other, DEMO_KEY).await,
        err(500, "Invalid session.")
    );
    assert_eq!(
        customerdetails(&sim, &key, "demo breeze=key^01").await,
        err(500, "Public Key does not exist.")
    );
    // An unknown app key's mint is a key nobody owns.
    let stray = sim.mint_session_key("nobody");
    assert_eq!(
        customerdetails(&sim, &stray, DEMO_KEY).await,
        err(500, "Invalid session.")
    );
    assert!(sim.issued_session_tokens().is_empty());
    // None of that spent the good key.
    assert_eq!(customerdetails(&sim, &key, DEMO_KEY).await.0, 200);
    assert_eq!(sim.customerdetails_count(), 9);
}

#[tokio::test]
async fn unused_keys_expire_but_sessions_outlive_the_ttl() {
    let sim = sim().await;
    sim.set_session_key_ttl(Duration::from_millis(150));
    let (used, token) = session(&sim).await;
    let unused = sim.mint_session_key(DEMO_KEY);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        customerdetails(&sim, &unused, DEMO_KEY).await,
        err(500, "Resource not available.")
    );
    assert_eq!(customerdetails(&sim, &used, DEMO_KEY).await.0, 200);
    assert!(sim.is_session_valid(&token));
    let signed = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    assert_eq!(signed.funds(&sim).await.1["Status"], 200);
}

#[tokio::test]
async fn killed_sessions_answer_resource_not_available() {
    let sim = sim().await;
    let (key, token) = session(&sim).await;
    let pending = sim.mint_session_key(DEMO_KEY);
    sim.kill_all_sessions();
    assert!(!sim.is_session_valid(&token));
    for k in [&key, &pending] {
        assert_eq!(
            customerdetails(&sim, k, DEMO_KEY).await,
            err(500, "Resource not available.")
        );
    }
    let signed = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    assert_eq!(signed.funds(&sim).await, bad_checksum());
    // A new login works again.
    let (_, fresh) = session(&sim).await;
    assert!(sim.is_session_valid(&fresh));
}

#[tokio::test]
async fn funds_checks_checksum_session_timestamp_and_secret() {
    let sim = sim().await;
    let (_, token) = session(&sim).await;
    let ok = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    let (status, body) = ok.funds(&sim).await;
    assert_eq!(
        (status, &body["Status"], &body["Error"]),
        (200, &json!(200), &Value::Null)
    );
    assert_eq!(body["Success"]["bank_account"], "XXXXXXXX1234");
    assert_eq!(body["Success"]["total_bank_balance"], 100000.0);
    assert_eq!(body["Success"]["unallocated_balance"], "0");
    // One byte of the body changed after signing.
    let mut changed = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    changed.body = "{ }";
    assert_eq!(changed.funds(&sim).await, bad_checksum());
    // Wrong secret, unknown session, another app's key: all the same answer.
    let wrong = Signed::new(DEMO_KEY, &token, "not-the-secret", "{}");
    assert_eq!(wrong.funds(&sim).await, bad_checksum());
    let forged = Signed::new(DEMO_KEY, "QloxMjM0Ojk5OTk5OTk=", DEMO_SECRET, "{}");
    assert_eq!(forged.funds(&sim).await, bad_checksum());
    let cross = Signed::new("other%app#key", &token, "other-secret", "{}");
    assert_eq!(cross.funds(&sim).await, bad_checksum());
    let unknown = Signed::new("nope", &token, DEMO_SECRET, "{}");
    assert_eq!(
        unknown.funds(&sim).await,
        err(500, "Public Key does not exist.")
    );
    // Timestamps: the format always, the age only with a tolerance.
    let mut millis = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    millis.ts = Utc::now().format("%Y-%m-%dT%H:%M:%S.123Z").to_string();
    millis.checksum = checksum(&millis.ts, "{}", DEMO_SECRET);
    let invalid_ts = err(500, "Authentication Fail :: Invalid Timestamp.");
    assert_eq!(millis.funds(&sim).await, invalid_ts);
    let mut old = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    old.ts = "2020-01-01T00:00:00.000Z".into();
    old.checksum = checksum(&old.ts, "{}", DEMO_SECRET);
    assert_eq!(old.funds(&sim).await.1["Status"], 200);
    sim.set_timestamp_tolerance(Some(Duration::from_secs(30)));
    assert_eq!(old.funds(&sim).await, invalid_ts);
    assert_eq!(ok.funds(&sim).await.1["Status"], 200);
    // The secret is regenerated: the old one fails, the new one works.
    sim.set_secret(DEMO_KEY, "regenerated-secret");
    let stale = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    assert_eq!(stale.funds(&sim).await, bad_checksum());
    let fresh = Signed::new(DEMO_KEY, &token, "regenerated-secret", "{}");
    assert_eq!(fresh.funds(&sim).await.1["Status"], 200);
    // customerdetails ignores the secret.
    assert!(sim.is_session_valid(&token));
    assert_eq!(sim.funds_count(), 12);
}

#[tokio::test]
async fn injected_failures_are_consumed_one_per_customerdetails_call() {
    let sim = sim().await;
    let key = sim.mint_session_key(DEMO_KEY);
    sim.fail_next(2, BreezeFail::ServerError(502));
    sim.fail_next(1, BreezeFail::Html);
    sim.fail_next(1, BreezeFail::RateLimit);
    sim.fail_next(1, BreezeFail::ResourceNotAvailable);
    sim.fail_next(1, BreezeFail::ServerError(42));
    for _ in 0..2 {
        assert_eq!(
            customerdetails(&sim, &key, DEMO_KEY).await,
            (
                502,
                json!({"Success": null, "Status": 502, "Error": "Internal Server Error"})
            )
        );
    }
    let r = Client::new()
        .request(Method::GET, api(&sim, "customerdetails"))
        .body(json!({"SessionToken": key, "AppKey": DEMO_KEY}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.text().await.unwrap().starts_with("<html>"));
    assert_eq!(
        customerdetails(&sim, &key, DEMO_KEY).await,
        err(500, "Limit exceed: API call per minute.")
    );
    assert_eq!(
        customerdetails(&sim, &key, DEMO_KEY).await,
        err(500, "Resource not available.")
    );
    assert_eq!(customerdetails(&sim, &key, DEMO_KEY).await.0, 500);
    // Queue empty: the key was never spent.
    let (status, body) = customerdetails(&sim, &key, DEMO_KEY).await;
    assert_eq!(status, 200);
    let token = body["Success"]["session_token"].as_str().unwrap();
    // funds does not consume them.
    sim.fail_next(1, BreezeFail::Html);
    let signed = Signed::new(DEMO_KEY, token, DEMO_SECRET, "{}");
    assert_eq!(signed.funds(&sim).await.1["Status"], 200);
    assert_eq!(customerdetails(&sim, &key, DEMO_KEY).await.0, 503);
    assert_eq!(sim.customerdetails_count(), 8);
}

#[tokio::test]
async fn browser_user_override_and_latency() {
    let sim = sim().await;
    sim.set_browser_user(Some("XY0001".into()));
    let key = browser_login(&sim, DEMO_KEY).await;
    let (_, body) = customerdetails(&sim, &key, DEMO_KEY).await;
    assert_eq!(body["Success"]["idirect_userid"], "XY0001");
    let token = body["Success"]["session_token"].as_str().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .unwrap();
    assert!(decoded.starts_with(b"XY0001:"));
    sim.set_browser_user(None);
    let key = sim.mint_session_key(DEMO_KEY);
    let (_, body) = customerdetails(&sim, &key, DEMO_KEY).await;
    assert_eq!(body["Success"]["idirect_userid"], "BZ1234");
    sim.set_latency(Duration::from_millis(120));
    let t = std::time::Instant::now();
    assert_eq!(customerdetails(&sim, &key, DEMO_KEY).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn control_surface() {
    let sim = sim().await;
    let c = Client::new();
    let ctl = |p: &str| format!("{}/_sim/{p}", sim.base_url());
    let (_, minted) = send(c.post(ctl("mint")).query(&[("api_key", DEMO_KEY)])).await;
    let key = minted["Success"]["API_Session"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(customerdetails(&sim, &key, DEMO_KEY).await.0, 200);
    let (status, _) = send(c.post(ctl("fail_next?n=2&mode=rate_limit"))).await;
    assert_eq!(status, 200);
    assert_eq!(send(c.post(ctl("fail_next?mode=bogus"))).await.0, 400);
    assert_eq!(send(c.post(ctl("mint?api_key=nope"))).await.0, 400);
    for _ in 0..2 {
        let (_, b) = customerdetails(&sim, &key, DEMO_KEY).await;
        assert_eq!(b["Error"], "Limit exceed: API call per minute.");
    }
    assert_eq!(send(c.post(ctl("fail_next?mode=not_found"))).await.0, 200);
    assert_eq!(customerdetails(&sim, &key, DEMO_KEY).await.0, 404);
    assert_eq!(send(c.post(ctl("kill_all"))).await.0, 200);
    let (_, stats) = send(c.get(ctl("stats"))).await;
    let s = &stats["Success"];
    assert_eq!(
        (&s["customerdetails"], &s["live_sessions"], &s["faults"]),
        (&json!(4), &json!(0), &json!(0))
    );
    assert_eq!(s["issued_session_tokens"], 1);
    sim.shutdown().await;
    assert!(c.get(ctl("stats")).send().await.is_err());
}

/// On a manual clock the sim reads no real time: a session key's TTL, the
/// session's end at midnight IST (or 24 h), and the timestamp check follow
/// the clock's moves.
#[tokio::test]
async fn a_manual_clock_drives_key_life_session_end_and_timestamps() {
    use brokerd_core::time::{Clock, ManualClock};
    let sim = sim().await;
    // 23:00 IST: the session ends at midnight, an hour on.
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-24T23:00:00+05:30")
        .unwrap()
        .with_timezone(&Utc);
    let clock = ManualClock::new(start);
    sim.set_clock(clock.clone());
    sim.set_session_key_ttl(Duration::from_secs(300));
    let unused = sim.mint_session_key(DEMO_KEY);
    clock.advance(chrono::Duration::seconds(301));
    assert_eq!(
        customerdetails(&sim, &unused, DEMO_KEY).await,
        err(500, "Resource not available.")
    );
    let (key, token) = session(&sim).await;
    // A timestamp is judged by the sim's clock, not the system's.
    sim.set_timestamp_tolerance(Some(Duration::from_secs(30)));
    let mut signed = Signed::new(DEMO_KEY, &token, DEMO_SECRET, "{}");
    assert_eq!(
        signed.funds(&sim).await,
        err(500, "Authentication Fail :: Invalid Timestamp.")
    );
    signed.ts = clock.now().format("%Y-%m-%dT%H:%M:%S.000Z").to_string();
    signed.checksum = checksum(&signed.ts, "{}", DEMO_SECRET);
    assert_eq!(signed.funds(&sim).await.1["Status"], 200);
    clock.set(start + chrono::Duration::seconds(3599));
    assert!(sim.is_session_valid(&token));
    clock.set(start + chrono::Duration::seconds(3600));
    assert!(!sim.is_session_valid(&token));
    assert_eq!(
        customerdetails(&sim, &key, DEMO_KEY).await,
        err(500, "Resource not available.")
    );
    // Without a cut-off, 24 hours.
    sim.set_cutoff(None);
    let (_, token) = session(&sim).await;
    clock.advance(chrono::Duration::hours(24) - chrono::Duration::seconds(1));
    assert!(sim.is_session_valid(&token));
    clock.advance(chrono::Duration::seconds(1));
    assert!(!sim.is_session_valid(&token));
}
