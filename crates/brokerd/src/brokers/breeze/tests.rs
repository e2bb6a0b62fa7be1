//! The client against the Breeze simulator, the signing rule against
//! independently computed vectors, and the report table.

use std::time::Duration;

use chrono::{NaiveTime, TimeZone};
use reqwest::{Client, redirect};

use super::*;
use crate::brokers::http::Answer;
use crate::config::Reminder;
use brokerd_core::time::{ManualClock, SystemClock};
use brokerd_sim::breeze::{BreezeFail, BreezeSim, BreezeSimApp, BreezeSimConfig, Delivery};

const REDIRECT: &str = "https://brokerd.example/breeze/callback";

async fn sim() -> BreezeSim {
    let sim = BreezeSim::start(BreezeSimConfig::default()).await.unwrap();
    sim.set_redirect_url(&BreezeSimApp::demo().app_key, REDIRECT);
    sim
}

fn cfg(sim: &BreezeSim) -> BreezeConfig {
    let demo = BreezeSimApp::demo();
    BreezeConfig {
        api_root: format!("{}/breezeapi/api/v1", sim.base_url()),
        login_root: format!("{}/apiuser", sim.base_url()),
        app_key: Secret::new(demo.app_key),
        secret_key: Secret::new(demo.secret_key),
        user_id: Some(demo.user_id),
        cutoff: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
        max_lifetime: Duration::from_secs(24 * 3600),
        reminder: Reminder {
            remind_at: None,
            expiring_notice: Duration::from_secs(1800),
        },
    }
}

fn client(cfg: &BreezeConfig) -> BreezeClient {
    BreezeClient::new(cfg, Duration::from_secs(5), SystemClock::shared()).unwrap()
}

fn no_redirects() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// The browser step with Query delivery: follow `login_url` to the
/// redirect and read `apisession` off the `Location`.
async fn query_login(cfg: &BreezeConfig) -> Secret {
    let r = no_redirects().get(login_url(cfg)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT), "{location}");
    let (_, key) = location
        .query_pairs()
        .find(|(k, _)| k == "apisession")
        .unwrap();
    Secret::new(key.into_owned())
}

