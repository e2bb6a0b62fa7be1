//! Login safety against a hostile broker (issue 9): the login budget holds
//! on every path that can start a login, a session that arrives expired is
//! never published, and a rejected secret is never sent again. Logins are
//! counted at the simulator.
//!
//! The tests that wait for the budget's interval, backoff, cooldowns or
//! kill-after run the daemon and the simulator on one manual clock moved
//! 20× faster than real time (`common::virtual_time`); their durations are
//! ten times the old real-time ones, so that the trips between the daemon
//! and the simulator (real milliseconds, twenty times longer in virtual
//! time) stay small beside them.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use brokerd::brokers::Api;
use brokerd_sim::xts::FailMode;
use common::virtual_time::Pump;
use common::{Harness, error_code, eventually_async, session};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_budget_holds_on_every_path_whatever_the_broker_does() {
    // A 10 s interval (a second of real time) and a cap of 8 an hour keep
    // the test short; the rules are the same at the defaults (30 s, 20).
    // 10x, not 20x: the interval is checked at the audit rows, stamped after
    // the store gate's fsync, whose real delay under the full suite's load
    // (125 ms seen) would be 2.5 s of virtual time at 20x.
    let time = Pump::at_speed(10);
    let h = Harness::start_virtual(
        "min_login_interval = \"10s\"\nmax_logins_per_hour = 8\nbackoff_initial = \"500ms\"\n\
         backoff_max = \"2s\"\nmin_valid = \"10s\"\nconflict_cooldown = \"20s\"\nconflict_window = \"600s\"",
        &time,
    )
    .await;
    let start_logins = h.sim.login_count(Api::Interactive);
    let stop = Arc::new(AtomicBool::new(false));

    // Hostile clients: token requests that want a fresh session and reports
    // of every generation they see, as fast as they can.
    let hammer = {
        let socket = h.socket();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut c = brokerd::client::Client::connect(&socket).await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let r = c
                    .call(&json!({"op": "token", "broker": "jainam", "wait_secs": 0, "min_valid_secs": 10}))
                    .await
                    .unwrap();
                if let Some(g) = r["session"]["generation"].as_u64() {
                    let _ = c
                        .call(
                            &json!({"op": "invalidate", "broker": "jainam", "generation": g,
                                       "reason": "Invalid Token", "wait_secs": 0}),
                        )
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    // Phase 1: sessions arrive already expired (the broker's clock is an
    // hour behind ours).
    h.sim.set_clock_offset(-3600);
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(1800));
    time.sleep(Duration::from_secs(30)).await;
    // Phase 2: outages (backoff retries).
    h.sim.set_clock_offset(0);
    h.sim
        .fail_next_logins(Api::Interactive, 3, FailMode::ServerError(503));
    time.sleep(Duration::from_secs(20)).await;
    // Phase 3: sessions that live 30 s (refreshes with nobody asking) and
    // die right after login (early deaths: conflict, then its cooldown).
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(30));
    h.sim
        .set_kill_after(Api::Interactive, Some(Duration::from_secs(2)));
    time.sleep(Duration::from_secs(20)).await;
    // Reloads on top.
    for _ in 0..3 {
        assert_eq!(h.call(json!({"op": "reload"})).await["ok"], true);
        time.sleep(Duration::from_secs(3)).await;
    }
    // However long the hostility lasts, the hour's cap is where it ends.
    let deadline = Instant::now() + Duration::from_secs(30);
    let capped = |s: &serde_json::Value| {
        s["state"] == "conflict"
            && s["last_error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("max_logins_per_hour"))
    };
    while !capped(&h.status_of("interactive").await) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And it stays there: more hostility, no more logins.
    time.sleep(Duration::from_secs(30)).await;
    let status = h.status_of("interactive").await;
    stop.store(true, Ordering::Relaxed);
    hammer.await.unwrap();
    // When each login reached the simulator, stamped there on arrival.
    let seen = h.sim.login_times(Api::Interactive)[start_logins as usize..].to_vec();
    let total = h.sim.login_count(Api::Interactive) - start_logins;

    // The hourly cap, at the simulator.
    assert!(
        total <= 8,
        "{total} logins reached the broker; the cap is 8"
    );
    assert_eq!(
        total, 8,
        "the hostile broker uses up the budget: {status} {seen:?}"
    );
    assert!(capped(&status), "{status}");
    // The interval, where the budget decides: every login's
    // `login_started` audit row, written as it starts, on the clock the
    // daemon and the simulator share. No two closer than 10 s, less two
    // seconds (200 ms of real time at 10x: between the decision and the
    // row's stamp come the host's turn and the store gate's fsync, which a
    // loaded machine stretches). Without the budget the hostile broker's
    // backoff would space them 1, 2 and 4 s apart.
    let store = &h.running.as_ref().unwrap().store;
    let mut started: Vec<_> = store
        .audit_rows(500)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event == "login_started" && r.api == "interactive" && r.account == "main")
        .map(|r| r.at)
        .collect();
    started.reverse();
    assert!(started.len() >= 8, "{started:?}");
    for (i, pair) in started.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::seconds(8),
            "logins {} and {} started only {gap:?} apart",
            i + 1,
            i + 2
        );
    }
    // And at the simulator, stamped there on arrival: apart by the
    // interval less each request's trip from the decision (its audit
    // row's fsync, a new HTTP client, the connection). In virtual time a
    // trip is twenty times its real length, and a loaded machine stretches
    // one trip and not the next by a few hundred milliseconds, so this
    // allows half the interval: a broken budget, driven by the hammering
    // clients above, puts logins a fraction of a second apart.
    for (i, pair) in seen.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::seconds(5),
            "logins {} and {} reached the broker only {gap:?} apart",
            i + 1,
            i + 2
        );
    }

    // A reload that changes what the broker checks lifts `conflict`, and
    // the slot wants a login at once: the budget still says no.
    let mut h = h;
    h.jainam = "source = \"WEBAPI2\"".into();
    h.load(&h.config_text());
    let reload = h.call(json!({"op": "reload"})).await;
    assert_eq!(reload["ok"], true, "{reload}");
    assert!(
        reload.to_string().contains("jainam/main/interactive"),
        "{reload}"
    );
    time.sleep(Duration::from_secs(20)).await;
    assert_eq!(h.sim.login_count(Api::Interactive) - start_logins, 8);
    assert!(capped(&h.status_of("interactive").await));

    // Only an operator bypasses the budget, and it still counts.
    h.sim.set_kill_after(Api::Interactive, None);
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(3600));
    let login = h.call(json!({"op": "login", "broker": "jainam"})).await;
    session(&login);
    assert_eq!(h.sim.login_count(Api::Interactive) - start_logins, 9);
    assert_eq!(
        h.status_of("interactive").await["state"],
        "active",
        "the operator's login ends the conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expired_on_arrival_is_a_failed_login_and_never_published() {
    // The budget at its defaults (30 s, 20 an hour).
    let h = Harness::start(
        "login_at_start = false\nmin_login_interval = \"30s\"\nmax_logins_per_hour = 20",
    )
    .await;
    h.sim.set_clock_offset(-3600);
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(1800));
    let reply = h
        .call(json!({"op": "token", "broker": "jainam", "wait_secs": 3}))
        .await;
    assert_eq!(error_code(&reply), "unavailable", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("already expired"), "{message}");
    assert!(message.contains("NTP"), "names the clock: {message}");
    // Asked again and again: the backoff (1 s) is over long before the
    // budget's 30 s, and still no second login reaches the broker.
    for _ in 0..30 {
        let r = h
            .call(json!({"op": "token", "broker": "jainam", "wait_secs": 0}))
            .await;
        assert_eq!(r["ok"], false, "an expired session was handed out: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
    assert_eq!(h.sim.successful_logins(Api::Interactive), 1);
    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "backoff", "{status}");
    assert_eq!(status["generation"], 0, "nothing was published: {status}");
    assert!(
        status["retry_after_secs"].as_u64().unwrap() >= 20,
        "{status}"
    );
    // The clock is fixed: the operator logs in at once.
    h.sim.set_clock_offset(0);
    let login = h.call(json!({"op": "login", "broker": "jainam"})).await;
    assert_eq!(session(&login)["generation"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_after_a_lock_out_rereads_the_secret_and_never_resends_the_rejected_one() {
    let secrets = tempfile::tempdir().unwrap();
    let (key_file, secret_file) = (
        secrets.path().join("second-key"),
        secrets.path().join("second-secret"),
    );
    let user = common::second_user();
    common::write_secret(&key_file, &user.interactive_app_key);
    common::write_secret(&secret_file, "a-wrong-secret");
    let extra = format!(
        r#"
[[account]]
broker = "jainam"
name = "second"
login_at_start = false
[account.jainam]
root = "{{root}}"
[account.jainam.interactive]
app_key = "file:{}"
secret_key = "file:{}"
"#,
        key_file.display(),
        secret_file.display()
    );
    let h = Harness::start_with("login_at_start = false", &extra).await;
    let token = json!({"op": "token", "broker": "jainam", "account": "second"});
    let login = json!({"op": "login", "broker": "jainam", "account": "second"});
    assert_eq!(error_code(&h.call(token.clone()).await), "locked_out");
    assert_eq!(h.sim.login_count(Api::Interactive), 1);

    // The operator runs `login` without fixing anything: refused at home.
    let refused = h.call(login.clone()).await;
    let message = common::resend_refused(&refused);
    assert!(!message.contains("a-wrong-secret"), "{message}");
    assert_eq!(h.sim.login_count(Api::Interactive), 1, "nothing re-sent");

    // The operator fixes the file the config refers to and runs `login`:
    // the new secret is read and used, with no reload or restart.
    common::write_secret(&secret_file, &user.interactive_secret_key);
    let fixed = h.call(login).await;
    assert_eq!(session(&fixed)["fields"]["user_id"], "SECOND01", "{fixed}");
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
    assert_eq!(session(&h.call(token).await)["generation"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_death_the_daemon_finds_itself_counts_toward_conflict() {
    // One early death is enough here, so that the one the daemon finds by
    // itself decides (early deaths are counted in memory: see the note in
    // conflict.rs).
    let time = Pump::start();
    let mut h = Harness::start_virtual(
        "login_at_start = false\nconflict_threshold = 1\nconflict_window = \"60s\"\nconflict_cooldown = \"15m\"",
        &time,
    )
    .await;
    // Sessions die 3 s after login: another program logs in.
    h.sim
        .set_kill_after(Api::Interactive, Some(Duration::from_secs(3)));
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    time.sleep(Duration::from_secs(4)).await;
    // Nobody reports the death; the restarted daemon finds it itself when
    // it checks the stored session in the background, seconds after its
    // login: an early death like a reported one, so conflict, not another
    // login.
    h.restart().await;
    let h = &h;
    eventually_async(Duration::from_secs(5), || async move {
        h.status_of("interactive").await["state"] == "conflict"
    })
    .await;
    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "conflict", "{status}");
    assert_eq!(error_code(&h.token("interactive").await), "conflict");
    time.sleep(Duration::from_secs(10)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_budget_holds_across_restarts() {
    // Every session arrives expired, and the daemon is restarted again and
    // again (a crash loop, an impatient operator): each start wants a login.
    let time = Pump::start();
    let mut h = Harness::start_virtual(
        "min_login_interval = \"10s\"\nmax_logins_per_hour = 4",
        &time,
    )
    .await;
    h.sim.set_clock_offset(-3600);
    h.sim
        .set_token_lifetime(Api::Interactive, Duration::from_secs(1800));
    let before = h.sim.login_count(Api::Interactive);
    for _ in 0..16 {
        h.restart().await;
        time.sleep(Duration::from_secs(4)).await;
    }
    let status = h.status_of("interactive").await;
    let total = h.sim.login_count(Api::Interactive);
    assert!(
        total <= 4,
        "{total} logins over 16 starts ({before} before the broker turned hostile); the cap is 4"
    );
    assert_eq!(status["state"], "conflict", "{status}");
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_logins_per_hour"),
        "{status}"
    );
}
