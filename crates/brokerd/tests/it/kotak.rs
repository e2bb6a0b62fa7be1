//! Kotak Neo end to end against the Kotak simulator: the two seed incidents
//! (a stale TOTP; JWTs dying 13 s after login) made impossible, and every
//! error shape understood.

use crate::common;

use std::time::Duration;

use brokerd_sim::kotak::{DeadShape, IpRule, KotakFail, KotakSimUser};
use common::kotak::Kotak;
use common::{error_code, eventually, eventually_async, session};
use serde_json::json;

const FLATTENED_900901: &str = r#"{"code":"900901","message":"Invalid Credentials","description":"Invalid JWT token. Make sure you have provided the correct security credentials"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_carries_what_orders_need() {
    let k = Kotak::start("").await;
    let reply = k.token().await;
    let s = session(&reply);
    let u = KotakSimUser::demo();
    assert_eq!(s["headers"]["Auth"], s["token"]);
    assert!(s["headers"]["Sid"].as_str().unwrap().len() > 4);
    assert_eq!(s["headers"]["Sid"], s["fields"]["sid"]);
    assert_eq!(s["headers"]["neo-fin-key"], "neotradeapi");
    assert_eq!(s["headers"]["Authorization"], u.access_token.as_str());
    // Exactly the documented fields, with the validate answer's values
    // (feedUrl/rtUrl were not sent, so they are absent).
    let trade = k.sim.last_trade_answer().unwrap();
    let base = k.sim.base_url();
    common::assert_session_fields(
        &reply,
        json!({"api_root": base, "base_url": base, "sid": trade["sid"], "ucc": u.ucc,
               "data_center": u.data_center, "rid": trade["rid"], "hs_server_id": ""}),
        &[&u.mpin, &u.totp_seed],
        &[&u.access_token, s["token"].as_str().unwrap()],
    );
    // Trade tokens end at 00:00 IST; expires_at comes from the JWT's exp.
    assert!(
        s["expires_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00+05:30"),
        "{s}"
    );
    assert!(k.sim.is_token_valid(s["token"].as_str().unwrap()));
    assert_eq!((k.sim.login_count(), k.sim.validate_count()), (1, 1));
}

/// The feed and order-feed URLs of the validate answer reach the session
/// when Kotak sends them: the SDK's websockets connect there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_urls_pass_through_when_kotak_sends_them() {
    let k = Kotak::start_with_sim("", |sim| {
        let host = sim.base_url().replacen("http", "ws", 1);
        sim.set_feed_urls(Some((format!("{host}/feed"), format!("{host}/realtime"))));
    })
    .await;
    let reply = k.token().await;
    let s = session(&reply);
    let u = KotakSimUser::demo();
    let trade = k.sim.last_trade_answer().unwrap();
    let base = k.sim.base_url();
    assert!(
        trade["feedUrl"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:")
    );
    common::assert_session_fields(
        &reply,
        json!({"api_root": base, "base_url": base, "sid": trade["sid"], "ucc": u.ucc,
               "data_center": u.data_center, "rid": trade["rid"], "hs_server_id": "",
               "feed_url": trade["feedUrl"], "rt_url": trade["rtUrl"]}),
        &[&u.mpin, &u.totp_seed],
        &[&u.access_token, s["token"].as_str().unwrap()],
    );
}

/// Seed 000: a TOTP generated 2 s before its window ends is not used; the
/// login waits and sends the next window's code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_two_seconds_before_the_roll_over_is_not_used() {
    let k = Kotak::start("").await;
    // Wait until 28 s into a window (2 s left, under the minimum), on the
    // clock the daemon and the simulator share.
    let into = k.now_ms() % 30_000;
    let wait = (28_000 + 30_000 - into) % 30_000;
    k.sleep(Duration::from_millis(wait)).await;
    let asked_step = (k.now_ms() / 30_000) as i64;
    assert_eq!(session(&k.token().await)["generation"], 1);
    let attempts = k.sim.totp_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    let a = &attempts[0];
    assert!(a.accepted);
    assert_eq!(
        a.matched_step,
        Some(asked_step + 1),
        "the next window's code was sent"
    );
    assert!(
        a.at_unix_ms >= (asked_step + 1) * 30_000,
        "and only once that window had begun"
    );
}

