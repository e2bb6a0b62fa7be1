//! A daemon killed (SIGKILL) after its Kotak TOTP reached the broker but
//! before the answer came back never sends that window's code again after
//! a restart. The simulator runs here and holds every `tradeApiLogin`
//! answer, so each kill lands at the worst moment: the code has arrived, no
//! session exists, and the daemon is waiting.
//!
//! The daemon runs in a child process (this test binary again, in the
//! daemon's role: `child::spawn_virtual`, the daemon library as the
//! `brokerd` binary runs it), killed with SIGKILL and restarted. The child
//! and the simulator here read the same virtual time, ten times faster than
//! real time, from the system clock and one origin passed to the child
//! (`virtual_time::Following`): TOTP windows last 3 s of real time, and the test
//! takes seconds instead of waiting for real 30 s windows.

use crate::common;
use crate::common::child;

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use brokerd_core::time::Clock;
use brokerd_sim::kotak::{KotakSim, KotakSimConfig, KotakSimUser, TotpAttempt};
use child::SharedTime;
use chrono::{DateTime, Utc};
use common::blackbox::{self, brokerctl};
use common::eventually;

const STEP_MS: u64 = 30_000;
/// The daemon's default `totp_min_remaining`.
const MIN_REMAINING_MS: u64 = 5_000;
/// Virtual time runs this many times faster than real time.
const SPEED: i32 = 10;
/// This test, by its module path, for the child's command line.
const THIS_TEST: &str = "totp_crash::a_totp_window_is_never_used_twice_across_kill_9";

fn millis(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap()
}

fn config(d: &Path, sim: &KotakSim) -> String {
    let u = KotakSimUser::demo();
    format!(
        r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
log_format = "json"
[daemon.limits]
# Longer than any hold here: the daemon must still be waiting for its
# answer when it is killed, not retrying after a timeout.
login_timeout = "60s"

[[account]]
broker = "kotak_neo"
name = "main"
login_at_start = true
[account.kotak_neo]
login_host = "{host}"
access_token = "{access}"
mobile = "{mobile}"
ucc = "{ucc}"
mpin = "{mpin}"
totp_seed = "{seed}"
"#,
        d = d.display(),
        host = sim.base_url(),
        access = u.access_token,
        mobile = u.mobile,
        ucc = u.ucc,
        mpin = u.mpin,
        seed = u.totp_seed,
    )
}

/// A daemon that is killed when dropped, so a failing assertion leaves no
/// daemon running behind the test.
struct Daemon(Option<Child>);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Daemon {
    fn take(mut self) -> Child {
        self.0.take().expect("still running")
    }
}

/// Run `run` of the daemon: this test binary again, in the daemon's role,
/// with its stderr in `d/daemon{run}.log` (read by `child::run_logs`).
fn spawn(d: &Path, key_b64: &str, run: usize, time: SharedTime) -> Daemon {
    let log = std::fs::File::create(d.join(format!("daemon{run}.log"))).unwrap();
    let env = [("BROKERD_KEY", key_b64), ("RUST_LOG", "debug")];
    Daemon(Some(child::spawn_virtual(THIS_TEST, d, time, &env, log)))
}

/// SIGKILL (what `Child::kill` sends on Unix): no shutdown path runs.
async fn kill_9(daemon: Daemon) {
    let mut daemon = daemon.take();
    daemon.kill().unwrap();
    tokio::task::spawn_blocking(move || daemon.wait().unwrap())
        .await
        .unwrap();
}

fn logs(d: &Path) -> String {
    child::run_logs(d, 3)
}

/// Waits until the simulator has received `n` codes and holds the answer
/// of the last one (its daemon is blocked waiting for it).
async fn wait_for_held_code(sim: &KotakSim, n: usize, limit: Duration, d: &Path) -> TotpAttempt {
    let arrived = eventually(limit, || {
        sim.totp_attempts().len() == n && sim.held_logins() == 1
    })
    .await;
    assert!(
        arrived,
        "code {n} never arrived (or not held): {:?}\n{}",
        sim.totp_attempts(),
        logs(d)
    );
    sim.totp_attempts()[n - 1].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_window_is_never_used_twice_across_kill_9() {
    if child::daemon_child().await {
        return;
    }
    // Virtual time starts 1 s into a window, so the first window still has
    // well over `totp_min_remaining` left when the daemon restarts: a
    // daemon that forgot it would then send its code again.
    let since = Utc::now();
    let into = millis(since) % STEP_MS;
    let origin = since - chrono::Duration::milliseconds(into as i64 - 1000);
    let clock = SharedTime {
        origin,
        since,
        speed: SPEED,
    };
    let time = clock.pump();
    let now_ms = || millis(time.clock.now());

    let sim = KotakSim::start(KotakSimConfig::default()).await.unwrap();
    sim.set_clock(time.clock.clone());
    sim.hold_logins(true);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("brokerd.toml"), config(d, &sim)).unwrap();
    let key_b64 = brokerd::store::EncryptionKey::generate()
        .to_base64()
        .expose()
        .to_string();

    // Run 0 sends window W and is killed while the sim holds its answer.
    let daemon = spawn(d, &key_b64, 0, clock);
    let first = wait_for_held_code(&sim, 1, Duration::from_secs(20), d).await;
    kill_9(daemon).await;
    // Run 1 starts at once, while W is still current with time to spare.
    let daemon = spawn(d, &key_b64, 1, clock);
    let first_step = first.matched_step.expect("a valid code") as u64;
    let left = (first_step + 1) * STEP_MS - now_ms().min((first_step + 1) * STEP_MS);
    assert!(
        left > MIN_REMAINING_MS,
        "the restart came too late ({left} ms left in window {first_step}) for this test to prove anything"
    );
    // It must wait for W+1. Its code is held too, and it is killed at the
    // very start of that window: the longest time for a forgetful restart
    // to reuse it.
    let second = wait_for_held_code(&sim, 2, Duration::from_secs(20), d).await;
    kill_9(daemon).await;
    assert!(
        second.matched_step > first.matched_step,
        "the code sent after the first restart belongs to a later window: {:?}",
        sim.totp_attempts()
    );
    // Run 2 starts at once; the answers are released, so it can log in.
    let daemon = spawn(d, &key_b64, 2, clock);
    sim.hold_logins(false);
    let logged_in = eventually(Duration::from_secs(20), || sim.successful_logins() == 1).await;
    assert!(
        logged_in,
        "the restarted daemon logs in: {:?}\n{}",
        sim.totp_attempts(),
        logs(d)
    );

    let attempts = sim.totp_attempts();
    let windows: Vec<Option<i64>> = attempts.iter().map(|a| a.matched_step).collect();
    assert!(
        windows.len() >= 3 && windows[2] > second.matched_step,
        "the code sent after the second restart belongs to a later window: {windows:?}"
    );
    assert_eq!(attempts.len(), 3, "one code per run: {windows:?}");
    assert!(
        windows.iter().all(Option::is_some),
        "every code was valid for its window: {windows:?}"
    );
    assert!(attempts[2].accepted, "{attempts:?}");

    // The session is served, and the store holds the last window (a number,
    // never the code).
    let (ok, text) = brokerctl(d, &["token", "kotak_neo", "--field", "token"]);
    assert!(ok, "{text}");
    assert!(sim.is_token_valid(text.trim()));
    blackbox::stop(daemon.take()).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}/state/brokerd.db", d.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT broker, account, last_window FROM totp_windows")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![("kotak_neo".into(), "main".into(), windows[2].unwrap())]
    );
    sim.shutdown().await;
}