/// The browser step with Form delivery: the hidden `API_Session` field.
async fn form_login(cfg: &BreezeConfig) -> Secret {
    let page = no_redirects()
        .get(login_url(cfg))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!(r#"action="{REDIRECT}""#)), "{page}");
    let marker = r#"name="API_Session" value=""#;
    let rest = &page[page.find(marker).unwrap() + marker.len()..];
    Secret::new(&rest[..rest.find('"').unwrap()])
}

/// Asserts that an error's message carries none of `secrets`.
fn clean(e: &BrokerError, secrets: &[&str]) {
    for s in secrets {
        assert!(!e.message().contains(s), "{e:?} leaks a secret");
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn login_url_encodes_reserved_characters() {
    let mut cfg = BreezeConfig {
        api_root: "https://api.icicidirect.com/breezeapi/api/v1".into(),
        login_root: "https://api.icicidirect.com/apiuser".into(),
        app_key: Secret::new("a+b=c^d#e%f g/h&i"),
        secret_key: Secret::new("s"),
        user_id: None,
        cutoff: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
        max_lifetime: Duration::from_secs(86400),
        reminder: Reminder {
            remind_at: None,
            expiring_notice: Duration::from_secs(60),
        },
    };
    let want = "https://api.icicidirect.com/apiuser/login?api_key=a%2Bb%3Dc%5Ed%23e%25f+g%2Fh%26i";
    assert_eq!(login_url(&cfg), want);
    cfg.login_root.push('/');
    assert_eq!(login_url(&cfg), want);
    // And the URL decodes back to the key.
    let url = reqwest::Url::parse(want).unwrap();
    let (_, key) = url.query_pairs().next().unwrap();
    assert_eq!(key, "a+b=c^d#e%f g/h&i");
}

#[test]
fn timestamp_forces_millis_to_zero() {
    let t = utc("2026-11-24T09:15:07.987654321Z");
    assert_eq!(timestamp(t), "2026-11-24T09:15:07.000Z");
    // Never rounded up into the next second, and always shown in UTC.
    let t = utc("2026-12-31T23:59:59.999+00:00");
    assert_eq!(timestamp(t), "2026-12-31T23:59:59.000Z");
    let t = utc("2026-11-24T14:45:07.5+05:30");
    assert_eq!(timestamp(t), "2026-11-24T09:15:07.000Z");
}

/// Expected checksums computed outside Rust, e.g. for the first vector:
/// `printf '%s' '2026-11-24T09:15:07.000Z{}demo-breeze-secret-key' | sha256sum`
/// (the same string of timestamp, body and secret for the others; the
/// unicode vector was cross-checked with Python's `hashlib.sha256` of the
/// UTF-8 bytes).
#[test]
fn sign_matches_independent_vectors() {
    let order = r#"{"stock_code":"ITC","exchange_code":"NSE","product":"cash","action":"buy","order_type":"limit","stoploss":"","quantity":"1","price":"305.5","validity":"day"}"#;
    let unicode = r#"{"remark":"ऑर्डर ₹1,000 — café ✓ 😀"}"#;
    let vectors = [
        (
            "2026-11-24T09:15:07.250Z",
            "{}",
            "demo-breeze-secret-key",
            "17d2d4329f1fbb3c3ee4f3e3e8eec98e8b61068062bcdabecd45cc61ea990e38",
        ),
        (
            "2026-11-24T09:15:07Z",
            order,
            "s3cr3t+Key/with=chars",
            "23e572f34ef8e5c0629772cea5cc05c805ffddda03cb257ff5259c9b28271dd2",
        ),
        (
            "2026-01-02T23:59:59.999Z",
            unicode,
            "demo-breeze-secret-key",
            "a08a712371106b292d0208b30c011a5e573997f7c17fdae3b1d698bb5892d87f",
        ),
    ];
    for (now, body, secret, hex) in vectors {
        let got = sign("APP+KEY=1", secret, "U0VTU0lPTg==", body, utc(now));
        let names: Vec<&str> = got.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "X-Checksum",
                "X-Timestamp",
                "X-AppKey",
                "X-SessionToken",
                "Content-Type"
            ]
        );
        assert_eq!(got[0].1, format!("token {hex}"), "body {body}");
        assert_eq!(got[1].1, timestamp(utc(now)));
        assert!(got[1].1.ends_with(".000Z"));
        assert_eq!(got[2].1, "APP+KEY=1");
        assert_eq!(got[3].1, "U0VTU0lPTg==");
        assert_eq!(got[4].1, "application/json");
    }
}

#[tokio::test]
async fn signed_funds_request_is_accepted_and_a_changed_byte_is_refused() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let session = client(&cfg)
        .exchange(&query_login(&cfg).await)
        .await
        .unwrap();
    let token = session.material.token.expose();
    let funds = |body: &'static str, signed_body: &str| {
        let headers = sign(
            cfg.app_key.expose(),
            cfg.secret_key.expose(),
            token,
            signed_body,
            Utc::now(),
        );
        let mut req = Client::new().request(Method::GET, format!("{}/funds", cfg.api_root));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req.body(body)
    };
    let read = |r: reqwest::Response| async move { r.json::<Value>().await.unwrap() };
    let ok = read(funds("{}", "{}").send().await.unwrap()).await;
    assert_eq!((&ok["Status"], &ok["Error"]), (&json!(200), &Value::Null));
    assert_eq!(ok["Success"]["bank_account"], "XXXXXXXX1234");
    let changed = read(funds("{\"\"}", "{}").send().await.unwrap()).await;
    let refused =
        json!({"Success": null, "Status": 5, "Error": "Authentication Fail :: Invalid Checksum."});
    assert_eq!(changed, refused);
    let changed = read(funds("{ }", "{}").send().await.unwrap()).await;
    assert_eq!(changed, refused);
    assert_eq!(sim.funds_count(), 3);
}

/// The session's times come from the clock the client is given: an hour
/// before midnight IST, it ends at midnight, not 24 h later.
#[tokio::test]
async fn the_session_times_follow_the_given_clock() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let at = utc("2026-11-24T23:00:00+05:30");
    let clock = ManualClock::new(at);
    let c = BreezeClient::new(&cfg, Duration::from_secs(5), clock.clone()).unwrap();
    let key = Secret::new(sim.mint_session_key(cfg.app_key.expose()));
    let s = c.exchange(&key).await.unwrap();
    assert_eq!(s.meta.obtained_at, at);
    assert_eq!(s.meta.expires_at, utc("2026-11-25T00:00:00+05:30"));
}

