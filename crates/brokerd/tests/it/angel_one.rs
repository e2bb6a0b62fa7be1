//! Angel One end to end over the real socket against the Angel One
//! simulator, logins counted at the simulator: a login at start, renewal
//! through generateTokens, a dead-session report answered by one fenced
//! re-login, a TOTP refused twice locking out after exactly two attempts,
//! no TOTP window ever sent twice, and a restart serving the stored
//! session without a login.
//!
//! The daemon and the simulator share one manual clock moved 20× faster
//! than real time (`common::virtual_time`): TOTP windows, refresh due
//! times and token lifetimes pass without waiting for them.

use crate::common;

use std::time::Duration;

use brokerd::client::Client;
use brokerd::config::Config;
use brokerd::daemon::{self, Running};
use brokerd::secret::SecretEnv;
use brokerd_sim::angel::{AngelFail, AngelSim, AngelSimConfig, AngelSimUser, Endpoint};
use common::virtual_time::Pump;
use common::{error_code, eventually, eventually_async, session};
use serde_json::{Value, json};

const AG8001: &str =
    r#"{"success":false,"message":"Invalid Token","errorCode":"AG8001","data":""}"#;

/// A daemon with one Angel One account "main" against the simulator.
struct Angel {
    dir: tempfile::TempDir,
    sim: AngelSim,
    running: Option<Running>,
    text: String,
    /// The virtual time the daemon and the simulator share.
    time: Pump,
}

impl Angel {
    /// Starts the simulator, lets `prepare` set it up, then the daemon with
    /// `policy` lines on the account and `extra` lines in `[account.angel_one]`.
    async fn start(policy: &str, extra: &str, prepare: impl FnOnce(&AngelSim)) -> Self {
        let sim = AngelSim::start(AngelSimConfig::default()).await.unwrap();
        let time = Pump::start();
        sim.set_clock(time.clock.clone());
        prepare(&sim);
        let dir = tempfile::tempdir().unwrap();
        let u = AngelSimUser::demo();
        let d = dir.path().display();
        let text = format!(
            r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
key = "file:{d}/keys/brokerd.key"
create_key_if_missing = true
[daemon.limits]
login_timeout = "3s"
default_wait = "70s"

[[account]]
broker = "angel_one"
name = "main"
{policy}
[account.angel_one]
api_root = "{root}"
api_key = "{key}"
client_code = "{code}"
pin = "{pin}"
totp_seed = "{seed}"
# Virtual time runs 20x faster: 15 s of the window left is 750 ms of
# real time for the code to reach the simulator, even on a busy machine.
totp_min_remaining = "15s"
public_ip = "203.0.113.7"
{extra}
"#,
            policy = common::without_budget(policy),
            root = sim.base_url(),
            key = u.api_key,
            code = u.client_code,
            pin = u.pin,
            seed = u.totp_seed,
        );
        let mut a = Self {
            dir,
            sim,
            running: None,
            text,
            time,
        };
        a.boot().await;
        a
    }

    async fn boot(&mut self) {
        let loaded =
            Config::from_toml_str(&self.text, self.dir.path(), &SecretEnv::process()).unwrap();
        // A restart stays on the same virtual clock, as a real daemon
        // restarts on the same wall clock.
        let clock = self.time.clock.clone();
        self.running = Some(daemon::start_on(loaded, None, clock).await.unwrap());
    }

    async fn restart(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.boot().await;
    }

    async fn call(&self, request: Value) -> Value {
        let mut c = Client::connect(&self.dir.path().join("run/brokerd.sock"))
            .await
            .unwrap();
        c.call(&request).await.unwrap()
    }

    async fn token(&self) -> Value {
        self.call(json!({"op": "token", "broker": "angel_one", "wait_secs": 70}))
            .await
    }

    async fn invalidate(&self, generation: &Value, reason: &str) -> Value {
        self.call(
            json!({"op": "invalidate", "broker": "angel_one", "generation": generation,
            "reason": reason, "wait_secs": 70}),
        )
        .await
    }

    async fn status(&self) -> Value {
        self.call(json!({"op": "status"})).await["accounts"][0].clone()
    }

