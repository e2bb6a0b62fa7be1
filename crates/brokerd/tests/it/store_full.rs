//! A store that cannot take a session (full disk) never costs a login:
//! no broker call while it lasts, the last good session is still served,
//! the outage is reported (status, metrics, event, notify_command), a
//! browser submission is refused before its exchange (so the same link
//! works afterwards), and the daemon recovers by itself. Logins and
//! exchanges are counted at the simulators. Most tests fail the store on
//! demand (`FaultSwitch`); one fills a real tmpfs.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use brokerd::brokers::Api;
use brokerd::client::Client;
use brokerd::store::Store;
use brokerd_sim::xts::{XtsSim, XtsSimConfig};
use common::browser::{Browser, browser, next_event, open, subscribe};
use common::virtual_time::Pump;
use common::{Harness, error_code, eventually, session};
use serde_json::{Value, json};

/// Probes come quickly in tests: 200 ms, doubling.
const FAST_PROBES: &str = "backoff_initial = \"200ms\"";

fn store(running: &Option<brokerd::daemon::Running>) -> &Store {
    &running.as_ref().expect("running").store
}

/// Polls an async condition every 50 ms until it holds or `limit` passes.
async fn until<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond().await
}

/// The next event line within `limit`, if any.
async fn event_within(c: &mut Client, limit: Duration) -> Option<Value> {
    tokio::time::timeout(limit, c.next())
        .await
        .ok()
        .map(|e| e.expect("stream").expect("event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jainam_makes_no_login_while_the_store_is_full_keeps_serving_and_recovers_by_itself() {
    let time = Pump::start();
    let h = Harness::start_virtual(&format!("login_at_start = false\n{FAST_PROBES}"), &time).await;
    let first = h.token("interactive").await;
    let good = session(&first)["token"].as_str().unwrap().to_string();
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
    let mut events = h.client().await;
    assert_eq!(
        events
            .call(&json!({"op": "subscribe", "brokers": ["jainam"]}))
            .await
            .unwrap()["ok"],
        true
    );

    store(&h.running).faults().set_disk_full(true);
    // Something wants a new session: an operator's `login`.
    let forced = h
        .call(json!({"op": "login", "broker": "jainam", "account": "main", "api": "interactive"}))
        .await;
    assert_eq!(error_code(&forced), "store_unavailable", "{forced}");
    let message = forced["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("database or disk is full")
            && message.contains("free disk space")
            && message.contains(&h.db_path().display().to_string()),
        "the message names the store, the error and the fix: {message}"
    );
    assert!(forced["error"]["retry_after_secs"].as_u64().is_some());

    // The last good session is still served.
    let served = h.token("interactive").await;
    assert_eq!(session(&served)["generation"], 1);
    assert_eq!(session(&served)["token"], good.as_str());

    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "store_unavailable", "{status}");
    assert_eq!(status["last_error"]["code"], "store_unavailable");
    assert!(status["expires_at"].is_string(), "{status}");
    assert!(status["retry_after_secs"].as_u64().is_some(), "{status}");
    let metrics = h.call(json!({"op": "metrics"})).await;
    let text = metrics["text"].as_str().unwrap();
    assert!(text.contains("brokerd_store_available 0"), "{text}");
    assert!(text.contains(
        "brokerd_session_state{broker=\"jainam\",account=\"main\",api=\"interactive\",state=\"store_unavailable\"} 1"
    ));

    let event = next_event(&mut events, "store_unavailable", Duration::from_secs(5)).await;
    assert_eq!(event["api"], "interactive");
    assert_eq!(event["generation"], 1);
    assert!(event["expires_at"].is_string(), "{event}");

    // Several probe periods (200 ms, 400 ms, 800 ms, 1.6 s, in virtual
    // time): still no login, and the outage was announced once.
    time.sleep(Duration::from_secs(4)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no login in the outage"
    );
    assert_eq!(
        event_within(&mut events, Duration::from_millis(200)).await,
        None,
        "one event per outage"
    );
    assert_eq!(
        h.status_of("interactive").await["state"],
        "store_unavailable"
    );

    // The broker rejects the session now: still no login, and the dead
    // session is not served.
    let reported = h
        .call(
            json!({"op": "invalidate", "broker": "jainam", "account": "main", "api": "interactive",
                     "generation": 1, "reason": "Invalid Token"}),
        )
        .await;
    assert_eq!(error_code(&reported), "store_unavailable", "{reported}");
    assert_eq!(
        error_code(&h.token("interactive").await),
        "store_unavailable"
    );
    time.sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no login in the outage"
    );
    // (The market api was never wanted: no login there either.)
    assert_eq!(h.sim.login_count(Api::Market), 0);

    // Space returns: the daemon notices by itself and logs in once.
    store(&h.running).faults().set_disk_full(false);
    let renewed = next_event(&mut events, "renewed", Duration::from_secs(10)).await;
    assert_eq!(renewed["generation"], 2);
    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "active", "{status}");
    assert_eq!(status["last_error"], Value::Null);
    time.sleep(Duration::from_secs(1)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 2, "exactly one login");
    assert_eq!(session(&h.token("interactive").await)["generation"], 2);
    let audit = store(&h.running).audit_rows(50).await.unwrap();
    assert!(
        audit.iter().any(|r| r.event == "store_recovered"),
        "{audit:?}"
    );
    let metrics = h.call(json!({"op": "metrics"})).await;
    assert!(
        metrics["text"]
            .as_str()
            .unwrap()
            .contains("brokerd_store_available 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_refused_after_the_reservation_spends_one_login_and_no_more() {
    let time = Pump::start();
    let h = Harness::start_virtual(&format!("login_at_start = false\n{FAST_PROBES}"), &time).await;
    session(&h.token("interactive").await);
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
    // The disk fills while the broker answers: after the reservation
    // succeeded, before the save. (Virtual time: 16 s of latency is 800 ms
    // of real time, and the disk fills 6 s (300 ms) into it.)
    h.sim.set_latency(Duration::from_secs(16));
    let mut c = h.client().await;
    let login = json!({"op": "login", "broker": "jainam", "account": "main", "api": "interactive"});
    let (forced, ()) = tokio::join!(c.call(&login), async {
        time.sleep(Duration::from_secs(6)).await;
        store(&h.running).faults().set_disk_full(true);
    });
    let forced = forced.unwrap();
    assert_eq!(error_code(&forced), "store_unavailable", "{forced}");
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "that login was spent"
    );
    h.sim.set_latency(Duration::ZERO);
    // No backoff loop of logins that are all thrown away.
    time.sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "no login in the outage"
    );
    assert_eq!(
        h.status_of("interactive").await["state"],
        "store_unavailable"
    );
    store(&h.running).faults().set_disk_full(false);
    assert!(
        until(Duration::from_secs(10), || async {
            h.status_of("interactive").await["state"] == "active"
        })
        .await
    );
    // The session still served is valid and nothing asked for another:
    // recovering alone logs in for nobody. The operator's retry does.
    time.sleep(Duration::from_millis(500)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
    let again = h.call(login).await;
    assert_eq!(session(&again)["generation"], 2);
    assert_eq!(h.sim.login_count(Api::Interactive), 3);
}