#[tokio::test]
async fn query_login_exchange_validate_and_check_secret() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let c = client(&cfg);
    let key = query_login(&cfg).await;
    let before = Utc::now();
    let s = c.exchange(&key).await.unwrap();
    let after = Utc::now();
    let token = s.material.token.expose().to_string();
    assert_eq!(sim.issued_session_tokens(), vec![token.clone()]);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&token)
        .unwrap();
    assert_eq!(decoded, format!("BZ1234:{}", key.expose()).into_bytes());
    let headers: Vec<(&str, &str)> = s
        .material
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [
            ("X-AppKey", "demo+breeze=key^01"),
            ("X-SessionToken", &token)
        ]
    );
    assert_eq!(
        Value::Object(s.material.fields.clone()),
        json!({"api_root": cfg.api_root, "api_key": "demo+breeze=key^01", "user_id": "BZ1234"})
    );
    assert_eq!(s.meta.user_id.as_deref(), Some("BZ1234"));
    assert_eq!(s.meta.app_expiry, None);
    assert!(before <= s.meta.obtained_at && s.meta.obtained_at <= after);
    // The next IST midnight always comes within 24 h, so it is the expiry.
    let midnight = NaiveTime::from_hms_opt(0, 0, 0).unwrap();
    assert_eq!(
        s.meta.expires_at,
        ist::next_at(s.meta.obtained_at, midnight)
    );
    assert_eq!(s.meta.expires_at, expiry(&cfg, s.meta.obtained_at));
    assert_eq!(
        s.meta
            .expires_at
            .with_timezone(&ist::offset())
            .format("%H:%M:%S")
            .to_string(),
        "00:00:00"
    );
    assert!(s.meta.expires_at - s.meta.obtained_at <= chrono::Duration::hours(24));
    c.validate(&s.material).await.unwrap();
    c.check_secret(&s.material).await.unwrap();
    // A fresh client around the stored material works as well.
    client(&cfg).validate(&s.material).await.unwrap();
    assert_eq!((sim.customerdetails_count(), sim.funds_count()), (3, 1));
}

#[tokio::test]
async fn form_login_with_a_short_max_lifetime() {
    let sim = sim().await;
    sim.set_delivery(Delivery::Form);
    let mut cfg = cfg(&sim);
    cfg.max_lifetime = Duration::from_secs(90);
    let key = form_login(&cfg).await;
    assert!(key.expose().len() >= 7);
    let s = client(&cfg).exchange(&key).await.unwrap();
    let at = s.meta.obtained_at;
    let midnight = ist::next_at(at, NaiveTime::from_hms_opt(0, 0, 0).unwrap());
    assert_eq!(
        s.meta.expires_at,
        (at + chrono::Duration::seconds(90)).min(midnight)
    );
    assert!(s.meta.expires_at <= at + chrono::Duration::seconds(90));
    client(&cfg).validate(&s.material).await.unwrap();
}

#[test]
fn expiry_is_the_earlier_of_lifetime_and_cutoff() {
    let sim_less = |lifetime_h: u64, cutoff: (u32, u32)| BreezeConfig {
        api_root: String::new(),
        login_root: String::new(),
        app_key: Secret::new("k"),
        secret_key: Secret::new("s"),
        user_id: None,
        cutoff: NaiveTime::from_hms_opt(cutoff.0, cutoff.1, 0).unwrap(),
        max_lifetime: Duration::from_secs(lifetime_h * 3600),
        reminder: Reminder {
            remind_at: None,
            expiring_notice: Duration::from_secs(60),
        },
    };
    let now = utc("2026-11-24T10:00:00+05:30");
    assert_eq!(
        expiry(&sim_less(24, (0, 0)), now),
        utc("2026-11-25T00:00:00+05:30")
    );
    assert_eq!(
        expiry(&sim_less(2, (0, 0)), now),
        utc("2026-11-24T12:00:00+05:30")
    );
    assert_eq!(
        expiry(&sim_less(24, (6, 0)), utc("2026-11-24T05:00:00+05:30")),
        utc("2026-11-24T06:00:00+05:30")
    );
    // A lifetime too long for chrono still ends at the cut-off.
    let mut huge = sim_less(24, (0, 0));
    huge.max_lifetime = Duration::MAX;
    assert_eq!(expiry(&huge, now), utc("2026-11-25T00:00:00+05:30"));
    let at = Utc.with_ymd_and_hms(2026, 11, 24, 18, 29, 0).unwrap();
    assert_eq!(
        expiry(&sim_less(24, (0, 0)), at),
        utc("2026-11-25T00:00:00+05:30")
    );
}