    /// Every TOTP window the simulator received a code of.
    fn windows(&self) -> Vec<Option<i64>> {
        self.sim
            .totp_attempts()
            .iter()
            .map(|a| a.matched_step)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_at_start_and_serves_what_the_sdk_needs() {
    let a = Angel::start("login_at_start = true", "", |_| {}).await;
    assert!(
        eventually(Duration::from_secs(40), || a.sim.stats().successful_logins
            == 1)
        .await
    );
    let reply = a.token().await;
    let s = session(&reply);
    let u = AngelSimUser::demo();
    let issued = a.sim.issued_tokens();
    assert_eq!(s["token"], issued[0].as_str());
    assert_eq!(
        s["headers"]["Authorization"],
        format!("Bearer {}", issued[0])
    );
    assert_eq!(s["headers"]["X-PrivateKey"], u.api_key.as_str());
    assert_eq!(s["headers"]["X-ClientPublicIP"], "203.0.113.7");
    common::assert_session_fields(
        &reply,
        json!({"api_root": a.sim.base_url(), "client_code": u.client_code,
            "api_key": u.api_key, "feed_token": issued[2]}),
        &[&u.pin, &u.totp_seed, &issued[1]],
        &[&issued[0]],
    );
    assert_eq!(a.sim.login_count(), 1, "served from the login at start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_session_report_causes_one_fenced_re_login() {
    let a = Angel::start("login_at_start = false", "", |_| {}).await;
    let first = session(&a.token().await).clone();
    a.sim.reject_all_now();
    let reports = (0..20).map(|_| a.invalidate(&first["generation"], AG8001));
    for r in futures::future::join_all(reports).await {
        assert_eq!(session(&r)["generation"], 2, "{r}");
    }
    assert_eq!(a.sim.stats().successful_logins, 2, "exactly one re-login");
    // An outage or a rate limit is not a dead session.
    let second = session(&a.token().await).clone();
    let limited = a
        .call(
            json!({"op": "invalidate", "broker": "angel_one", "generation": second["generation"],
            "http_status": 403, "reason": "Access denied because of exceeding access rate"}),
        )
        .await;
    assert_eq!(session(&limited)["generation"], 2, "{limited}");
    assert_eq!(a.sim.login_count(), 2);
    // Two logins, two windows: a TOTP window is never sent twice.
    let w = a.windows();
    assert_eq!(w.len(), 2);
    assert!(w[1] > w[0], "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_refused_twice_locks_out_after_exactly_two_attempts() {
    let a = Angel::start("login_at_start = false", "", |sim| {
        sim.fail_next(Endpoint::Login, 2, AngelFail::WrongTotp)
    })
    .await;
    let reply = a.token().await;
    assert_eq!(error_code(&reply), "locked_out", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AB1050"),
        "{reply}"
    );
    // A whole TOTP window later (virtual), still no further attempt.
    a.time.sleep(Duration::from_secs(30)).await;
    assert_eq!(a.sim.login_count(), 2, "no further attempt");
    assert_eq!(a.status().await["state"], "locked_out");
    let w = a.windows();
    assert!(w[1] > w[0], "the retry used the next window: {w:?}");
    // A refused code is never sent again: an operator's login may try.
    let login = a
        .call(json!({"op": "login", "broker": "angel_one", "wait_secs": 70}))
        .await;
    assert_eq!(session(&login)["generation"], 1, "{login}");
    assert_eq!(a.sim.login_count(), 3);
    let w = a.windows();
    assert!(w[2] > w[1], "{w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_causes_exactly_one_attempt() {
    let a = Angel::start("login_at_start = false", "", |sim| {
        sim.fail_next(Endpoint::Login, 1, AngelFail::BadCredentials)
    })
    .await;
    let reply = a.token().await;
    assert_eq!(error_code(&reply), "locked_out", "{reply}");
    for _ in 0..3 {
        assert_eq!(error_code(&a.token().await), "locked_out");
    }
    assert_eq!(a.sim.login_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_serves_the_stored_session_without_a_login() {
    let mut a = Angel::start("login_at_start = false", "", |_| {}).await;
    let first = session(&a.token().await).clone();
    a.restart().await;
    let again = session(&a.token().await).clone();
    assert_eq!(again["generation"], first["generation"]);
    assert_eq!(again["token"], first["token"]);
    assert_eq!(a.sim.login_count(), 1);
    // Checked in the background once the daemon is ready (invariant 19).
    assert!(
        eventually(Duration::from_secs(5), || a.sim.stats().profiles >= 1).await,
        "checked with getProfile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_renews_through_generate_tokens() {
    // 70 s jwtTokens: the refresh comes 40 s after the login.
    let a = Angel::start(
        "login_at_start = false\nrefresh_margin = \"30s\"\nrefresh_jitter = \"0s\"",
        "",
        |sim| sim.set_jwt_lifetime(Duration::from_secs(70)),
    )
    .await;
    let first = session(&a.token().await).clone();
    // Renewed tokens live 10 minutes: the next refresh is 9.5 virtual
    // minutes (about 28 s of real time) away, so the session served below
    // is surely the renewed one, however slow the machine.
    a.sim.set_jwt_lifetime(Duration::from_secs(600));
    assert!(
        eventually(Duration::from_secs(60), || a
            .sim
            .stats()
            .successful_renewals
            == 1)
        .await
    );
    let reply = a.token().await;
    let renewed = session(&reply);
    assert_eq!(renewed["generation"], 2);
    assert_ne!(renewed["token"], first["token"]);
    assert_ne!(
        renewed["fields"]["feed_token"],
        first["fields"]["feed_token"]
    );
    assert_eq!(a.sim.login_count(), 1, "renewed, not logged in again");
    // A refresh token the broker no longer takes: one login instead.
    let mut a = a;
    a.sim
        .fail_next(Endpoint::Renew, 1, AngelFail::RefreshExpired);
    a.restart().await;
    // Eight virtual minutes on: the refresh (due 9.5 minutes after the
    // renewal, before the token ends at 10) comes within seconds instead
    // of half a minute.
    a.time.clock.advance(chrono::Duration::minutes(8));
    assert!(eventually(Duration::from_secs(60), || a.sim.login_count() == 2).await);
    assert_eq!(a.sim.stats().renewals, 2, "the renewal was tried first");
    assert_eq!(session(&a.token().await)["generation"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_session_report_while_a_renewal_runs_starts_no_login() {
    // 70 s jwtTokens: the renewal comes 40 s after the login.
    let a = Angel::start(
        "login_at_start = false\nrefresh_margin = \"30s\"\nrefresh_jitter = \"0s\"",
        "",
        |sim| sim.set_jwt_lifetime(Duration::from_secs(70)),
    )
    .await;
    let first = session(&a.token().await).clone();
    // The renewal is held 20 virtual seconds at the broker (1 s real), and
    // renewed tokens live 10 minutes.
    a.sim.set_jwt_lifetime(Duration::from_secs(600));
    a.sim.set_latency(Duration::from_secs(20));
    let a = &a;
    // At the broker, not merely decided: a report that comes before the
    // renewal is sent leaves no live jwt to renew with (the renewal's
    // Bearer), so the daemon logs in instead.
    assert!(
        eventually(Duration::from_secs(60), || a.sim.held(Endpoint::Renew) == 1).await,
        "the renewal reached the broker"
    );
    assert_eq!(a.status().await["state"], "refreshing");
    assert_eq!(a.sim.stats().successful_renewals, 0, "and is still held");
    // Clients report the live generation dead while it runs: the renewal
    // already brings the next session, so no login is started.
    let reports = (0..10).map(|_| a.invalidate(&first["generation"], AG8001));
    for r in futures::future::join_all(reports).await {
        assert_eq!(session(&r)["generation"], 2, "{r}");
    }
    a.sim.set_latency(Duration::ZERO);
    assert_eq!(a.sim.login_count(), 1, "no login: the renewal answered");
    let stats = a.sim.stats();
    assert_eq!((stats.renewals, stats.successful_renewals), (1, 1));
    let renewed = session(&a.token().await).clone();
    assert!(a.sim.is_token_valid(renewed["token"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_answered_with_an_expired_token_is_never_served() {
    let a = Angel::start(
        "login_at_start = false\nrefresh_margin = \"30s\"\nrefresh_jitter = \"0s\"",
        "",
        |sim| sim.set_jwt_lifetime(Duration::from_secs(70)),
    )
    .await;
    let first = session(&a.token().await).clone();
    // The broker answers the renewal with a token that is already dead.
    a.sim.set_jwt_lifetime(Duration::ZERO);
    assert!(
        eventually(Duration::from_secs(60), || a
            .sim
            .stats()
            .successful_renewals
            >= 1)
        .await,
        "a renewal was answered"
    );
    // Not published: the live session is still the first one (it has
    // less than the default min_valid left, so ask for what it has).
    let served = a
        .call(json!({"op": "token", "broker": "angel_one", "min_valid_secs": 1}))
        .await;
    let served = session(&served).clone();
    assert_eq!(served["generation"], first["generation"], "{served}");
    assert!(
        a.status().await["last_error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired")
    );
    // The broker recovers: the retry after the backoff (a login: a failed
    // refresh is retried as a login) brings a live token; nothing storms.
    a.sim.set_jwt_lifetime(Duration::from_secs(600));
    assert!(
        eventually(Duration::from_secs(30), || a.sim.stats().successful_logins
            >= 2)
        .await
    );
    // The simulator has answered; the daemon stores, then publishes it.
    let token = || async {
        a.call(json!({"op": "token", "broker": "angel_one", "min_valid_secs": 1}))
            .await
    };
    eventually_async(Duration::from_secs(10), || async {
        session(&token().await)["token"] != first["token"]
    })
    .await;
    let reply = token().await;
    let renewed = session(&reply);
    assert_ne!(renewed["token"], first["token"], "{reply}");
    assert_eq!(renewed["generation"], 2, "{reply}");
    assert!(a.sim.is_token_valid(renewed["token"].as_str().unwrap()));
    let stats = a.sim.stats();
    assert_eq!(
        (stats.renewals, stats.logins),
        (1, 2),
        "one dead renewal, one login after the backoff"
    );
}
