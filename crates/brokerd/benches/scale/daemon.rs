//! The daemon under test: its folder (config, secrets, state, socket,
//! logs), the real binary as a child process with a notify socket of its
//! own, and what is read from it over the socket and from /proc.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brokerd::protocol::{Answer, OkReply, Reply, Request, Status, Token};
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

use crate::common::{ChildGuard, round_trip_once};

/// How often `status` is polled while waiting for every session.
pub const POLL: Duration = Duration::from_millis(50);

/// One daemon's home: config, secrets, state, socket, logs, notify socket.
/// Removed when dropped, unless `BROKERD_SCALE_KEEP` is set.
pub struct Home {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Home {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_owned();
        Self {
            dir: Some(dir),
            path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("brokerd.toml")
    }

    pub fn socket(&self) -> PathBuf {
        self.path().join("brokerd.sock")
    }

    pub fn log(&self, run: usize) -> PathBuf {
        self.path().join(format!("daemon{run}.log"))
    }

    pub fn daemon_section(&self) -> String {
        let d = self.path().display();
        format!(
            r#"[daemon]
socket = "{d}/brokerd.sock"
state_dir = "{d}/state"
key = "file:{d}/brokerd.key"
create_key_if_missing = true
log_format = "human"
"#
        )
    }

    /// A secret file (mode 0600, as brokerd requires); its `file:` reference.
    pub fn secret(&self, name: &str, value: &str) -> String {
        use std::io::Write;
        let path = self.path().join("creds").join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent")).expect("creds folder");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .expect("write a secret file");
        format!("file:{}", path.display())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if std::env::var_os("BROKERD_SCALE_KEEP").is_some_and(|v| v != "0")
            && let Some(dir) = self.dir.take()
        {
            println!("  kept {}", dir.keep().display());
        }
    }
}

/// A running daemon, the notify messages it sent, and when it was spawned.
pub struct Daemon {
    guard: ChildGuard,
    pub spawned: Instant,
    /// The same moment on the wall clock, which the simulator stamps its
    /// requests with (it runs on the system clock here).
    pub spawned_at: chrono::DateTime<chrono::Utc>,
    notify: mpsc::UnboundedReceiver<(Instant, String)>,
}

impl Daemon {
    /// Spawns `brokerd --config` on `home` with its open-file limit set, and
    /// a notify socket of its own (`READY=1` is when it says it is ready).
    pub fn spawn(home: &Home, run: usize, nofile: u64) -> Self {
        let notify_path = home.path().join(format!("notify{run}.sock"));
        let notify_sock = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        let (tx, notify) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // A READY line names every session that needs attention: big.
            let mut buf = vec![0u8; 1 << 20];
            while let Ok(n) = notify_sock.recv(&mut buf).await {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), msg)).is_err() {
                    break;
                }
            }
        });
        let log = std::fs::File::create(home.log(run)).expect("create the daemon log");
        let spawned = Instant::now();
        let spawned_at = chrono::Utc::now();
        // The shell sets the limit and becomes the daemon (same pid).
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$1" && shift && exec "$@""#)
            .arg("sh")
            .arg(nofile.to_string())
            .arg(env!("CARGO_BIN_EXE_brokerd"))
            .arg("--config")
            .arg(home.config())
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn brokerd");
        Self {
            guard: ChildGuard {
                name: "brokerd",
                child,
            },
            spawned,
            spawned_at,
            notify,
        }
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.guard.child.try_wait().ok().flatten()
    }

    /// Time from spawn to `READY=1`, and that message's length in bytes.
    pub async fn ready(&mut self, limit: Duration) -> Option<(Duration, usize)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.notify.recv()).await;
            match next {
                Ok(Some((at, msg))) if msg.lines().any(|l| l == "READY=1") => {
                    return Some((at - self.spawned, msg.len()));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// SIGTERM, then the time until it exited (killed after `limit`).
    pub async fn stop(&mut self, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a live pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        while started.elapsed() < limit {
            if self.exited().is_some() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

/// Open file descriptors of `pid` (`None` when /proc does not say).
pub fn open_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(Iterator::count)
}

/// `Threads:` of `/proc/<pid>/status`.
pub fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Sessions by state, from one `status` over the socket.
pub async fn states(socket: &Path) -> Result<BTreeMap<String, usize>, String> {
    let line = round_trip_once(socket, &Request::Status(Status {}).to_line())
        .await
        .map_err(|e| e.to_string())?;
    match Reply::parse(&line) {
        Ok(Reply::Ok(OkReply {
            answer: Answer::Status(status),
            ..
        })) => {
            let mut by_state = BTreeMap::new();
            for entry in status.accounts {
                *by_state.entry(entry.state).or_insert(0) += 1;
            }
            Ok(by_state)
        }
        Ok(_) => Err(format!("not a status answer: {}", line.trim_end())),
        Err(e) => Err(format!("unreadable status reply ({e})")),
    }
}

pub fn render_states(states: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    if parts.is_empty() {
        "no sessions".into()
    } else {
        parts.join(", ")
    }
}

/// Polls `status` until `done` holds for its states; the time since
/// `since`, or the last states seen. Samples the daemon's open files.
pub async fn wait_states(
    daemon: &mut Daemon,
    socket: &Path,
    since: Instant,
    limit: Duration,
    peak_fds: &mut usize,
    done: impl Fn(&BTreeMap<String, usize>) -> bool,
) -> Result<Duration, String> {
    let mut last = String::from("never answered");
    while since.elapsed() < limit {
        if let Some(status) = daemon.exited() {
            return Err(format!("the daemon exited ({status}); last: {last}"));
        }
        *peak_fds = (*peak_fds).max(open_fds(daemon.pid()).unwrap_or(0));
        match states(socket).await {
            Ok(s) if done(&s) => return Ok(since.elapsed()),
            Ok(s) => last = render_states(&s),
            Err(e) => last = e,
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("not reached in {limit:?}; last: {last}"))
}

/// The first successful `token` of `account`'s interactive session,
/// measured from `since`: connection attempts until the socket answers,
/// then one request that may wait for a login.
pub async fn first_token(
    socket: &Path,
    account: &str,
    since: Instant,
    limit: Duration,
) -> Option<Duration> {
    let request = Request::Token(Token {
        broker: Some("jainam".into()),
        account: Some(account.into()),
        wait_secs: Some(limit.as_secs().max(1)),
        ..Token::default()
    })
    .to_line();
    while since.elapsed() < limit {
        if let Ok(reply) = round_trip_once(socket, &request).await
            && reply.contains("\"ok\":true")
        {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// What a daemon's log holds: lines, WARN and ERROR lines, and the most
/// frequent kinds of WARN or ERROR line (target and message, without the
/// fields).
pub struct LogSummary {
    pub lines: usize,
    pub warn: usize,
    pub error: usize,
    pub top: Vec<(usize, String)>,
}

impl LogSummary {
    pub fn read(path: &Path) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        let (mut warn, mut error) = (0, 0);
        for line in text.lines() {
            let level = if line.contains(" WARN ") {
                warn += 1;
                "WARN"
            } else if line.contains(" ERROR ") {
                error += 1;
                "ERROR"
            } else {
                continue;
            };
            // `time  LEVEL target: message key=value ...`: up to the fields.
            let after = line.split_once(level).map_or(line, |(_, rest)| rest);
            let kind: Vec<&str> = after
                .split_whitespace()
                .take_while(|word| !word.contains('='))
                .collect();
            *kinds
                .entry(format!("{level} {}", kind.join(" ")))
                .or_insert(0) += 1;
        }
        let mut top: Vec<(usize, String)> = kinds.into_iter().map(|(k, n)| (n, k)).collect();
        top.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        top.truncate(3);
        Self {
            lines: text.lines().count(),
            warn,
            error,
            top,
        }
    }
}
