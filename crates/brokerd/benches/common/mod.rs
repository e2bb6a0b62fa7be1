//! What the benchmarks share: the real daemon (or another server) as a
//! child process killed when dropped, one request round trip over a Unix
//! socket, waiting for a reply, and the memory of a process.
#![allow(dead_code)] // each benchmark uses what it needs

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Kills the child when dropped, so a panicking benchmark leaves no daemon
/// behind.
pub struct ChildGuard {
    /// How messages name it.
    pub name: &'static str,
    /// The process.
    pub child: Child,
}

impl ChildGuard {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the child's exit status if it has died.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited unexpectedly: {status}", self.name);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `path` until `request` gets a reply containing `expect`, or panics
/// after `limit` (with `on_fail` appended, e.g. the daemon's log).
pub async fn wait_ready(
    guard: &mut ChildGuard,
    path: &Path,
    request: &str,
    expect: &str,
    limit: Duration,
    on_fail: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    let mut last = String::from("never connected");
    while Instant::now() < deadline {
        guard.assert_alive();
        match round_trip_once(path, request).await {
            Ok(reply) if reply.contains(expect) => return,
            Ok(reply) => last = format!("replied {}", reply.trim_end()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{} not ready after {limit:?} ({request} -> {last}){}",
        guard.name,
        on_fail()
    );
}

/// Connects, sends `request` as one line, and reads one reply line.
pub async fn round_trip_once(path: &Path, request: &str) -> std::io::Result<String> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(read).read_line(&mut reply).await?;
    Ok(reply)
}

// /proc readings

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
