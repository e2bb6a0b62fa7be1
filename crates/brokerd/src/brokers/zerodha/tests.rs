//! The client against the Kite simulator on loopback, and the error
//! classification tables.

use std::time::Duration;

use chrono::{NaiveTime, TimeDelta, Timelike, Utc};
use reqwest::redirect;
use serde_json::json;

use super::*;
use crate::config::Reminder;
use brokerd_core::time::{ManualClock, SystemClock};
use brokerd_sim::kite::{KiteFail, KiteSim, KiteSimApp, KiteSimConfig};

const KEY: &str = "demokitekey01";
const SECRET: &str = "demo-kite-api-secret";
const CALLBACK: &str = "http://127.0.0.1:9/kite/callback";

fn six() -> NaiveTime {
    NaiveTime::from_hms_opt(6, 0, 0).unwrap()
}

fn cfg_for(root: &str, api_key: &str, api_secret: &str) -> ZerodhaConfig {
    ZerodhaConfig {
        api_root: root.to_string(),
        login_root: root.to_string(),
        ticker_root: root.replacen("http", "ws", 1),
        api_key: Secret::new(api_key),
        api_secret: Secret::new(api_secret),
        user_id: Some("ZD1234".into()),
        cutoff: six(),
        reminder: Reminder {
            remind_at: None,
            expiring_notice: Duration::from_secs(900),
        },
    }
}

fn cfg(sim: &KiteSim) -> ZerodhaConfig {
    cfg_for(&sim.base_url(), KEY, SECRET)
}

fn client(cfg: &ZerodhaConfig) -> ZerodhaClient {
    ZerodhaClient::new(cfg, Duration::from_secs(5), SystemClock::shared()).unwrap()
}

async fn sim() -> KiteSim {
    KiteSim::start(KiteSimConfig::default()).await.unwrap()
}

/// Follows `login_url` like a browser up to the redirect; returns the
/// request token and the state the redirect carried.
async fn browser_login(url: &str) -> (String, String) {
    let c = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    let location = Url::parse(location).unwrap();
    assert!(location.as_str().starts_with(CALLBACK), "{location}");
    let get = |k: &str| {
        location
            .query_pairs()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("{k} missing from {location}"))
    };
    assert_eq!(get("status"), "success");
    (get("request_token"), get("state"))
}

/// The message of `e` holds none of `secrets`.
fn assert_clean(e: &BrokerError, secrets: &[&str]) {
    for s in secrets {
        assert!(!e.message().contains(s), "{s:?} leaked into {e:?}");
    }
}

/// The session's times come from the clock the client is given, not the
/// system's: one minute before the 06:00 IST cut-off, it ends at the cut-off.
#[tokio::test]
async fn the_session_times_follow_the_given_clock() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-24T05:59:00+05:30")
        .unwrap()
        .with_timezone(&Utc);
    let clock = ManualClock::new(at);
    let client = ZerodhaClient::new(&cfg, Duration::from_secs(5), clock.clone()).unwrap();
    let token = Secret::new(sim.mint_request_token(KEY));
    let session = client.exchange(&token).await.unwrap();
    assert_eq!(session.meta.obtained_at, at);
    assert_eq!(
        session.meta.expires_at.to_rfc3339(),
        "2026-11-24T00:30:00+00:00",
        "06:00 IST the same day"
    );
}

