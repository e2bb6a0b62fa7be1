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