#[tokio::test]
async fn regenerated_secret_is_rejected_while_the_session_lives() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let c = client(&cfg);
    let s = c.exchange(&query_login(&cfg).await).await.unwrap();
    c.check_secret(&s.material).await.unwrap();
    sim.set_secret(cfg.app_key.expose(), "regenerated-secret");
    let e = c.check_secret(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Rejected(_)), "{e:?}");
    assert!(e.message().contains("secret_key"), "{e}");
    assert!(e.message().contains("Invalid Checksum"), "{e}");
    assert!(e.message().contains(&cfg.secret_key.fingerprint()), "{e}");
    clean(&e, &[cfg.secret_key.expose(), s.material.token.expose()]);
    c.validate(&s.material).await.unwrap();
    // The new secret in the config fixes it.
    let mut fixed = cfg.clone();
    fixed.secret_key = Secret::new("regenerated-secret");
    client(&fixed).check_secret(&s.material).await.unwrap();
}

#[tokio::test]
async fn killed_session_is_dead_for_validate_and_check_secret() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let c = client(&cfg);
    let s = c.exchange(&query_login(&cfg).await).await.unwrap();
    sim.kill_all_sessions();
    assert!(!sim.is_session_valid(s.material.token.expose()));
    let e = c.validate(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::DeadSession(_)), "{e:?}");
    assert!(e.message().contains("Resource not available."), "{e}");
    // Invalid Checksum, then customerdetails says dead: dead, not rejected.
    let e = c.check_secret(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::DeadSession(_)), "{e:?}");
    clean(&e, &[cfg.secret_key.expose(), s.material.token.expose()]);
    // A token that is no base64 of user:key cannot be validated.
    let mut odd = s.material.clone();
    odd.token = Secret::new("not base64 at all");
    let e = c.validate(&odd).await.unwrap_err();
    assert!(matches!(e, BrokerError::Config(_)), "{e:?}");
    clean(&e, &["not base64 at all"]);
}

#[tokio::test]
async fn refused_submissions_are_bad_submissions() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let c = client(&cfg);
    // Mistyped.
    let e = c.exchange(&Secret::new("1234")).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    assert!(e.message().contains("Invalid session."), "{e}");
    assert!(e.message().contains("log in again"), "{e}");
    let e = c.exchange(&Secret::new("  ")).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    // Expired before it was used.
    sim.set_session_key_ttl(Duration::from_millis(100));
    let stale = query_login(&cfg).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let e = c.exchange(&stale).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    assert!(e.message().contains("Resource not available."), "{e}");
    assert!(e.message().contains("Session key is expired"), "{e}");
    assert!(e.message().contains("quota"), "{e}");
    clean(&e, &[stale.expose()]);
    // The quota shape, injected, on a fresh key.
    sim.set_session_key_ttl(Duration::from_secs(3600));
    let fresh = query_login(&cfg).await;
    sim.fail_next(1, BreezeFail::ResourceNotAvailable);
    let e = c.exchange(&fresh).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    c.exchange(&fresh).await.unwrap();
}

#[tokio::test]
async fn wrong_app_key_is_rejected() {
    let sim = sim().await;
    let good = cfg(&sim);
    let s = client(&good)
        .exchange(&query_login(&good).await)
        .await
        .unwrap();
    let mut bad = good.clone();
    bad.app_key = Secret::new("demo breeze=key^01");
    let c = client(&bad);
    let e = c.exchange(&query_login(&good).await).await.unwrap_err();
    assert!(matches!(e, BrokerError::Rejected(_)), "{e:?}");
    assert!(e.message().contains("Public Key does not exist."), "{e}");
    assert!(e.message().contains("app_key"), "{e}");
    assert!(e.message().contains(&bad.app_key.fingerprint()), "{e}");
    clean(&e, &[bad.app_key.expose()]);
    let e = c.validate(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Rejected(_)), "{e:?}");
}