#[tokio::test]
async fn zerodha_callback_during_the_outage_is_refused_before_the_exchange_and_the_same_link_works_later()
 {
    let b = Browser::start("", "", "").await;
    let url = b.login_url("zerodha").await;
    store(&b.running).faults().set_disk_full(true);

    // A person logs in; Kite redirects to the callback with a request token.
    let response = browser().get(&url).send().await.expect("page loads");
    let callback = response.url().clone();
    let status = response.status().as_u16();
    let page = response.text().await.unwrap();
    assert!(callback.as_str().contains("request_token="), "{callback}");
    assert_eq!(status, 503, "{page}");
    assert!(
        page.contains("cannot store a session right now (disk full?)")
            && page.contains("your login was not used")
            && page.contains("Try this same page again"),
        "{page}"
    );
    assert_eq!(
        b.kite.exchange_count(),
        0,
        "the request token never reached Kite"
    );
    assert_eq!(b.status_of("zerodha").await["state"], "store_unavailable");

    // The same through the socket, for both brokers.
    let r = b.log_in_zerodha().await;
    assert_eq!(error_code(&r), "store_unavailable", "{r}");
    assert_eq!(b.kite.exchange_count(), 0);
    let r = b.log_in_breeze().await;
    assert_eq!(error_code(&r), "store_unavailable", "{r}");
    assert_eq!(
        b.breeze.customerdetails_count(),
        0,
        "the session key never reached ICICI"
    );

    // After the outage the very same redirect completes the login: neither
    // the link's state nor the single-use request token was spent.
    store(&b.running).faults().set_disk_full(false);
    let (status, page) = open(callback.as_str()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Logged in"), "{page}");
    assert_eq!(b.kite.exchange_count(), 1);
    assert_eq!(b.status_of("zerodha").await["state"], "active");
}

#[tokio::test]
async fn a_submission_whose_session_the_store_then_refuses_is_reported_as_spent() {
    let b = Browser::start("", "", "").await;
    // The disk fills while Kite answers the exchange.
    // (Virtual time: 16 s of latency is 800 ms of real time.)
    b.kite.set_latency(Duration::from_secs(16));
    let (r, ()) = tokio::join!(b.log_in_zerodha(), async {
        b.time.sleep(Duration::from_secs(6)).await;
        store(&b.running).faults().set_disk_full(true);
    });
    // Not "your login was not used": it was, and only a new one helps.
    assert_eq!(error_code(&r), "login_failed", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("login spent") && message.contains("log in again"),
        "{message}"
    );
    assert_eq!(b.kite.exchange_count(), 1);
    assert_eq!(b.status_of("zerodha").await["state"], "store_unavailable");
}

#[tokio::test]
async fn notify_command_hears_of_the_outage() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("notify.log");
    let daemon = format!(
        "notify_command = [\"/bin/sh\", \"-c\", \"cat >> {}\"]\nnotify_timeout = \"5s\"",
        log.display()
    );
    let b = Browser::start("", "", &daemon).await;
    let mut events = subscribe(&b, "zerodha").await;
    store(&b.running).faults().set_disk_full(true);
    let r = b.log_in_zerodha().await;
    assert_eq!(error_code(&r), "store_unavailable", "{r}");
    next_event(&mut events, "store_unavailable", Duration::from_secs(5)).await;
    let outage = |text: &str| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["event"] == "store_unavailable")
    };
    assert!(
        eventually(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|t| outage(&t).is_some())
        })
        .await,
        "notify_command got the store_unavailable event"
    );
    let line = outage(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(line["broker"], "zerodha");
    assert_eq!(line["account"], "main");
}

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs on `at`. A failed mount fails the test: it
    /// exists to prove the real disk-full path, and must not pass without it.
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .expect("mount(8) runs");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} ({}): this test needs root (CAP_SYS_ADMIN) to fill a real filesystem",
            at.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the filesystem refuses another byte.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [64 * 1024, 4096, 1] {
        let bytes = vec![0xa5u8; chunk];
        loop {
            match f.write(&bytes) {
                Ok(n) if n == chunk => {}
                Ok(_) => break,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_starting_on_a_full_disk_makes_no_login_and_logs_in_once_space_returns() {
    let sim = XtsSim::start(XtsSimConfig::default()).await.unwrap();
    let time = Pump::start();
    sim.set_clock(time.clock.clone());
    let mut h = Harness {
        dir: tempfile::tempdir().unwrap(),
        sim,
        running: None,
        policy: format!("login_at_start = false\n{FAST_PROBES}"),
        extra: String::new(),
        daemon: String::new(),
        limits: String::new(),
        jainam: String::new(),
        clock: Some(time.clock.clone()),
    };
    let state = h.dir.path().join("state");
    let _tmpfs = Tmpfs::mount(&state, "2m");
    // A first run creates the database; a clean stop folds the WAL into it.
    h.boot().await;
    h.stop().await;

    // The disk fills while the daemon is down, all but a little: enough
    // to open the database (its 32 KiB shared-memory file), not enough to
    // store a session.
    let slack = state.join("slack");
    std::fs::write(&slack, vec![0u8; 64 * 1024]).unwrap();
    let filler = state.join("filler");
    fill(&filler);
    std::fs::remove_file(&slack).unwrap();

    // It starts wanting both sessions and has none.
    h.policy = FAST_PROBES.to_string();
    h.boot().await;
    assert!(
        until(Duration::from_secs(5), || async {
            h.status_of("interactive").await["state"] == "store_unavailable"
                && h.status_of("market").await["state"] == "store_unavailable"
        })
        .await,
        "{}",
        h.call(json!({"op": "status"})).await
    );
    let status = h.status_of("interactive").await;
    let message = status["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("database or disk is full") && message.contains("free disk space"),
        "SQLite's own disk-full error, with the fix: {message}"
    );
    let refused = h.token("interactive").await;
    assert_eq!(error_code(&refused), "store_unavailable", "{refused}");
    // Several probe periods: no login at all.
    time.sleep(Duration::from_secs(3)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 0);
    assert_eq!(h.sim.login_count(Api::Market), 0);

    // Space returns: one login per api, by itself.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        until(Duration::from_secs(10), || async {
            h.status_of("interactive").await["state"] == "active"
                && h.status_of("market").await["state"] == "active"
        })
        .await,
        "{}",
        h.call(json!({"op": "status"})).await
    );
    time.sleep(Duration::from_secs(1)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
    assert_eq!(h.sim.login_count(Api::Market), 1);
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
    h.stop().await;
}
