//! Black-box: a daemon in a crash loop (killed with SIGKILL while its login
//! waits for the broker, restarted at once, as `Restart=always` would) does
//! not multiply logins. Every login writes a durable `login_started` row
//! before it reaches the broker, and a starting daemon seeds its login
//! budget from them, so the restarts find the last login too recent
//! (`min_login_interval`) and wait in `backoff` instead of logging in.
//! Logins are counted at the simulator, which holds every answer so each
//! kill lands while the broker has the login and the daemon has nothing.

use crate::common;

use std::path::Path;
use std::time::Duration;

use crate::common::child;

use brokerd::brokers::Api;
use brokerd_sim::xts::{FailMode, XtsSim, XtsSimConfig, XtsSimUser};
use child::Daemon;
use common::blackbox::brokerctl;
use common::eventually;

/// Restarts after the first killed login.
const RESTARTS: usize = 4;

fn config(d: &Path, sim: &XtsSim) -> String {
    let u = XtsSimUser::demo();
    format!(
        r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
log_format = "json"
[daemon.limits]
# Longer than the hold: the daemon is still waiting when it is killed.
login_timeout = "60s"

[[account]]
broker = "jainam"
name = "main"
login_at_start = true
[account.jainam]
root = "{root}"
[account.jainam.interactive]
app_key = "{key}"
secret_key = "{secret}"
"#,
        d = d.display(),
        root = sim.base_url(),
        key = u.interactive_app_key,
        secret = u.interactive_secret_key,
    )
}

fn spawn(d: &Path, key_b64: &str, run: usize) -> Daemon {
    Daemon(child::spawn_run(d, key_b64, run, &[]))
}

fn logs(d: &Path) -> String {
    child::run_logs(d, RESTARTS + 1)
}

/// The interactive session's entry in `brokerctl status --json`, if the
/// daemon answers.
fn status(d: &Path) -> Option<serde_json::Value> {
    let (ok, text) = brokerctl(d, &["status", "--json"]);
    if !ok {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["accounts"]
        .as_array()
        .or(value.as_array())?
        .iter()
        .find(|s| s["api"] == "interactive")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_mid_login_sends_one_login_not_one_per_restart() {
    let sim = XtsSim::start(XtsSimConfig::default()).await.unwrap();
    // Every login is counted on arrival, then its answer is held.
    sim.fail_next_logins(
        Api::Interactive,
        1 + RESTARTS as u32,
        FailMode::Timeout(Duration::from_secs(120)),
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("brokerd.toml"), config(d, &sim)).unwrap();
    let key = brokerd::store::EncryptionKey::generate();
    let key_b64 = key.to_base64().expose().to_string();

    let mut daemon = spawn(d, &key_b64, 0);
    assert!(
        eventually(Duration::from_secs(20), || sim
            .login_count(Api::Interactive)
            == 1)
        .await,
        "the first login never reached the simulator:\n{}",
        logs(d)
    );
    for run in 1..=RESTARTS {
        // SIGKILL: no shutdown path runs, the held login is lost.
        daemon.0.kill().unwrap();
        daemon.0.wait().unwrap();
        daemon = spawn(d, &key_b64, run);
        // The restarted daemon sees the last login in its budget and waits.
        let mut last = None;
        let waiting = eventually(Duration::from_secs(20), || {
            last = status(d);
            last.as_ref().is_some_and(|s| s["state"] == "backoff")
        })
        .await;
        assert!(
            waiting,
            "run {run}: not waiting in backoff: {last:?}\n{}",
            logs(d)
        );
        let message = last.as_ref().unwrap()["last_error"]["message"].to_string();
        assert!(
            message.contains("min_login_interval"),
            "run {run}: {message}"
        );
        assert_eq!(
            sim.login_count(Api::Interactive),
            1,
            "run {run} logged in again:\n{}",
            logs(d)
        );
    }
    drop(daemon);
}