#[tokio::test]
async fn wrong_user_is_a_bad_submission() {
    let sim = sim().await;
    let mut cfg = cfg(&sim);
    sim.set_browser_user(Some("XY0001".into()));
    let key = query_login(&cfg).await;
    let e = client(&cfg).exchange(&key).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    assert!(
        e.message().contains("XY0001") && e.message().contains("BZ1234"),
        "{e}"
    );
    // Not checked without a configured user; case does not matter.
    cfg.user_id = None;
    let s = client(&cfg).exchange(&key).await.unwrap();
    assert_eq!(s.meta.user_id.as_deref(), Some("XY0001"));
    cfg.user_id = Some("xy0001".into());
    client(&cfg).exchange(&key).await.unwrap();
}

#[tokio::test]
async fn outages_and_rate_limits_are_transient() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let c = client(&cfg);
    let key = query_login(&cfg).await;
    let fails = [
        BreezeFail::Html,
        BreezeFail::ServerError(500),
        BreezeFail::ServerError(502),
        BreezeFail::RateLimit,
    ];
    for fail in fails {
        sim.fail_next(1, fail);
        let e = c.exchange(&key).await.unwrap_err();
        assert!(matches!(e, BrokerError::Transient(_)), "{fail:?}: {e:?}");
        clean(&e, &[key.expose(), cfg.app_key.expose()]);
    }
    let s = c.exchange(&key).await.unwrap();
    for fail in fails {
        sim.fail_next(1, fail);
        let e = c.validate(&s.material).await.unwrap_err();
        assert!(matches!(e, BrokerError::Transient(_)), "{fail:?}: {e:?}");
    }
    // A refused signature whose re-check hits an outage: still transient.
    sim.set_secret(cfg.app_key.expose(), "regenerated");
    sim.fail_next(1, BreezeFail::Html);
    let e = c.check_secret(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    // Timeouts.
    sim.set_latency(Duration::from_millis(400));
    let slow = BreezeClient::new(&cfg, Duration::from_millis(100), SystemClock::shared()).unwrap();
    let e = slow.validate(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    assert!(e.message().contains("timed out"), "{e}");
    sim.set_latency(Duration::ZERO);
    // Nobody listening.
    let addr = sim.base_url();
    sim.shutdown().await;
    let e = c.exchange(&key).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    let e = c.check_secret(&s.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{addr}: {e:?}");
}

fn answer(status: u16, body: &str) -> Answer {
    Answer::new(status, body.as_bytes())
}

#[test]
fn envelopes_read_by_status_in_the_body() {
    let ok = answer(200, r#"{"Success":{"a":1},"Status":200,"Error":null}"#);
    assert_eq!(errors::read("x", &ok).unwrap(), &json!({"a": 1}));
    let as_text = answer(200, r#"{"Success":{"a":1},"Status":"200","Error":null}"#);
    assert!(errors::read("x", &as_text).is_ok());
    let cases = [
        (
            200,
            r#"{"Success":null,"Status":500,"Error":"Invalid session."}"#,
            "session",
        ),
        (
            200,
            r#"{"Success":null,"Status":500,"Error":"Session key is expired."}"#,
            "rna",
        ),
        (
            200,
            r#"{"Success":null,"Status":500,"Error":"Resource not available."}"#,
            "rna",
        ),
        (
            200,
            r#"{"Success":null,"Status":500,"Error":"Public Key does not exist."}"#,
            "pk",
        ),
        (
            200,
            r#"{"Success":null,"Status":5,"Error":"Authentication Fail :: Invalid Checksum."}"#,
            "cs",
        ),
        (
            200,
            r#"{"Success":null,"Status":500,"Error":"Limit exceed: API call per day."}"#,
            "t",
        ),
        (200, r#"{"Success":null,"Status":200,"Error":null}"#, "t"),
        (
            200,
            r#"{"Success":null,"Status":401,"Error":"Something new"}"#,
            "t",
        ),
        (200, r#"{"unexpected":true}"#, "t"),
        (200, "<html><body>maintenance</body></html>", "t"),
        (
            503,
            r#"{"Success":null,"Status":500,"Error":"Invalid session."}"#,
            "t",
        ),
        (
            429,
            r#"{"Success":null,"Status":429,"Error":"Too many"}"#,
            "t",
        ),
        (200, "", "t"),
    ];
    for (status, body, want) in cases {
        let got = match errors::read("customerdetails", &answer(status, body)) {
            Err(Fault::InvalidSession(_)) => "session",
            Err(Fault::ResourceNotAvailable(_)) => "rna",
            Err(Fault::PublicKey(_)) => "pk",
            Err(Fault::InvalidChecksum(_)) => "cs",
            Err(Fault::Transient(m)) => {
                assert!(m.starts_with("customerdetails"), "{m}");
                "t"
            }
            Ok(v) => panic!("{body} read as success {v}"),
        };
        assert_eq!(got, want, "HTTP {status} {body}");
    }
}

#[test]
fn redact_hides_token_like_runs() {
    assert_eq!(errors::redact("Invalid session."), "Invalid session.");
    assert_eq!(
        errors::redact("bad  token\nQloxMjM0OjEyMzQ1Njc4OTA= here"),
        "bad token … here"
    );
    let hex = "token 17d2d4329f1fbb3c3ee4f3e3e8eec98e8b61068062bcdabecd45cc61ea990e38";
    assert_eq!(errors::redact(hex), "token …");
    assert!(errors::redact(&"word ".repeat(100)).chars().count() <= 161);
}

#[test]
fn classify_report_table() {
    use ReportClass::*;
    let cases: [(Option<u16>, &str, &str); 21] = [
        (
            Some(200),
            r#"{"Success":null,"Status":5,"Error":"Authentication Fail :: Invalid Checksum."}"#,
            "recheck",
        ),
        (None, "authentication fail :: INVALID CHECKSUM", "recheck"),
        (Some(401), "Invalid Checksum", "recheck"),
        (Some(200), "Session key is expired.", "dead"),
        (
            Some(500),
            r#"{"Success":null,"Status":500,"Error":"Invalid session."}"#,
            "dead",
        ),
        (None, "invalid SESSION", "dead"),
        // A bare 401/403 is asked about, not believed: one customerdetails
        // call settles it; an HTML 403 is a proxy, never the session.
        (Some(401), "", "recheck"),
        (Some(403), "Forbidden", "recheck"),
        (
            Some(403),
            "<html><body>Access Denied</body></html>",
            "transient",
        ),
        (
            Some(500),
            r#"{"Success":null,"Status":500,"Error":"Resource not available."}"#,
            "recheck",
        ),
        (None, "resource not available", "recheck"),
        (Some(500), "Limit exceed: API call per minute.", "transient"),
        (Some(200), "limit exceed: API call per day", "transient"),
        (Some(429), "", "transient"),
        (Some(502), "", "transient"),
        (Some(503), "Service Unavailable", "transient"),
        (
            Some(200),
            "<html><body>502 Bad Gateway</body></html>",
            "transient",
        ),
        (None, "  <!DOCTYPE html><html></html>", "transient"),
        (
            Some(200),
            r#"{"Success":null,"Status":500,"Error":"Stock code is invalid"}"#,
            "recheck",
        ),
        (None, "", "recheck"),
        (Some(400), "something odd", "recheck"),
    ];
    for (status, reason, want) in cases {
        let got = classify_report(status, reason);
        let kind = match &got {
            Dead(_) => "dead",
            Recheck(_) => "recheck",
            Transient(_) => "transient",
        };
        assert_eq!(kind, want, "{status:?} {reason:?} gave {got:?}");
    }
    // Messages never repeat a token, key or checksum a client pasted.
    let token = "QloxMjM0OjEyMzQ1Njc4OTA=";
    let checksum = "17d2d4329f1fbb3c3ee4f3e3e8eec98e8b61068062bcdabecd45cc61ea990e38";
    let reason = format!("Invalid Checksum for X-SessionToken {token} X-Checksum token {checksum}");
    let Recheck(m) = classify_report(Some(200), &reason) else {
        panic!("not a recheck");
    };
    assert!(!m.contains(token) && !m.contains(checksum), "{m}");
    assert!(m.contains("secret_key"), "{m}");
    assert_eq!(
        classify_report(Some(401), ""),
        Recheck("Breeze refused the call (status 401); re-validating the session".into())
    );
}

#[tokio::test]
async fn debug_and_logs_show_no_secret() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let c = client(&cfg);
    let shown = format!("{c:?}");
    assert!(shown.contains("BreezeClient"), "{shown}");
    assert!(shown.contains(&cfg.app_key.fingerprint()), "{shown}");
    assert!(!shown.contains(cfg.app_key.expose()), "{shown}");
    assert!(!shown.contains(cfg.secret_key.expose()), "{shown}");
    let s = c.exchange(&query_login(&cfg).await).await.unwrap();
    let shown = format!("{s:?}");
    for secret in [s.material.token.expose(), cfg.app_key.expose()] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