#[tokio::test]
async fn full_flow_login_exchange_validate_logout() {
    let sim = sim().await;
    sim.set_redirect_url(KEY, CALLBACK);
    let cfg = cfg(&sim);
    let (request_token, state) = browser_login(&login_url(&cfg, "st8 &x=1")).await;
    assert_eq!(state, "st8 &x=1");
    let client = client(&cfg);
    let before = Utc::now();
    let session = client.exchange(&Secret::new(&request_token)).await.unwrap();
    let after = Utc::now();

    let access = sim.issued_tokens().last().unwrap().clone();
    assert_ne!(access, request_token);
    assert!(sim.is_token_valid(&access));
    let m = &session.material;
    assert_eq!(m.token.expose(), access);
    let headers: Vec<(&str, &str)> = m
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    let auth = format!("token {KEY}:{access}");
    assert_eq!(
        headers,
        [("Authorization", auth.as_str()), ("X-Kite-Version", "3")]
    );
    let mut keys: Vec<&String> = m.fields.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "api_key",
            "api_root",
            "login_time",
            "public_token",
            "ticker_root",
            "user_id"
        ]
    );
    assert_eq!(m.fields["api_root"], json!(cfg.api_root));
    assert_eq!(m.fields["ticker_root"], json!(cfg.ticker_root));
    assert_eq!(m.fields["user_id"], json!("ZD1234"));
    assert_eq!(m.fields["api_key"], json!(KEY));
    let public = m.fields["public_token"].as_str().unwrap();
    assert!(!public.is_empty() && public != access);
    let login_time = m.fields["login_time"].as_str().unwrap();
    chrono::NaiveDateTime::parse_from_str(login_time, "%Y-%m-%d %H:%M:%S").unwrap();

    let meta = &session.meta;
    assert!(before <= meta.obtained_at && meta.obtained_at <= after);
    assert_eq!(meta.expires_at, ist::next_at(meta.obtained_at, six()));
    let local = meta.expires_at.with_timezone(&ist::offset());
    assert_eq!((local.hour(), local.minute(), local.second()), (6, 0, 0));
    let life = meta.expires_at - meta.obtained_at;
    assert!(life > TimeDelta::zero() && life <= TimeDelta::hours(24));
    assert_eq!(meta.user_id.as_deref(), Some("ZD1234"));
    assert_eq!(meta.app_expiry, None);

    // Debug output of the client and the session shows no secret.
    let shown = format!("{client:?} {session:?}");
    for s in [SECRET, access.as_str(), public, request_token.as_str()] {
        assert!(!shown.contains(s), "{s} in {shown}");
    }

    client.validate(&session.material).await.unwrap();
    assert_eq!(sim.profile_count(), 1);
    client.logout(&session.material).await.unwrap();
    assert_eq!(sim.logout_count(), 1);
    assert!(!sim.is_token_valid(&access));
    let e = client.validate(&session.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::DeadSession(_)), "{e:?}");
    assert!(
        e.message()
            .contains("Incorrect `api_key` or `access_token`")
    );
    assert_clean(&e, &[&access]);
    // Logging out a token that is already dead is fine.
    client.logout(&session.material).await.unwrap();
    assert_eq!(sim.logout_count(), 2);
}

