//! The real `brokerd` binary as a child process: killed when dropped, and
//! waited for until its socket appears.
#![allow(dead_code)] // each test file uses what it needs

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Killed when dropped, so a failed assertion leaves no daemon behind.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until the daemon listens (it is ready), failing with its log.
pub fn wait_for(daemon: &mut Child, socket: &Path, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        let exited = daemon.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the daemon did not come up ({exited:?}):\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `home/brokerd.toml` for a daemon that needs no broker: one Jainam
/// account, interactive API only, never contacted (no login at start, and
/// nothing asks). Socket `home/run/brokerd.sock`, state `home/state`;
/// `daemon_extra` lines go into `[daemon]`. Its two secret files are 0600,
/// as brokerd requires, and owned by `owner` (uid = gid) when given, for a
/// daemon run as another user. Returns the config's path.
pub fn idle_jainam_config(home: &Path, daemon_extra: &str, owner: Option<u32>) -> PathBuf {
    let config = format!(
        r#"
[daemon]
socket = "{h}/run/brokerd.sock"
state_dir = "{h}/state"
{daemon_extra}

[[account]]
broker = "jainam"
name = "main"
login_at_start = false
[account.jainam]
# Never contacted: no login at start, and the test asks for nothing.
root = "http://127.0.0.1:9"
[account.jainam.interactive]
app_key = "file:{h}/ia_key"
secret_key = "file:{h}/ia_secret"
"#,
        h = home.display()
    );
    for name in ["ia_key", "ia_secret"] {
        let path = home.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{name}-child-test").as_bytes()))
            .unwrap();
        if let Some(id) = owner {
            std::os::unix::fs::chown(&path, Some(id), Some(id)).unwrap();
        }
    }
    let path = home.join("brokerd.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Starts the daemon on `dir/brokerd.toml` with `BROKERD_KEY` set to
/// `key_b64` and `env` added, its stderr into `dir/daemon{run}.log` (one
/// log per run, for tests that kill and restart it).
pub fn spawn_run(dir: &Path, key_b64: &str, run: usize, env: &[(&str, &str)]) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .arg("--config")
        .arg(dir.join("brokerd.toml"))
        .env("BROKERD_KEY", key_b64)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("daemon{run}.log"))).unwrap())
        .spawn()
        .unwrap()
}

/// The logs of runs `0..runs` of [`spawn_run`], one after the other.
pub fn run_logs(dir: &Path, runs: usize) -> String {
    (0..runs)
        .map(|i| std::fs::read_to_string(dir.join(format!("daemon{i}.log"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

/// Set, to the folder of its `brokerd.toml`, in a child copy of this test
/// binary that runs the daemon on virtual time ([`spawn_virtual`]).
const DAEMON_CHILD: &str = "BROKERD_TEST_DAEMON_CHILD";
/// The child's virtual clock: origin, the system time it stood there (Unix
/// milliseconds) and speed, as [`brokerd_sim::virtual_time::Following`]
/// takes them.
const CLOCK_ORIGIN: &str = "BROKERD_TEST_CLOCK_ORIGIN_MS";
const CLOCK_SINCE: &str = "BROKERD_TEST_CLOCK_SINCE_MS";
const CLOCK_SPEED: &str = "BROKERD_TEST_CLOCK_SPEED";

/// Virtual time a test shares with a daemon in a child process: both
/// compute it from the system clock, so neither waits for the other.
#[derive(Clone, Copy, Debug)]
pub struct SharedTime {
    /// Virtual time at `since`.
    pub origin: chrono::DateTime<chrono::Utc>,
    /// The system time at which virtual time stood at `origin`.
    pub since: chrono::DateTime<chrono::Utc>,
    /// How many times faster than real time it runs.
    pub speed: i32,
}

impl SharedTime {
    /// This process's clock of it (hand it to the simulators).
    pub fn pump(&self) -> brokerd_sim::virtual_time::Following {
        brokerd_sim::virtual_time::Following::start(self.origin, self.since, self.speed)
    }
}

/// Starts the daemon on `dir/brokerd.toml` in a child copy of this test
/// binary, running `test` (its module path), which must begin with
/// `if child::daemon_child().await { return; }`. The child runs the daemon
/// library as `brokerd --config` does (its `log_format`, the key from
/// `BROKERD_KEY`, `env` added), on `time`, with its stderr into `log`, until
/// SIGTERM (a clean stop, exit 0) or SIGKILL. For tests that must kill and
/// restart the daemon, or run it in a process of its own, without waiting
/// in real time for what virtual time moves through (TOTP windows).
pub fn spawn_virtual(
    test: &str,
    dir: &Path,
    time: SharedTime,
    env: &[(&str, &str)],
    log: std::fs::File,
) -> Child {
    let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis().to_string();
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(DAEMON_CHILD, dir)
        .env(CLOCK_ORIGIN, ms(time.origin))
        .env(CLOCK_SINCE, ms(time.since))
        .env(CLOCK_SPEED, time.speed.to_string())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// In a child of [`spawn_virtual`]: runs the daemon until SIGTERM and
/// returns true. Elsewhere: false at once.
pub async fn daemon_child() -> bool {
    let Some(dir) = std::env::var_os(DAEMON_CHILD) else {
        return false;
    };
    let at = |var: &str| {
        let ms: i64 = std::env::var(var).unwrap().parse().unwrap();
        chrono::DateTime::from_timestamp_millis(ms).unwrap()
    };
    let time = SharedTime {
        origin: at(CLOCK_ORIGIN),
        since: at(CLOCK_SINCE),
        speed: std::env::var(CLOCK_SPEED).unwrap().parse().unwrap(),
    };
    let loaded = brokerd::config::Config::load(&Path::new(&dir).join("brokerd.toml")).unwrap();
    brokerd::logging::init(loaded.config.daemon.log_format);
    let pump = time.pump();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    let running = brokerd::daemon::start_on(loaded, None, pump.clock.clone())
        .await
        .unwrap();
    term.recv().await;
    running.stop().await;
    true
}
