//! The session slot's invariants (DESIGN.md "the heart"), each tested end to
//! end: over the real socket, against the XTS simulator.

use crate::common;

use std::time::{Duration, Instant};

use brokerd::brokers::Api;
use brokerd_sim::xts::FailMode;
use common::{Harness, error_code, eventually, session};
use serde_json::json;

const NO_EAGER_LOGIN: &str = "login_at_start = false";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tokens_on_an_empty_slot_cause_exactly_one_login() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    h.sim.set_latency(Duration::from_millis(200));
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(h.client().await);
    }
    let replies = futures::future::join_all(clients.iter_mut().map(|c| async move {
        c.call(&json!({"op": "token", "broker": "jainam", "account": "main"}))
            .await
            .unwrap()
    }))
    .await;
    for r in &replies {
        assert_eq!(session(r)["generation"], 1);
        assert_eq!(session(r)["token"], session(&replies[0])["token"]);
    }
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
    assert_eq!(
        h.sim.login_count(Api::Market),
        0,
        "the market session is independent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_invalidations_of_one_generation_cause_exactly_one_login() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    let first = h.token("interactive").await;
    let old_token = session(&first)["token"].as_str().unwrap().to_string();
    h.sim.set_latency(Duration::from_millis(100));
    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(h.client().await);
    }
    let replies = futures::future::join_all(clients.iter_mut().map(|c| async move {
        c.call(&json!({"op": "invalidate", "broker": "jainam", "generation": 1, "reason": "Invalid Token"}))
            .await
            .unwrap()
    }))
    .await;
    for r in &replies {
        assert_eq!(
            session(r)["generation"],
            2,
            "every reporter gets the one new generation"
        );
        assert_ne!(session(r)["token"], old_token.as_str());
    }
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
    let metrics = h.call(json!({"op": "metrics"})).await;
    let text = metrics["text"].as_str().unwrap();
    let current_line = text
        .lines()
        .find(|l| {
            l.starts_with("brokerd_invalidations_total")
                && l.contains("api=\"interactive\"")
                && l.contains("current")
        })
        .unwrap();
    assert!(
        current_line.ends_with(" 1"),
        "exactly one invalidation hit the current generation: {current_line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_an_older_generation_returns_the_current_one_without_a_login() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    session(&h.token("interactive").await);
    let second = h
        .call(json!({"op": "invalidate", "broker": "jainam", "generation": 1}))
        .await;
    assert_eq!(session(&second)["generation"], 2);
    let again = h
        .call(json!({"op": "invalidate", "broker": "jainam", "generation": 1}))
        .await;
    assert_eq!(session(&again)["generation"], 2);
    assert_eq!(session(&again)["token"], session(&second)["token"]);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "a stale report causes no login"
    );
    let never = h
        .call(json!({"op": "invalidate", "broker": "jainam", "generation": 9}))
        .await;
    assert_eq!(error_code(&never), "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_secret_locks_the_account_after_one_attempt_until_an_operator_acts() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    let reply = h.token("interactive").await;
    assert_eq!(error_code(&reply), "locked_out");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid AppKey or SecretKey"),
        "{reply}"
    );
    for _ in 0..20 {
        assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    }
    // Time passes: no automatic retry of a credential rejection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "exactly one attempt"
    );
    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "locked_out");
    assert_eq!(
        status["retry_after_secs"],
        serde_json::Value::Null,
        "no attempt is scheduled"
    );
    // `login` with the same credentials is refused without a broker call
    // (tests/it/login_safety.rs fixes the secret and logs in).
    let login = h.call(json!({"op": "login", "broker": "jainam"})).await;
    common::resend_refused(&login);
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_answering_503_is_retried_with_growing_delays() {
    let h = Harness::start(&format!("{NO_EAGER_LOGIN}\nbackoff_initial = \"300ms\"")).await;
    h.sim
        .fail_next_logins(Api::Interactive, 3, FailMode::ServerError(503));
    let reply = h.token("interactive").await;
    assert_eq!(error_code(&reply), "unavailable");
    assert!(
        reply["error"]["retry_after_secs"].as_u64().unwrap() >= 1,
        "{reply}"
    );
    assert_eq!(h.status_of("interactive").await["state"], "backoff");
    // Watch the attempts arrive on their own and time the gaps.
    let mut seen = vec![(1, Instant::now())];
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 4 && Instant::now() < deadline {
        let n = h.sim.login_count(Api::Interactive);
        if n > seen.last().unwrap().0 {
            seen.push((n, Instant::now()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen.len(),
        4,
        "three retries happened by themselves: {seen:?}"
    );
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "delays grow: {gaps:?}"
    );
    assert!(
        gaps[2] >= Duration::from_millis(1100),
        "third delay is about 4x the first: {gaps:?}"
    );
    assert!(
        eventually(Duration::from_secs(2), || h
            .sim
            .successful_logins(Api::Interactive)
            == 1)
        .await
    );
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_rejected_right_after_login_every_time_are_a_conflict_not_a_storm() {
    // On virtual time (20x): each session's 2 s life is 100 ms of real time.
    let time = common::virtual_time::Pump::start();
    let h = Harness::start_virtual(
        &format!("{NO_EAGER_LOGIN}\nconflict_threshold = 3\nconflict_window = \"60s\""),
        &time,
    )
    .await;
    h.sim
        .set_kill_after(Api::Interactive, Some(Duration::from_secs(2)));
    let mut events = h.client().await;
    assert_eq!(
        events
            .call(&json!({"op": "subscribe", "brokers": ["jainam"]}))
            .await
            .unwrap()["ok"],
        true
    );
    let mut reply = h.token("interactive").await;
    let mut rounds = 0;
    while reply["ok"] == true {
        rounds += 1;
        assert!(rounds <= 3, "conflict declared by the third early death");
        let s = session(&reply);
        let token = s["token"].as_str().unwrap().to_string();
        // The trading program uses the token until the broker rejects it.
        assert!(eventually(Duration::from_secs(5), || !h.sim.is_token_valid(&token)).await);
        reply = h
            .call(json!({"op": "invalidate", "broker": "jainam", "generation": s["generation"], "reason": "Invalid Token"}))
            .await;
    }
    assert_eq!(error_code(&reply), "conflict");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another program"),
        "{reply}"
    );
    assert!(reply["error"]["retry_after_secs"].as_u64().unwrap() > 60);
    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "conflict");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("another program is probably logging into this account")
    );
    // Bounded: more requests and time cause no more logins.
    for _ in 0..10 {
        assert_eq!(error_code(&h.token("interactive").await), "conflict");
    }
    time.sleep(Duration::from_secs(20)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 3);
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"conflict".to_string()) {
        let e = tokio::time::timeout(Duration::from_secs(2), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        kinds.push(e["event"].as_str().unwrap().to_string());
    }
    assert_eq!(kinds, ["renewed", "renewed", "renewed", "conflict"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_within_min_valid_of_expiry_is_never_handed_out() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(40));
    let first = h
        .call(json!({"op": "token", "broker": "jainam", "min_valid_secs": 30}))
        .await;
    assert_eq!(session(&first)["generation"], 1);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Generation 1 now has under 38 s left: asking for 38 s forces a new one.
    let second = h
        .call(json!({"op": "token", "broker": "jainam", "min_valid_secs": 38}))
        .await;
    let s = session(&second);
    assert_eq!(s["generation"], 2);
    let expires = chrono::DateTime::parse_from_rfc3339(s["expires_at"].as_str().unwrap()).unwrap();
    assert!(
        expires
            .signed_duration_since(chrono::Utc::now())
            .num_seconds()
            >= 38
    );
    // More than any session lasts: a clear error, and no login per request.
    for _ in 0..5 {
        let reply = h
            .call(json!({"op": "token", "broker": "jainam", "min_valid_secs": 300}))
            .await;
        assert_eq!(error_code(&reply), "unavailable");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains("valid for only"),
            "{reply}"
        );
    }
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_refreshed_before_they_expire() {
    // 45 s tokens, refresh 14 s ahead: the refresh is due about 31 s in,
    // on the virtual clock the daemon and the simulator share (under two
    // real seconds).
    let time = common::virtual_time::Pump::start();
    let h = Harness::start_virtual(
        &format!("{NO_EAGER_LOGIN}\nrefresh_margin = \"14s\"\nrefresh_jitter = \"0s\""),
        &time,
    )
    .await;
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(45));
    let mut events = h.client().await;
    events.call(&json!({"op": "subscribe"})).await.unwrap();
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first["generation"], 1);
    // The 30 s heartbeat comes just before the refresh: skip it, as any
    // subscriber skips events it does not act on.
    let renewed = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            let e = events.next().await.unwrap().unwrap();
            if e["event"] != "heartbeat" {
                break e;
            }
        }
    })
    .await
    .expect("refresh happened");
    assert_eq!(renewed["event"], "renewed");
    assert_eq!(renewed["generation"], 2);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "one proactive login, no client asked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_and_market_sessions_are_independent() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    let i = h.token("interactive").await;
    let m = h.token("market").await;
    assert_eq!(session(&i)["generation"], 1);
    assert_eq!(session(&m)["generation"], 1);
    assert_ne!(session(&i)["token"], session(&m)["token"]);
    assert_eq!(
        session(&m)["fields"]["application_expiry_date"],
        "2027-03-31"
    );
    assert_eq!(session(&i)["fields"]["client_codes"], json!(["DEMO01"]));
    assert_eq!(
        session(&i)["headers"]["Authorization"],
        session(&i)["token"]
    );
    let m2 = h
        .call(json!({"op": "invalidate", "broker": "jainam", "api": "market", "generation": 1}))
        .await;
    assert_eq!(session(&m2)["generation"], 2);
    let i_again = h.token("interactive").await;
    assert_eq!(
        session(&i_again)["token"],
        session(&i)["token"],
        "interactive untouched"
    );
    assert_eq!(
        (
            h.sim.login_count(Api::Interactive),
            h.sim.login_count(Api::Market)
        ),
        (1, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_builds_a_brand_new_client() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    let slot = h
        .running
        .as_ref()
        .unwrap()
        .registry
        .find("jainam", None, None)
        .unwrap()
        .clone();
    session(&h.token("interactive").await);
    let first = slot.status().client_serial.unwrap();
    session(
        &h.call(json!({"op": "invalidate", "broker": "jainam", "generation": 1}))
            .await,
    );
    let second = slot.status().client_serial.unwrap();
    session(&h.call(json!({"op": "login", "broker": "jainam"})).await);
    let third = slot.status().client_serial.unwrap();
    assert!(first != second && second != third && first != third);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_logs_in_at_start_when_asked() {
    let h = Harness::start("login_at_start = true").await;
    assert!(
        eventually(Duration::from_secs(5), || h
            .sim
            .successful_logins(Api::Interactive)
            == 1
            && h.sim.successful_logins(Api::Market) == 1)
        .await
    );
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_and_timeouts_are_transient_not_credential_failures() {
    // login_timeout is 2 s in the harness; the simulator holds its answer 3 s.
    let h = Harness::start(&format!("{NO_EAGER_LOGIN}\nbackoff_initial = \"200ms\"")).await;
    h.sim.fail_next_logins(Api::Interactive, 1, FailMode::Html);
    h.sim
        .fail_next_logins(Api::Market, 1, FailMode::Timeout(Duration::from_secs(3)));
    let html = h.token("interactive").await;
    assert_eq!(error_code(&html), "unavailable");
    assert!(
        html["error"]["message"]
            .as_str()
            .unwrap()
            .contains("non-JSON"),
        "{html}"
    );
    let timeout = h
        .call(json!({"op": "token", "broker": "jainam", "api": "market", "wait_secs": 5}))
        .await;
    assert_eq!(error_code(&timeout), "unavailable");
    assert!(
        timeout["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{timeout}"
    );
    // Both recover by themselves after the backoff.
    assert!(
        eventually(Duration::from_secs(5), || h
            .sim
            .successful_logins(Api::Interactive)
            == 1)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), || h
            .sim
            .successful_logins(Api::Market)
            >= 1)
        .await
    );
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    assert_eq!(h.status_of("interactive").await["state"], "active");
}

/// A refresh whose credentials are rejected locks the slot while the old
/// session is still valid; a client then reporting that session dead must
/// not cause a second attempt with the rejected credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_while_locked_out_makes_no_new_attempt() {
    let h = Harness::start(NO_EAGER_LOGIN).await;
    session(&h.token("interactive").await);
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    let forced = h.call(json!({"op": "login", "broker": "jainam"})).await;
    assert_eq!(error_code(&forced), "locked_out");
    // The old session is still good and still served.
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    let reply = h
        .call(json!({"op": "invalidate", "broker": "jainam", "generation": 1}))
        .await;
    assert_eq!(error_code(&reply), "locked_out");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "no attempt after the lock-out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_exp_gets_the_configured_fallback_lifetime() {
    let mut h = Harness::start(NO_EAGER_LOGIN).await;
    h.restart_with_jainam("fallback_lifetime = \"3h\"").await;
    h.sim.set_include_exp(Api::Interactive, false);
    let s = session(&h.token("interactive").await).clone();
    let expires = chrono::DateTime::parse_from_rfc3339(s["expires_at"].as_str().unwrap()).unwrap();
    let left = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(
        (3 * 3600 - 60..=3 * 3600).contains(&left),
        "expires in {left}s"
    );
}

/// A client asking for more validity than the broker ever grants gets an
/// error, however old the current session is: never a login per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_more_than_a_session_lasts_never_becomes_a_login_storm() {
    // On virtual time (the daemon and the simulator share the clock): the
    // 32 s below pass in under two real seconds.
    let time = common::virtual_time::Pump::start();
    let h = Harness::start_virtual(
        &format!("{NO_EAGER_LOGIN}\nrefresh_margin = \"1s\"\nrefresh_jitter = \"0s\""),
        &time,
    )
    .await;
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(50));
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    // Past the 30 s mark the old guard no longer held.
    time.sleep(Duration::from_secs(32)).await;
    for _ in 0..5 {
        let reply = h
            .call(json!({"op": "token", "broker": "jainam", "min_valid_secs": 3600}))
            .await;
        assert_eq!(error_code(&reply), "unavailable");
    }
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
}

/// A logout ends pending retries too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_stops_a_backoff_from_logging_in_again() {
    let h = Harness::start(&format!("{NO_EAGER_LOGIN}\nbackoff_initial = \"300ms\"")).await;
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::ServerError(503));
    assert_eq!(error_code(&h.token("interactive").await), "unavailable");
    assert_eq!(h.status_of("interactive").await["state"], "backoff");
    assert_eq!(
        h.call(json!({"op": "logout", "broker": "jainam"})).await["ok"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no retry after the logout"
    );
    assert_eq!(h.status_of("interactive").await["state"], "empty");
}