#[tokio::test]
async fn a_reused_or_expired_request_token_is_a_bad_submission() {
    let sim = sim().await;
    let client = client(&cfg(&sim));
    let rt = Secret::new(sim.mint_request_token(KEY));
    client.exchange(&rt).await.unwrap();
    let e = client.exchange(&rt).await.unwrap_err();
    let BrokerError::BadSubmission(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(msg.contains("single-use"), "{msg}");
    assert!(msg.contains("about 5 minutes"), "{msg}");
    assert!(msg.contains("open the login URL again"), "{msg}");
    assert!(msg.contains("Token is invalid or has expired."), "{msg}");
    assert_clean(&e, &[rt.expose(), SECRET]);

    sim.set_request_token_ttl(Duration::from_millis(30));
    let rt = Secret::new(sim.mint_request_token(KEY));
    tokio::time::sleep(Duration::from_millis(60)).await;
    let e = client.exchange(&rt).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    // An empty one never reaches Kite.
    let e = client.exchange(&Secret::new("")).await.unwrap_err();
    assert!(matches!(e, BrokerError::BadSubmission(_)), "{e:?}");
    assert_eq!(sim.exchange_count(), 3);
}

#[tokio::test]
async fn a_wrong_secret_or_api_key_is_rejected() {
    let sim = sim().await;
    let wrong = "not-the-demo-kite-secret";
    let client = client(&cfg_for(&sim.base_url(), KEY, wrong));
    let rt = sim.mint_request_token(KEY);
    let e = client.exchange(&Secret::new(&rt)).await.unwrap_err();
    let BrokerError::Rejected(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(msg.contains("Kite rejected the checksum"), "{msg}");
    assert!(
        msg.contains("api_secret does not belong to this api_key"),
        "{msg}"
    );
    assert!(msg.contains("Invalid `checksum`."), "{msg}");
    assert_clean(&e, &[&rt, wrong, &checksum(KEY, &rt, wrong)]);

    let client = client_for_key(&sim, "nosuchkey");
    let e = client.exchange(&Secret::new(&rt)).await.unwrap_err();
    let BrokerError::Rejected(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(msg.contains("Invalid `api_key`."), "{msg}");
    assert_eq!(sim.successful_exchanges(), 0);
}

fn client_for_key(sim: &KiteSim, key: &str) -> ZerodhaClient {
    client(&cfg_for(&sim.base_url(), key, SECRET))
}

#[tokio::test]
async fn a_login_as_the_wrong_user_is_a_bad_submission_and_not_logged_out() {
    let sim = sim().await;
    sim.set_browser_user(Some("ZX9999".into()));
    let client = client(&cfg(&sim));
    let e = client
        .exchange(&Secret::new(sim.mint_request_token(KEY)))
        .await
        .unwrap_err();
    let BrokerError::BadSubmission(msg) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(
        msg,
        "logged in as ZX9999 in the browser, but this account is configured for user_id ZD1234; log in as ZD1234"
    );
    let token = sim.issued_tokens().last().unwrap().clone();
    assert_clean(&e, &[&token]);
    assert!(sim.is_token_valid(&token));
    assert_eq!(sim.logout_count(), 0);

    // Without a configured user_id anyone may log in; the id's case does
    // not matter.
    let mut open = cfg(&sim);
    open.user_id = None;
    let session = session_of(&open, &sim).await;
    assert_eq!(session.meta.user_id.as_deref(), Some("ZX9999"));
    sim.set_browser_user(None);
    let mut lower = cfg(&sim);
    lower.user_id = Some("zd1234".into());
    let session = session_of(&lower, &sim).await;
    assert_eq!(session.meta.user_id.as_deref(), Some("ZD1234"));
}

async fn session_of(cfg: &ZerodhaConfig, sim: &KiteSim) -> NewSession {
    let rt = Secret::new(sim.mint_request_token(KEY));
    client(cfg).exchange(&rt).await.unwrap()
}

#[tokio::test]
async fn overload_broken_answers_and_network_trouble_are_transient() {
    let sim = sim().await;
    let client = client(&cfg(&sim));
    let rt = Secret::new(sim.mint_request_token(KEY));
    for fail in [
        KiteFail::ServerError(500),
        KiteFail::Html,
        KiteFail::RateLimit,
        KiteFail::ServerError(503),
    ] {
        sim.fail_next_exchanges(1, fail);
        let e = client.exchange(&rt).await.unwrap_err();
        // Retried later either way; a 429 also slows the host's pacer.
        let want_kind = match fail {
            KiteFail::RateLimit => matches!(e, BrokerError::RateLimited(_)),
            KiteFail::ServerError(_) | KiteFail::Html | KiteFail::NotFound => {
                matches!(e, BrokerError::Transient(_))
            }
        };
        assert!(want_kind && e.is_retryable(), "{fail:?}: {e:?}");
        assert_clean(&e, &[rt.expose(), SECRET]);
    }
    // The request token survived the failures.
    client.exchange(&rt).await.unwrap();
    assert_eq!((sim.exchange_count(), sim.successful_exchanges()), (5, 1));

    sim.set_latency(Duration::from_millis(300));
    let impatient =
        ZerodhaClient::new(&cfg(&sim), Duration::from_millis(80), SystemClock::shared()).unwrap();
    let e = impatient
        .exchange(&Secret::new(sim.mint_request_token(KEY)))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, BrokerError::Transient(m) if m.contains("timed out")),
        "{e:?}"
    );

    // Nobody listening.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let root = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let nobody = client_for_root(&root);
    let e = nobody.exchange(&rt).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    let material = Material {
        token: Secret::new("tok"),
        headers: BTreeMap::new(),
        fields: serde_json::Map::new(),
        private: Default::default(),
    };
    let e = nobody.validate(&material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    let e = nobody.logout(&material).await.unwrap_err();
    assert!(matches!(e, BrokerError::Transient(_)), "{e:?}");
    // A root that is no URL is a configuration error.
    let e = client_for_root("simulator")
        .exchange(&rt)
        .await
        .unwrap_err();
    assert!(matches!(e, BrokerError::Config(_)), "{e:?}");
}

fn client_for_root(root: &str) -> ZerodhaClient {
    client(&cfg_for(root, KEY, SECRET))
}

#[tokio::test]
async fn validate_sees_a_master_logout_and_a_second_login() {
    let sim = sim().await;
    let cfg = cfg(&sim);
    let first = session_of(&cfg, &sim).await;
    let second = session_of(&cfg, &sim).await;
    let c = client(&cfg);
    let e = c.validate(&first.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::DeadSession(_)), "{e:?}");
    c.validate(&second.material).await.unwrap();
    sim.kill_all_sessions();
    let e = c.validate(&second.material).await.unwrap_err();
    assert!(matches!(e, BrokerError::DeadSession(_)), "{e:?}");
    // A stored session without headers still validates with its token.
    let third = session_of(&cfg, &sim).await;
    let bare = Material {
        headers: BTreeMap::new(),
        ..third.material.clone()
    };
    c.validate(&bare).await.unwrap();
}

#[test]
fn checksum_matches_independent_vectors() {
    // Expected values computed outside Rust with coreutils, e.g.
    //   printf '%s' 'demokitekey01' 'abc123requesttoken' 'demo-kite-api-secret' | sha256sum
    //   printf '%s' '' | sha256sum
    //   printf '%s' 'xyz+k&e=y%1' 'Rq7Tok3n' 's3cr3t/with spaces' | sha256sum
    assert_eq!(
        checksum(
            "demokitekey01",
            "abc123requesttoken",
            "demo-kite-api-secret"
        ),
        "0dbbe8d7db0f9b8bb1e0b90d32d39884bae04d4454e39601e715bc7ab7db8390"
    );
    assert_eq!(
        checksum("", "", ""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        checksum("xyz+k&e=y%1", "Rq7Tok3n", "s3cr3t/with spaces"),
        "9870fd2229972a98e67487790018de7de7f861c58bb1a41615c39008cbc10558"
    );
}

#[test]
fn login_url_encodes_awkward_api_keys_and_state() {
    // A trailing slash on the root is dropped.
    let cfg = cfg_for("https://kite.zerodha.com/", "xyz+k&e=y%1", SECRET);
    let url = login_url(&cfg, "a b&c=d");
    assert_eq!(
        url,
        "https://kite.zerodha.com/connect/login?v=3&api_key=xyz%2Bk%26e%3Dy%251\
         &redirect_params=state%3Da%2Bb%2526c%253Dd"
    );
    let parsed = Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    assert_eq!(pairs[0], ("v".into(), "3".into()));
    assert_eq!(pairs[1], ("api_key".into(), "xyz+k&e=y%1".into()));
    assert_eq!(pairs[2].0, "redirect_params");
    let inner = Url::parse(&format!("http://x/?{}", pairs[2].1)).unwrap();
    let state: Vec<(String, String)> = inner.query_pairs().into_owned().collect();
    assert_eq!(state, [("state".to_string(), "a b&c=d".to_string())]);
}

#[tokio::test]
async fn an_awkward_api_key_survives_the_whole_flow() {
    let key = "xyz+k&e=y%1";
    let app = KiteSimApp {
        api_key: key.into(),
        redirect_url: Some(format!("{CALLBACK}?acct=main")),
        ..KiteSimApp::demo()
    };
    let sim = KiteSim::start(KiteSimConfig {
        apps: vec![app],
        ..KiteSimConfig::default()
    })
    .await
    .unwrap();
    let cfg = cfg_for(&sim.base_url(), key, SECRET);
    let (rt, state) = browser_login(&login_url(&cfg, "s&t=%")).await;
    assert_eq!(state, "s&t=%");
    let c = client(&cfg);
    let session = c.exchange(&Secret::new(rt)).await.unwrap();
    assert_eq!(session.material.fields["api_key"], json!(key));
    c.validate(&session.material).await.unwrap();
    c.logout(&session.material).await.unwrap();
    assert!(!sim.is_token_valid(session.material.token.expose()));
}

fn exchange_class(status: u16, body: &str) -> BrokerError {
    errors::exchange_failure(&KiteError::read(&Answer::new(status, body.as_bytes())))
}

fn envelope(message: &str, error_type: &str) -> String {
    json!({"status": "error", "message": message, "error_type": error_type}).to_string()
}

#[test]
fn exchange_failures_classify() {
    use BrokerError as E;
    let kind = |e: &E| std::mem::discriminant(e);
    let rejected = kind(&E::Rejected(String::new()));
    let bad = kind(&E::BadSubmission(String::new()));
    let transient = kind(&E::Transient(String::new()));
    let config = kind(&E::Config(String::new()));
    let cases = [
        (
            403,
            envelope("Invalid `checksum`.", "TokenException"),
            rejected,
        ),
        (
            400,
            envelope("Invalid `checksum`.", "InputException"),
            rejected,
        ),
        (
            400,
            envelope("invalid CHECKSUM", "GeneralException"),
            rejected,
        ),
        (
            400,
            envelope("Invalid `api_key`.", "InputException"),
            rejected,
        ),
        (
            403,
            envelope("Invalid `api_key`.", "TokenException"),
            rejected,
        ),
        (400, envelope("Missing api_key", "InputException"), rejected),
        (
            403,
            envelope("Token is invalid or has expired.", "TokenException"),
            bad,
        ),
        (
            401,
            envelope("Token is invalid or has expired.", "TokenException"),
            bad,
        ),
        (403, envelope("Forbidden", "PermissionException"), bad),
        (
            400,
            envelope("Missing request_token", "InputException"),
            config,
        ),
        (404, envelope("Route not found", "GeneralException"), config),
        (
            400,
            envelope("Your account is blocked", "UserException"),
            rejected,
        ),
        (
            429,
            envelope("Too many requests", "NetworkException"),
            transient,
        ),
        (
            500,
            envelope("Something went wrong", "GeneralException"),
            transient,
        ),
        (
            503,
            envelope("Invalid `checksum`.", "GeneralException"),
            transient,
        ),
        (
            502,
            "<html><body>Bad Gateway</body></html>".into(),
            transient,
        ),
        (403, "<html>Forbidden</html>".into(), transient),
        (200, r#"{"status":"error"}"#.into(), transient),
        (200, String::new(), transient),
    ];
    for (status, body, want) in cases {
        let got = exchange_class(status, &body);
        assert_eq!(kind(&got), want, "{status} {body}: {got:?}");
    }
}

#[test]
fn validate_and_logout_failures_classify() {
    let read = |status: u16, body: &str| KiteError::read(&Answer::new(status, body.as_bytes()));
    let dead = envelope("Incorrect `api_key` or `access_token`.", "TokenException");
    for (status, body, is_dead) in [
        (403, dead.as_str(), true),
        (400, dead.as_str(), true),
        (401, r#"{"status":"error","message":"Unauthorized"}"#, true),
        (
            429,
            r#"{"status":"error","message":"Too many requests","error_type":"NetworkException"}"#,
            false,
        ),
        (
            500,
            r#"{"status":"error","message":"oops","error_type":"GeneralException"}"#,
            false,
        ),
        (403, "<html>Forbidden by the firewall</html>", false),
        (502, "", false),
    ] {
        let e = read(status, body);
        let v = errors::validate_failure(&e);
        let want_dead = matches!(v, BrokerError::DeadSession(_));
        assert_eq!(want_dead, is_dead, "{status} {body}: {v:?}");
        if !is_dead {
            assert!(matches!(v, BrokerError::Transient(_)), "{v:?}");
        }
        // Logging out: a dead token is fine, anything else is transient.
        assert_eq!(
            errors::logout_failure(&e).is_ok(),
            is_dead,
            "{status} {body}"
        );
    }
}

#[test]
fn classify_report_table() {
    let cases: [(Option<u16>, &str, bool); 17] = [
        // Another exception type at 403 is about the call, not the token.
        (
            Some(403),
            &envelope(
                "Insufficient permission for that call.",
                "PermissionException",
            ),
            false,
        ),
        (
            Some(403),
            &envelope("Incorrect `api_key` or `access_token`.", "TokenException"),
            true,
        ),
        (Some(403), "Forbidden", true),
        (Some(401), "", true),
        (None, &envelope("Token expired", "TokenException"), true),
        (
            Some(400),
            &envelope("Token expired", "TokenException"),
            true,
        ),
        (None, "Incorrect `api_key` or `access_token`.", true),
        (
            None,
            "kiteconnect.exceptions.TokenException: session expired",
            true,
        ),
        (
            Some(429),
            &envelope("Too many requests", "NetworkException"),
            false,
        ),
        (
            Some(500),
            &envelope("Something went wrong", "GeneralException"),
            false,
        ),
        (
            Some(502),
            "<html><body>502 Bad Gateway</body></html>",
            false,
        ),
        (Some(403), "<html><body>Forbidden</body></html>", false),
        (
            Some(503),
            &envelope("Kite is down", "NetworkException"),
            false,
        ),
        (
            None,
            &envelope("Order rejected: insufficient funds", "OrderException"),
            false,
        ),
        (
            Some(400),
            &envelope("Invalid `tradingsymbol`.", "InputException"),
            false,
        ),
        (
            Some(400),
            &envelope("Insufficient margin", "MarginException"),
            false,
        ),
        (None, "connection reset by peer", false),
    ];
    for (status, reason, dead) in cases {
        let got = classify_report(status, reason);
        match (&got, dead) {
            (Report::DeadSession(m), true) | (Report::Transient(m), false) => {
                assert!(!m.is_empty());
            }
            _ => panic!("{status:?} {reason}: {got:?}"),
        }
    }
    // The message says what Kite said.
    let Report::DeadSession(m) = classify_report(
        Some(403),
        &envelope("Incorrect `api_key` or `access_token`.", "TokenException"),
    ) else {
        panic!()
    };
    assert!(
        m.contains("HTTP 403 TokenException: Incorrect `api_key` or `access_token`."),
        "{m}"
    );
}
