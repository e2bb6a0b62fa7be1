//! Seed 001 in every ordering: Kotak sessions killed seconds after login
//! (another program logging in) end in `conflict` after at most three early
//! deaths, whether each death is reported before, during or just after one
//! of the daemon's own refreshes; then at most one login per cooldown. And
//! a restored session bound to another IP (`1037`) gets one fenced re-login.
//! Logins are counted at the simulator. The daemon and the simulator share
//! a virtual clock (20× real time): TOTP windows, refresh floors, the
//! simulator's latency and kill-after, and the cooldown all follow it.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use brokerd_sim::kotak::IpRule;
use common::kotak::Kotak;
use common::{error_code, session};
use serde_json::json;

const DEAD: &str = r#"{"stCode":100022,"errMsg":"invalid session token","stat":"Not_Ok"}"#;

/// Sessions live 60 s by their `exp` and are refreshed 30 s after login;
/// the simulator kills each one `kill` after its login.
async fn refreshing_kotak(kill: Duration, latency: Duration) -> Kotak {
    Kotak::start_with_limits(
        "refresh_margin = \"30s\"\nrefresh_jitter = \"0s\"\nmin_valid = \"5s\"\n\
         conflict_threshold = 3\nconflict_window = \"60s\"\nconflict_cooldown = \"40s\"\n\
         min_login_interval = \"10s\"\nmax_logins_per_hour = 100",
        "login_timeout = \"30s\"",
        |sim| {
            sim.set_trade_token_lifetime(Some(Duration::from_secs(60)));
            sim.set_kill_after(Some(kill));
            sim.set_latency(latency);
        },
    )
    .await
}

/// A trading program: uses its session until the broker rejects it, then
/// reports that generation, and carries on with whatever it is given.
fn program(k: &Kotak, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    let socket = k.dir.path().join("run/brokerd.sock");
    let sim = k.sim.clone();
    tokio::spawn(async move {
        let mut reports = 0;
        let mut c = brokerd::client::Client::connect(&socket).await.unwrap();
        while !stop.load(Ordering::Relaxed) {
            let r = c
                .call(&json!({"op": "token", "broker": "kotak_neo", "wait_secs": 0, "min_valid_secs": 1}))
                .await
                .unwrap();
            let (Some(token), Some(generation)) = (
                r["session"]["token"].as_str().map(str::to_string),
                r["session"]["generation"].as_u64(),
            ) else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            while sim.is_token_valid(&token) && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            reports += 1;
            let _ = c
                .call(
                    &json!({"op": "invalidate", "broker": "kotak_neo", "generation": generation,
                               "reason": DEAD, "wait_secs": 0}),
                )
                .await
                .unwrap();
        }
        reports
    })
}

/// Runs the program until the account is in conflict; then asserts at
/// most `max_logins` logins reached Kotak by then and at most one more
/// within the 40 s cooldown.
async fn ends_in_conflict(k: &Kotak, max_logins: u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let runner = program(k, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(240);
    while k.status().await["state"] != "conflict" {
        assert!(
            Instant::now() < deadline,
            "no conflict after {} logins: {}",
            k.sim.login_count(),
            k.status().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let at_conflict = k.sim.login_count();
    let status = k.status().await;
    assert!(
        at_conflict <= max_logins,
        "{at_conflict} logins before conflict (at most {max_logins}): {status}"
    );
    assert!(
        status["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("another program is probably logging into this account"),
        "{status}"
    );
    // The program keeps reporting; the cooldown holds.
    k.sleep(Duration::from_secs(38)).await;
    stop.store(true, Ordering::Relaxed);
    runner.await.unwrap();
    let after = k.sim.login_count() - at_conflict;
    assert!(after <= 1, "{after} logins within one 40 s cooldown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_deaths_reported_while_a_refresh_is_running_end_in_conflict() {
    // Each login takes ~8 s (4 s per step); the refresh starts 30 s after a
    // login and the session dies at 32 s: the report always arrives while
    // that refresh is in flight.
    let k = refreshing_kotak(Duration::from_secs(32), Duration::from_secs(4)).await;
    assert_eq!(session(&k.token().await)["generation"], 1);
    // Three deaths, the third during the fourth login: that login's session
    // is served, but the account is in conflict from then on.
    ends_in_conflict(&k, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_deaths_reported_just_after_a_refresh_end_in_conflict() {
    // The refresh (30 s, or up to 35 s when the TOTP window is too far
    // gone) publishes the next generation before the old one dies at 40 s:
    // every report names the generation just replaced.
    let k = refreshing_kotak(Duration::from_secs(40), Duration::ZERO).await;
    assert_eq!(session(&k.token().await)["generation"], 1);
    ends_in_conflict(&k, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_session_bound_to_another_ip_gets_one_fenced_relogin() {
    let mut k = Kotak::start_with_limits("", "login_timeout = \"3s\"", |_| {}).await;
    let mismatch = json!(r#"{"stCode":1037,"errMsg":"session ip doesnt match with reqest ip"}"#);
    let first = session(&k.token().await).clone();
    // A session this process created: no login can fix a 1037.
    k.sim.set_ip_rule(Some(IpRule::SessionIpMismatch));
    let own = k.invalidate(&first["generation"], mismatch.clone()).await;
    assert_eq!(error_code(&own), "ip_not_allowed", "{own}");
    assert_eq!(k.sim.login_count(), 1);

    // After a restart the session comes from the store: it may have been
    // created from another address, so one fresh login, however many
    // programs report it.
    k.restart().await;
    assert_eq!(session(&k.token().await)["generation"], 1);
    let reports = (0..5).map(|_| k.invalidate(&first["generation"], mismatch.clone()));
    let replies = futures::future::join_all(reports).await;
    for r in &replies {
        assert_eq!(session(r)["generation"], 2, "{r}");
    }
    assert_eq!(k.sim.login_count(), 2, "one re-login for five reports");

    // The new session was created here: a 1037 on it is an IP rule.
    let again = k.invalidate(&json!(2), mismatch).await;
    assert_eq!(error_code(&again), "ip_not_allowed", "{again}");
    assert_eq!(k.sim.login_count(), 2);
    assert_eq!(session(&k.token().await)["generation"], 2);
}