/// A rejected TOTP gets exactly one retry, in the next window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_totp_is_retried_once_in_the_next_window() {
    let k = Kotak::start("").await;
    k.sim.fail_next_logins(1, KotakFail::WrongTotp);
    assert_eq!(session(&k.token().await)["generation"], 1);
    let attempts = k.sim.totp_attempts();
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].accepted && attempts[1].accepted);
    assert!(
        attempts[1].step > attempts[0].step,
        "never the same window twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_rejected_twice_locks_out_and_names_the_clock() {
    // The broker's clock runs 45 s ahead: every code is for the wrong window.
    let k = Kotak::start_with_sim("", |sim| sim.set_clock_offset(45)).await;
    // The clock is checked in the background once the daemon is ready.
    let k = &k;
    eventually_async(Duration::from_secs(5), || async move {
        k.status().await["warnings"][0].is_string()
    })
    .await;
    let status = k.status().await;
    assert!(
        status["warnings"][0].as_str().unwrap().contains("clock"),
        "{status}"
    );
    let reply = k.token().await;
    assert_eq!(error_code(&reply), "locked_out");
    let msg = reply["error"]["message"].as_str().unwrap();
    // The Date header has whole seconds: 44 or 45 s.
    assert!(
        msg.contains("TOTP was rejected twice")
            && (msg.contains("45s behind") || msg.contains("44s behind")),
        "{msg}"
    );
    assert_eq!(k.sim.login_count(), 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(k.sim.login_count(), 2, "no further attempt");
    // The clock is fixed. A rejected code is never sent again anyway (the
    // next login uses a new window), so `login` may try with the same seed.
    k.sim.set_clock_offset(0);
    let login = k.call(json!({"op": "login", "broker": "kotak_neo"})).await;
    assert_eq!(session(&login)["generation"], 1, "{login}");
    assert_eq!(k.sim.login_count(), 3);
}

/// Wrong MPIN: exactly one attempt, then locked_out naming the MPIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_mpin_causes_exactly_one_login_attempt() {
    let k = Kotak::start("").await;
    k.sim.fail_next_logins(1, KotakFail::WrongMpin);
    let reply = k.token().await;
    assert_eq!(error_code(&reply), "locked_out");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MPIN was rejected ([401] Invalid MPIN)"),
        "{reply}"
    );
    for _ in 0..5 {
        assert_eq!(error_code(&k.token().await), "locked_out");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((k.sim.login_count(), k.sim.validate_count()), (1, 1));
    assert_eq!(k.status().await["state"], "locked_out");
    // `login` with the MPIN unchanged: refused without a broker call.
    let login = k.call(json!({"op": "login", "broker": "kotak_neo"})).await;
    common::resend_refused(&login);
    assert_eq!((k.sim.login_count(), k.sim.validate_count()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_ucc_or_access_token_locks_out_naming_it() {
    let k = Kotak::start("").await;
    k.sim.fail_next_logins(1, KotakFail::WrongUcc);
    let reply = k.token().await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UCC was rejected ([429] Invalid UCC)"),
        "{reply}"
    );
    // Nothing changed: `login` refuses to send the rejected UCC again, and
    // so does a restart (the rejection is stored as a fingerprint).
    let reply = k
        .call(json!({"op": "login", "broker": "kotak_neo", "wait_secs": 70}))
        .await;
    assert_eq!(error_code(&reply), "locked_out");
    let mut k = k;
    k.restart().await;
    let status = k.status().await;
    assert_eq!(status["state"], "locked_out", "{status}");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("before a restart"),
        "{status}"
    );
    assert_eq!(error_code(&k.token().await), "locked_out");
    assert_eq!(k.sim.login_count(), 1);

    // Another account state: the access token refused.
    let k = Kotak::start("").await;
    k.sim.fail_next_logins(1, KotakFail::BadAccessToken);
    let reply = k.token().await;
    assert_eq!(error_code(&reply), "locked_out");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("access token was rejected ([900901]"),
        "{reply}"
    );
    assert_eq!(k.sim.login_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_424_backs_off_instead_of_locking_out() {
    let k = Kotak::start("backoff_initial = \"300ms\"").await;
    k.sim.fail_next_logins(1, KotakFail::Status424);
    let reply = k.token().await;
    assert_eq!(error_code(&reply), "unavailable");
    assert_eq!(k.status().await["state"], "backoff");
    assert!(eventually(Duration::from_secs(40), || k.sim.successful_logins() == 1).await);
}

/// Seed 000/001: 100 clients report the same dead generation with the
/// flattened 900901 body: exactly one login, everyone gets the new
/// generation, from a brand-new client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reports_of_one_dead_generation_cause_one_login() {
    let k = Kotak::start("").await;
    let first = session(&k.token().await).clone();
    let slot = k
        .running
        .as_ref()
        .unwrap()
        .registry
        .find("kotak_neo", None, None)
        .unwrap()
        .clone();
    let first_client = slot.status().client_serial.unwrap();
    k.sim.reject_all_now();
    let reports = (0..100).map(|_| k.invalidate(&first["generation"], json!(FLATTENED_900901)));
    let replies = futures::future::join_all(reports).await;
    for r in &replies {
        assert_eq!(session(r)["generation"], 2, "{r}");
    }
    assert_eq!(k.sim.login_count(), 2);
    assert_ne!(
        slot.status().client_serial.unwrap(),
        first_client,
        "a brand-new client"
    );
}

/// The gateway's `{"fault":…}` body (sent as a JSON object) is a dead
/// session too; IP rules and outages are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_bodies_are_dead_but_ip_rules_and_outages_are_not() {
    let k = Kotak::start("").await;
    let first = session(&k.token().await).clone();
    let ip = k
        .invalidate(
            &first["generation"],
            json!({"stCode": 100008, "errMsg": "unauthorized"}),
        )
        .await;
    assert_eq!(error_code(&ip), "ip_not_allowed");
    assert!(
        ip["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[100008] unauthorized"),
        "{ip}"
    );
    let mismatch = k
        .invalidate(
            &first["generation"],
            json!(r#"{"stCode":1037,"errMsg":"session ip doesnt match with reqest ip"}"#),
        )
        .await;
    assert_eq!(error_code(&mismatch), "ip_not_allowed");
    let outage = k
        .call(json!({"op": "invalidate", "broker": "kotak_neo", "generation": 1, "http_status": 503, "reason": "Service Unavailable"}))
        .await;
    assert_eq!(
        session(&outage)["generation"],
        1,
        "an outage is not a dead session"
    );
    assert_eq!(k.sim.login_count(), 1, "no login for any of those");
    let fault = json!({"fault": {"code": 900901, "message": "Invalid Credentials", "description": "Invalid Credentials. Make sure you have provided the correct security credentials"}});
    let renewed = k.invalidate(&first["generation"], fault).await;
    assert_eq!(session(&renewed)["generation"], 2);
    assert_eq!(k.sim.login_count(), 2);
}

/// Seed 001: tokens that die 13 s after every login. After a bounded number
/// of logins the account is in conflict, saying another program is logging
/// in, and no login storm follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_dying_thirteen_seconds_after_login_end_in_conflict() {
    let k = Kotak::start("conflict_threshold = 3").await;
    k.sim.set_kill_after(Some(Duration::from_secs(13)));
    k.sim.set_dead_shape(DeadShape::Flattened900901);
    let mut reply = k.token().await;
    let mut logins = 0;
    while reply["ok"] == true {
        logins += 1;
        assert!(logins <= 3);
        let s = session(&reply).clone();
        let token = s["token"].as_str().unwrap().to_string();
        assert!(eventually(Duration::from_secs(20), || !k.sim.is_token_valid(&token)).await);
        reply = k
            .invalidate(&s["generation"], json!(FLATTENED_900901))
            .await;
    }
    assert_eq!(error_code(&reply), "conflict");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another program is probably logging into this account")
    );
    assert_eq!(k.status().await["state"], "conflict");
    for _ in 0..10 {
        assert_eq!(error_code(&k.token().await), "conflict");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(k.sim.login_count(), 3, "login rate bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_kotak_session_is_checked_and_reused_after_a_restart() {
    let mut k = Kotak::start("").await;
    let first = session(&k.token().await).clone();
    // An IP rule on the check call says nothing about the session's validity.
    k.sim.set_ip_rule(Some(IpRule::SessionIpMismatch));
    k.restart().await;
    assert_eq!(
        session(&k.token().await)["token"],
        first["token"],
        "served from the store without a login"
    );
    assert_eq!(k.sim.login_count(), 1);
    // A session the broker no longer accepts is replaced after a restart.
    k.sim.set_ip_rule(None);
    k.sim.reject_all_now();
    k.restart().await;
    // Served until the background check finds it dead, then one login.
    assert!(
        eventually(Duration::from_secs(20), || k.sim.login_count() == 2).await,
        "the check found it dead and logged in"
    );
    assert_eq!(session(&k.token().await)["generation"], 2);
    assert_eq!(
        k.sim.login_count(),
        2,
        "no TOTP replayed across the restart, so no retry"
    );
    assert!(k.sim.totp_attempts().iter().all(|a| a.accepted));
}
