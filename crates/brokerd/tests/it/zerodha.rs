//! Zerodha end to end: the daily browser login reduced to opening one link,
//! against the Kite simulator, over the real socket and callback listener.

use crate::common;

use std::time::Duration;

use brokerd_core::time::Clock;
use common::browser::{Browser, KITE_KEY, KITE_SECRET, ist_in, next_event, open, subscribe};
use common::virtual_time::Pump;
use common::{error_code, eventually, eventually_async, session};
use serde_json::json;

fn zerodha(extra: serde_json::Value) -> serde_json::Value {
    let mut r = json!({"broker": "zerodha"});
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

#[tokio::test]
async fn one_click_login_wakes_waiting_clients_and_subscribers() {
    let b = Browser::start("", "", "").await;
    // No session yet: a token request answers at once with the link.
    let r = b.call(zerodha(json!({"op": "token"}))).await;
    assert_eq!(error_code(&r), "auth_required", "{r}");
    let url = r["error"]["login_url"]
        .as_str()
        .expect("login_url")
        .to_string();
    assert!(
        url.starts_with(&format!(
            "{}/connect/login?v=3&api_key={KITE_KEY}",
            b.kite.base_url()
        )),
        "{url}"
    );
    assert!(url.contains("redirect_params=state%3D"), "{url}");
    assert_eq!(b.status_of("zerodha").await["state"], "auth_required");

    let mut events = subscribe(&b, "zerodha").await;
    let waiter = {
        let mut c = b.client().await;
        tokio::spawn(async move {
            c.call(&json!({"op": "token", "broker": "zerodha", "wait_secs": 30}))
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished(), "the waiter waits for the person");

    // The person opens the link: Kite redirects into the callback.
    let (status, page) = open(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("zerodha/main is logged in as ZD1234"),
        "{page}"
    );

    let got = waiter.await.unwrap();
    let s = session(&got);
    assert_eq!(s["generation"], 1);
    let token = s["token"].as_str().unwrap();
    assert!(b.kite.is_token_valid(token));
    assert!(!page.contains(token), "the page never shows the token");
    assert_eq!(
        s["headers"]["Authorization"],
        format!("token {KITE_KEY}:{token}")
    );
    assert_eq!(s["headers"]["X-Kite-Version"], "3");
    // Exactly the documented fields, with the exchange answer's values.
    let answer = b.kite.last_exchange_answer().unwrap();
    common::assert_session_fields(
        &got,
        json!({"api_root": b.kite.base_url(), "ticker_root": b.kite.ticker_url(),
               "user_id": "ZD1234", "api_key": KITE_KEY,
               "public_token": answer["public_token"], "login_time": answer["login_time"]}),
        &[KITE_SECRET],
        &[token],
    );
    assert!(
        answer["public_token"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    // The next cut-off (the harness sets it an hour behind the clock).
    let expires = chrono::DateTime::parse_from_rfc3339(s["expires_at"].as_str().unwrap()).unwrap();
    let left = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(22) && left <= chrono::Duration::hours(23),
        "{s}"
    );

    let renewed = next_event(&mut events, "renewed", Duration::from_secs(5)).await;
    assert_eq!(renewed["generation"], 1);
    assert_eq!(renewed["broker"], "zerodha");
    assert_eq!(b.status_of("zerodha").await["state"], "active");
    assert_eq!(b.kite.successful_exchanges(), 1);

    // The link was single-use: following it again is refused before any exchange.
    let (status, page) = open(&url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("state is unknown, used or expired"), "{page}");
    assert_eq!(b.kite.exchange_count(), 1);
}

#[tokio::test]
async fn reused_expired_and_forged_submissions_fail_clearly() {
    let b = Browser::start("", "", "").await;
    let rt = b.kite.mint_request_token(KITE_KEY);
    let r = b
        .call(zerodha(json!({"op": "submit", "request_token": rt})))
        .await;
    assert_eq!(session(&r)["generation"], 1);

    // Reused: Kite refuses it; the live session stays.
    let r = b
        .call(zerodha(json!({"op": "submit", "request_token": rt})))
        .await;
    assert_eq!(error_code(&r), "login_failed", "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("single-use") && msg.contains("Token is invalid or has expired"),
        "{msg}"
    );
    assert_eq!(b.status_of("zerodha").await["state"], "active");
    assert_eq!(
        session(&b.call(zerodha(json!({"op": "token"}))).await)["generation"],
        1
    );

    // Expired.
    b.kite.set_request_token_ttl(Duration::from_secs(1));
    let old = b.kite.mint_request_token(KITE_KEY);
    b.time.sleep(Duration::from_secs(2)).await;
    let r = b
        .call(zerodha(json!({"op": "submit", "request_token": old})))
        .await;
    assert_eq!(error_code(&r), "login_failed", "{r}");

    // Forged state at the callback: refused before any exchange.
    let before = b.kite.exchange_count();
    let cb = format!(
        "{}/callback/zerodha/main?request_token=x&status=success&state=forged",
        b.callback_url()
    );
    let (status, page) = open(&cb).await;
    assert_eq!(status, 400, "{page}");
    let (status, page) = open(&format!(
        "{}/callback/zerodha/main?request_token=x&status=success",
        b.callback_url()
    ))
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("no state"), "{page}");
    assert_eq!(b.kite.exchange_count(), before);

    // Wrong field for the broker.
    let r = b
        .call(zerodha(json!({"op": "submit", "api_session": "123"})))
        .await;
    assert_eq!(error_code(&r), "bad_request");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("takes \"request_token\"")
    );
}

#[tokio::test]
async fn the_wrong_user_or_a_wrong_secret_never_becomes_the_session() {
    let b = Browser::start("user_id = \"ZD1234\"", "", "").await;
    b.kite.set_browser_user(Some("XY9999".into()));
    let (status, page) = open(&b.login_url("zerodha").await).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("XY9999") && page.contains("ZD1234"), "{page}");
    assert_eq!(b.status_of("zerodha").await["state"], "auth_required");

    let mut b = b;
    b.stop().await;
    let text = b.config_text().replace(KITE_SECRET, "not-the-secret");
    let path = b.dir.path().join("brokerd.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = brokerd::config::Config::load(&path).unwrap();
    let running = brokerd::daemon::start_on(loaded, None, b.time.clock.clone())
        .await
        .unwrap();
    b.running = Some(running);
    let rt = b.kite.mint_request_token(KITE_KEY);
    let r = b
        .call(zerodha(json!({"op": "submit", "request_token": rt})))
        .await;
    assert_eq!(error_code(&r), "locked_out", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("checksum"),
        "{r}"
    );
    assert_eq!(b.status_of("zerodha").await["state"], "locked_out");
}

#[tokio::test]
async fn the_cutoff_moves_the_account_to_auth_required() {
    // Far enough ahead (in virtual time: 3 s of real time) that a slow
    // start cannot push it to tomorrow.
    let secs = 60;
    let time = Pump::start();
    let cutoff = ist_in(&time, secs);
    let cutoff_at = time.clock.now() + chrono::Duration::seconds(secs);
    let b = Browser::start_on(time, &format!("cutoff = \"{cutoff}\""), "", "").await;
    // Kite ends its tokens at the same cut-off.
    b.kite
        .set_cutoff(chrono::NaiveTime::parse_from_str(&cutoff, "%H:%M:%S").ok());
    let mut events = subscribe(&b, "zerodha").await;
    let before = b.login_url("zerodha").await;
    let r = b.log_in_zerodha().await;
    let s = session(&r).clone();
    assert!(s["expires_at"].as_str().unwrap().contains(&cutoff), "{s}");
    // Less than expiring_notice (30 min) is left: announced at once.
    let expiring = next_event(&mut events, "expiring", Duration::from_secs(5)).await;
    assert_eq!(expiring["generation"], 1);
    assert!(
        expiring["login_url"]
            .as_str()
            .unwrap()
            .contains("/connect/login")
    );
    // More validity than the cut-off leaves: a new login would end at the
    // same cut-off, so nobody is woken and the session stays active.
    let r = b
        .call(zerodha(json!({"op": "token", "min_valid_secs": 3600})))
        .await;
    assert_eq!(error_code(&r), "unavailable", "{r}");
    assert_eq!(b.status_of("zerodha").await["state"], "active");

    // (The startup announcement, generation 0, may come first.)
    let token = s["token"].as_str().unwrap().to_string();
    assert!(b.kite.is_token_valid(&token));
    let mut auth = next_event(&mut events, "auth_required", Duration::from_secs(20)).await;
    if auth["generation"] == 0 {
        auth = next_event(&mut events, "auth_required", Duration::from_secs(20)).await;
    }
    assert_eq!(auth["generation"], 1);
    assert!(
        b.time.clock.now() >= cutoff_at - chrono::Duration::seconds(1),
        "announced at the cut-off, not before"
    );
    // And at the simulator, by the same clock, the token died then too.
    assert!(!b.kite.is_token_valid(&token));
    // The alert carries a fresh link: the one from before the login is retired.
    let link = auth["login_url"].as_str().unwrap();
    assert!(link.contains("state%3D"), "{link}");
    assert_ne!(link, before);
    let r = b.call(zerodha(json!({"op": "token"}))).await;
    assert_eq!(error_code(&r), "auth_required");
    assert_eq!(r["error"]["login_url"], link);
    let (status, page) = open(&before).await;
    assert_eq!(status, 400, "the old link is dead: {page}");
    let (status, page) = open(link).await;
    assert_eq!(status, 200, "the alert's link works: {page}");
}

#[tokio::test]
async fn a_logout_during_a_submission_leaves_the_account_alone() {
    let b = Browser::start("", "", "").await;
    // Virtual time: 20 s of latency is a second of real time, the logout
    // comes 4 s (200 ms) into it.
    b.kite.set_latency(Duration::from_secs(20));
    let pending = {
        let mut c = b.client().await;
        tokio::spawn(async move {
            c.call(
                &json!({"op": "submit", "broker": "zerodha", "request_token": "not-a-real-token"}),
            )
            .await
            .unwrap()
        })
    };
    b.time.sleep(Duration::from_secs(4)).await;
    let r = b.call(zerodha(json!({"op": "logout"}))).await;
    assert_eq!(r["ok"], true, "{r}");
    let r = pending.await.unwrap();
    assert_eq!(error_code(&r), "login_failed", "{r}");
    // Logged out means nobody wants a session: no auth_required, no alerts.
    assert_eq!(b.status_of("zerodha").await["state"], "empty");
}

#[tokio::test]
async fn a_reported_token_exception_needs_a_person_fenced_by_generation() {
    let b = Browser::start("", "", "").await;
    let r = b.log_in_zerodha().await;
    assert_eq!(session(&r)["generation"], 1);
    b.kite.kill_all_sessions();
    let body = json!({"status":"error","message":"Incorrect `api_key` or `access_token`.","error_type":"TokenException"});
    // A 429 is not a dead session: the session stays.
    let r = b.call(zerodha(json!({"op": "invalidate", "generation": 1, "http_status": 429,
        "reason": {"status":"error","message":"Too many requests","error_type":"NetworkException"}}))).await;
    assert_eq!(session(&r)["generation"], 1);
    let r = b
        .call(zerodha(
            json!({"op": "invalidate", "generation": 1, "http_status": 403, "reason": body}),
        ))
        .await;
    assert_eq!(error_code(&r), "auth_required", "{r}");
    assert_eq!(b.status_of("zerodha").await["state"], "auth_required");

    let r = b.log_in_zerodha().await;
    assert_eq!(session(&r)["generation"], 2);
    // A late report of generation 1 is stale: answered with 2, no state change.
    let r = b
        .call(zerodha(
            json!({"op": "invalidate", "generation": 1, "http_status": 403, "reason": body}),
        ))
        .await;
    assert_eq!(session(&r)["generation"], 2);
    assert_eq!(b.status_of("zerodha").await["state"], "active");
}

#[tokio::test]
async fn restart_validates_the_stored_session_and_logout_ends_it() {
    let mut b = Browser::start("", "", "").await;
    let r = b.log_in_zerodha().await;
    let token = session(&r)["token"].as_str().unwrap().to_string();
    b.restart().await;
    // Checked in the background once the daemon is ready (invariant 19).
    assert!(
        eventually(Duration::from_secs(10), || b.kite.profile_count() >= 1).await,
        "the stored session was checked with /user/profile"
    );
    let r = b.call(zerodha(json!({"op": "token"}))).await;
    assert_eq!(session(&r)["token"], token.as_str());
    assert_eq!(
        b.kite.successful_exchanges(),
        1,
        "no new login after a restart"
    );

    // Killed while the daemon was down: the restart sees it and asks for a person.
    b.stop().await;
    b.kite.kill_all_sessions();
    b.boot().await;
    let booted = &b;
    eventually_async(Duration::from_secs(5), || async move {
        booted.status_of("zerodha").await["state"] == "auth_required"
    })
    .await;
    assert_eq!(b.status_of("zerodha").await["state"], "auth_required");

    let r = b.log_in_zerodha().await;
    let token = session(&r)["token"].as_str().unwrap().to_string();
    let r = b.call(zerodha(json!({"op": "logout"}))).await;
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(b.kite.logout_count(), 1);
    assert!(!b.kite.is_token_valid(&token));
}

#[tokio::test]
async fn notify_command_gets_the_event_with_the_login_link() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    let daemon = format!(
        "notify_command = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\nnotify_timeout = \"5s\"",
        log.display()
    );
    let b = Browser::start("", "", &daemon).await;
    // Both accounts start without a session: each is announced once.
    assert!(
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
        })
        .await,
        "notify_command ran for both accounts"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let z = lines
        .iter()
        .find(|l| l["broker"] == "zerodha")
        .expect("zerodha alert");
    assert_eq!(z["event"], "auth_required");
    let url = z["login_url"].as_str().unwrap();
    // The alert's link works: one click logs in.
    let (status, page) = open(url).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(b.status_of("zerodha").await["state"], "active");
}

#[tokio::test]
async fn the_daily_reminder_repeats_the_alert_while_nobody_has_logged_in() {
    // 40 s of virtual time: 2 s of real time.
    let secs = 40;
    let time = Pump::start();
    let remind_at = ist_in(&time, secs);
    let due = time.clock.now() + chrono::Duration::seconds(secs);
    let b = Browser::start_on(time, &format!("remind_at = \"{remind_at}\""), "", "").await;
    let mut events = subscribe(&b, "zerodha").await;
    // The startup announcement may arrive first; the reminder comes at its time.
    let mut reminder = next_event(&mut events, "auth_required", Duration::from_secs(20)).await;
    if b.time.clock.now() < due - chrono::Duration::seconds(1) {
        reminder = next_event(&mut events, "auth_required", Duration::from_secs(20)).await;
    }
    assert!(b.time.clock.now() >= due - chrono::Duration::seconds(1));
    assert_eq!(reminder["generation"], 0);
    assert!(
        reminder["login_url"].as_str().unwrap().contains("state%3D"),
        "{reminder}"
    );
    assert_eq!(b.status_of("zerodha").await["state"], "auth_required");
}
