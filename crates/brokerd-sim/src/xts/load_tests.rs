//! Tests of multi-account mode and the login load measures: pattern
//! accounts, logins per account, login latency, logins in flight, the rate
//! limit and the peak per window. Against the real server on 127.0.0.1:0.

use std::time::{Duration, Instant};

use brokerd_core::time::ManualClock;
use reqwest::Client;
use serde_json::{Value, json};

use super::*;

async fn pattern_sim() -> XtsSim {
    XtsSim::start(XtsSimConfig {
        pattern: Some(XtsSimPattern::scale()),
        ..XtsSimConfig::default()
    })
    .await
    .unwrap()
}

fn login_url(sim: &XtsSim, api: Api) -> String {
    match api {
        Api::Interactive => format!("{}/interactive/user/session", sim.base_url()),
        Api::Market => format!("{}/apibinarymarketdata/auth/login", sim.base_url()),
    }
}

async fn login_with(sim: &XtsSim, api: Api, app_key: &str, secret_key: &str) -> (u16, Value) {
    let body = json!({"appKey": app_key, "secretKey": secret_key, "source": "WEBAPI"});
    let r = Client::new()
        .post(login_url(sim, api))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Logs account `id` of the scale pattern in on `api`; its token.
async fn login_id(sim: &XtsSim, api: Api, id: &str) -> String {
    let user = XtsSimPattern::scale().user(id).unwrap();
    let (k, s) = user.keys(api);
    let (status, body) = login_with(sim, api, k, s).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["token"].as_str().unwrap().to_owned()
}

async fn profile_status(sim: &XtsSim, token: &str) -> u16 {
    Client::new()
        .get(format!("{}/interactive/user/profile", sim.base_url()))
        .header("Authorization", token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn pattern_users_and_ids() {
    let p = XtsSimPattern::scale();
    let u = p.user("17").unwrap();
    assert_eq!(
        (u.user_id.as_str(), u.interactive_app_key.as_str()),
        ("SCALE17", "scale-key-17")
    );
    assert_eq!(
        (
            u.interactive_secret_key.as_str(),
            u.market_app_key.as_str(),
            u.market_secret_key.as_str()
        ),
        ("scale-secret-17", "scale-md-key-17", "scale-md-secret-17")
    );
    assert_eq!(u.client_codes, ["SCALE17"]);
    assert!(u.is_investor_client);
    assert_eq!(p.id_of(Api::Interactive, "scale-key-a_b-9"), Some("a_b-9"));
    assert_eq!(p.id_of(Api::Market, "scale-md-key-9"), Some("9"));
    // The market prefix is not the interactive one, nor the reverse.
    assert_eq!(p.id_of(Api::Interactive, "scale-md-key-9"), None);
    assert_eq!(p.id_of(Api::Market, "scale-key-9"), None);
    for bad in ["", "a b", "é", "x/y", &"9".repeat(MAX_ID_LEN + 1)] {
        assert!(p.user(bad).is_none(), "{bad:?}");
        assert_eq!(p.id_of(Api::Interactive, &format!("scale-key-{bad}")), None);
    }
    assert!(p.user(&"9".repeat(MAX_ID_LEN)).is_some());
}

#[tokio::test]
async fn any_pair_of_the_pattern_is_an_account_of_its_own() {
    let sim = pattern_sim().await;
    let (status, body) = login_with(&sim, Api::Interactive, "scale-key-7", "scale-secret-7").await;
    assert_eq!(status, 200, "{body}");
    let r = &body["result"];
    assert_eq!(r["userID"], "SCALE7");
    assert_eq!(r["clientCodes"], json!(["SCALE7"]));
    let a7 = r["token"].as_str().unwrap().to_owned();
    assert_eq!(profile_status(&sim, &a7).await, 200);
    let m7 = login_id(&sim, Api::Market, "7").await;

    // Another account's logins leave account 7's tokens alive.
    let a8 = login_id(&sim, Api::Interactive, "8").await;
    let m8 = login_id(&sim, Api::Market, "8").await;
    assert!([&a7, &m7, &a8, &m8].iter().all(|t| sim.is_token_valid(t)));
    // Account 7's second interactive login kills its first token only.
    let a7b = login_id(&sim, Api::Interactive, "7").await;
    assert!(!sim.is_token_valid(&a7));
    assert!([&a7b, &m7, &a8, &m8].iter().all(|t| sim.is_token_valid(t)));

    // The wrong secret for the id, or a key outside the pattern, is refused.
    for (k, s) in [
        ("scale-key-7", "scale-secret-8"),
        ("scale-key-7", ""),
        ("scale-md-key-7", "scale-secret-7"),
        ("other-key-7", "scale-secret-7"),
        ("scale-key-", "scale-secret-"),
    ] {
        let (status, body) = login_with(&sim, Api::Interactive, k, s).await;
        assert_eq!(status, 400, "{k} {s}: {body}");
        let expect = if s.is_empty() {
            "Bad Request"
        } else {
            "Invalid AppKey or SecretKey"
        };
        assert_eq!(body["description"], expect, "{k} {s}");
    }
    // The configured demo user still logs in beside the pattern.
    let demo = XtsSimUser::demo();
    let (status, body) = login_with(
        &sim,
        Api::Interactive,
        &demo.interactive_app_key,
        &demo.interactive_secret_key,
    )
    .await;
    assert_eq!(
        (status, body["result"]["userID"].as_str()),
        (200, Some("DEMO01"))
    );
}

#[tokio::test]
async fn without_a_pattern_only_configured_users_log_in() {
    let sim = XtsSim::start(XtsSimConfig::default()).await.unwrap();
    let (status, body) = login_with(&sim, Api::Interactive, "scale-key-7", "scale-secret-7").await;
    assert_eq!(status, 400, "{body}");
    assert!(sim.logins_per_account(Api::Interactive).is_empty());
}

#[tokio::test]
async fn logins_are_counted_per_account_and_api() {
    let sim = pattern_sim().await;
    for id in ["1", "2", "2"] {
        login_id(&sim, Api::Interactive, id).await;
    }
    login_id(&sim, Api::Market, "2").await;
    // A wrong secret is an attempt of that account, not a success.
    login_with(&sim, Api::Interactive, "scale-key-3", "nope").await;
    // An injected failure is an attempt too.
    sim.fail_next_logins(Api::Market, 1, FailMode::ServerError(503));
    let (status, _) = login_with(&sim, Api::Market, "scale-md-key-1", "scale-md-secret-1").await;
    assert_eq!(status, 503);

    let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        sim.logins_per_account(Api::Interactive),
        counts(&[("SCALE1", 1), ("SCALE2", 2), ("SCALE3", 1)])
    );
    assert_eq!(
        sim.successful_logins_per_account(Api::Interactive),
        counts(&[("SCALE1", 1), ("SCALE2", 2)])
    );
    assert_eq!(
        sim.logins_per_account(Api::Market),
        counts(&[("SCALE1", 1), ("SCALE2", 1)])
    );
    assert_eq!(
        sim.successful_logins_per_account(Api::Market),
        counts(&[("SCALE2", 1)])
    );
    // The per-api totals still count every attempt.
    assert_eq!(sim.login_count(Api::Interactive), 4);
    assert_eq!(sim.login_count(Api::Market), 2);
    assert_eq!(sim.login_times(Api::Interactive).len(), 4);
}

#[tokio::test]
async fn login_latency_holds_the_answer_and_counts_the_logins_in_flight() {
    let sim = pattern_sim().await;
    let latency = Duration::from_millis(300);
    sim.set_login_latency(latency);
    let started = Instant::now();
    let logins: Vec<_> = (0..5)
        .map(|i| {
            let sim = sim.clone();
            tokio::spawn(async move { login_id(&sim, Api::Interactive, &i.to_string()).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for login in logins {
        tokens.push(login.await.unwrap());
    }
    assert!(started.elapsed() >= latency, "{:?}", started.elapsed());
    // Held after processing: the token was issued when the login arrived.
    assert!(tokens.iter().all(|t| sim.is_token_valid(t)));
    assert_eq!(sim.take_peak_logins_in_flight(), 5);
    assert_eq!(sim.logins_in_flight(), 0);
    // The next peak starts from what is in flight now: nothing.
    assert_eq!(sim.take_peak_logins_in_flight(), 0);
    // Every login of the five arrived within one second.
    assert_eq!(sim.peak_logins_in(Duration::from_secs(1)), 5);

    // Checks are counted and get their own latency; logins keep theirs.
    sim.set_check_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(profile_status(&sim, &tokens[0]).await, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(profile_status(&sim, "not-a-token").await, 400);
    assert_eq!(sim.check_count(Api::Interactive), 2);
    assert_eq!(sim.check_times(Api::Interactive).len(), 2);
    assert_eq!(sim.check_count(Api::Market), 0);
}

/// On a manual clock the login latency is virtual: the answer leaves when
/// the clock has moved past it, however little real time passed.
#[tokio::test]
async fn login_latency_follows_the_sims_clock() {
    let sim = pattern_sim().await;
    let clock = ManualClock::new(chrono::Utc::now());
    sim.set_clock(clock.clone());
    sim.set_login_latency(Duration::from_secs(3600));
    let pending = tokio::spawn({
        let sim = sim.clone();
        async move { login_id(&sim, Api::Interactive, "1").await }
    });
    // Arrived and held: in flight, not answered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sim.logins_in_flight() == 0 {
        assert!(Instant::now() < deadline, "the login never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    clock.advance(chrono::Duration::seconds(3600));
    let token = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("answered once the clock moved")
        .unwrap();
    assert!(sim.is_token_valid(&token));
}

#[tokio::test]
async fn the_rate_limit_answers_429_beyond_its_logins_per_window() {
    let sim = pattern_sim().await;
    let clock = ManualClock::new(chrono::Utc::now());
    sim.set_clock(clock.clone());
    sim.set_login_rate_limit(Some(RateLimit {
        logins: 3,
        per: Duration::from_secs(1),
    }));
    // Both apis count against one limit: the host's.
    login_id(&sim, Api::Interactive, "1").await;
    login_id(&sim, Api::Market, "1").await;
    // A queued fault is kept for a login the limit admits.
    sim.fail_next_logins(Api::Interactive, 1, FailMode::ServerError(503));
    let (status, _) = login_with(&sim, Api::Interactive, "scale-key-2", "scale-secret-2").await;
    assert_eq!(status, 503);
    for _ in 0..2 {
        let (status, body) =
            login_with(&sim, Api::Interactive, "scale-key-3", "scale-secret-3").await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["type"], "error");
        assert_eq!(body["description"], "Too Many Requests");
    }
    assert_eq!(sim.rate_limited_logins(), 2);
    // Refused attempts are attempts of their account, never successes.
    assert_eq!(sim.logins_per_account(Api::Interactive)["SCALE3"], 2);
    assert!(
        !sim.successful_logins_per_account(Api::Interactive)
            .contains_key("SCALE3")
    );
    // 999 ms later the window is still full; at 1 s the first three leave it.
    clock.advance(chrono::Duration::milliseconds(999));
    let (status, _) = login_with(&sim, Api::Interactive, "scale-key-3", "scale-secret-3").await;
    assert_eq!(status, 429);
    clock.advance(chrono::Duration::milliseconds(1));
    login_id(&sim, Api::Interactive, "3").await;
    assert_eq!(sim.rate_limited_logins(), 3);
    // Off again: nothing is refused.
    sim.set_login_rate_limit(None);
    for id in ["4", "5", "6", "7"] {
        login_id(&sim, Api::Interactive, id).await;
    }
    assert_eq!(sim.rate_limited_logins(), 3);
    let stats: Value = Client::new()
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = &stats["result"];
    assert_eq!(
        (r["rate_limited_logins"].as_u64(), r["accounts"].as_u64()),
        (Some(3), Some(8)),
        "{stats}"
    );
    assert_eq!(r["logins_in_flight"], 0);
}

#[test]
fn peak_in_window_counts_the_busiest_window() {
    let t0 = chrono::Utc::now();
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let second = Duration::from_secs(1);
    assert_eq!(peak_in_window(&[], second), 0);
    assert_eq!(peak_in_window(&[at(5)], second), 1);
    // Unsorted on purpose. [100, 1100) holds 100, 500, 1000 and 1050.
    let times = [at(1900), at(0), at(1050), at(500), at(100), at(1000)];
    assert_eq!(peak_in_window(&times, second), 4);
    // Half-open: two logins exactly a window apart are never in one.
    assert_eq!(peak_in_window(&[at(0), at(1000)], second), 1);
    assert_eq!(peak_in_window(&[at(0), at(999)], second), 2);
    // Equal times all count.
    assert_eq!(peak_in_window(&[at(3); 7], second), 7);
}
