//! `notify_command`: runs the operator's program on events a person must act
//! on (`auth_required`, `locked_out`, `conflict`, `store_unavailable`), with
//! the event's JSON line on stdin, so an alert (Telegram, e-mail) can carry
//! the login link.
//! One run at a time, each bounded by `notify_timeout`; output is logged.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::NotifyConfig;
use crate::session::{Event, EventKind};

/// Output beyond this is cut from the log line.
const MAX_LOGGED_OUTPUT: usize = 2048;

/// Whether an event calls for the notify command.
pub fn wanted(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::AuthRequired
            | EventKind::LockedOut
            | EventKind::Conflict
            | EventKind::StoreUnavailable
    )
}

/// Runs the command for every wanted event on `rx` until `cancel`. The
/// caller subscribes before the slots start, so no startup alert is missed.
pub async fn run(cfg: NotifyConfig, mut rx: Receiver<Event>, cancel: CancellationToken) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = rx.recv() => e,
        };
        match event {
            Ok(e) if wanted(e.kind) => {
                let _ = notify_once(&cfg, &e).await;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                warn!(
                    missed = n,
                    "notify_command fell behind; some events were not sent"
                );
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// What one run did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// Did not finish in time and was killed.
    TimedOut,
    /// Could not be started.
    NotStarted,
}

/// Runs the command once for `event`.
pub async fn notify_once(cfg: &NotifyConfig, event: &Event) -> Outcome {
    let line = crate::server::protocol::event_json(event) + "\n";
    let (program, args) = cfg.argv.split_first().expect("validated: not empty");
    let (broker, account, kind) = (event.key.broker, &event.key.account, event.kind.as_str());
    let mut command = Command::new(program);
    command
        .args(args)
        // Only what a script needs: the daemon's environment can hold
        // secrets (env: references) and the credentials directory.
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("LANG", "C.UTF-8")
        // Its own process group, so a timeout ends what it started too.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            warn!(%broker, %account, event = kind, program = %program, error = %e,
                  "notify_command could not be started; check [daemon] notify_command");
            return Outcome::NotStarted;
        }
    };
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let work = async {
        if let Some(stdin) = stdin.as_mut() {
            // A command that ignores stdin may close it early: not an error.
            let _ = stdin.write_all(line.as_bytes()).await;
        }
        drop(stdin.take());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    match tokio::time::timeout(cfg.timeout, work).await {
        Ok((status, out, err)) => {
            let code = status.ok().and_then(|s| s.code());
            let (out, err) = (clip(&out), clip(&err));
            if code == Some(0) {
                info!(%broker, %account, event = kind, stdout = %out, stderr = %err, "notify_command ran");
            } else {
                warn!(%broker, %account, event = kind, exit = ?code, stdout = %out, stderr = %err,
                      "notify_command failed");
            }
            Outcome::Exited(code)
        }
        Err(_) => {
            // Dropping the future dropped the child (kill_on_drop ends it);
            // whatever it started in its group goes too.
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
            }
            warn!(%broker, %account, event = kind, timeout_secs = cfg.timeout.as_secs(),
                  "notify_command did not finish in time and was killed");
            Outcome::TimedOut
        }
    }
}

/// The output as one log field: lossy UTF-8, trimmed, at most
/// [`MAX_LOGGED_OUTPUT`] bytes.
fn clip(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= MAX_LOGGED_OUTPUT {
        return text.to_string();
    }
    let mut end = MAX_LOGGED_OUTPUT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::brokers::{Api, BrokerId, SessionKey};

    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            key: SessionKey::new(BrokerId::Zerodha, "main", Api::Interactive),
            generation: 3,
            expires_at: None,
            login_url: Some("https://kite.example/connect/login?v=3".into()),
        }
    }

    fn cfg(script: &str, timeout: Duration) -> NotifyConfig {
        NotifyConfig {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout,
        }
    }

    #[tokio::test]
    async fn the_environment_is_not_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let script = format!("env > {}", out.display());
        notify_once(&cfg(&script, DEFAULT_TIMEOUT), &event(EventKind::Conflict)).await;
        let env = std::fs::read_to_string(&out).unwrap();
        assert!(env.contains("PATH="), "{env}");
        assert!(
            !env.contains("CARGO"),
            "cargo's variables did not leak: {env}"
        );
    }

    #[tokio::test]
    async fn the_event_json_arrives_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let script = format!("cat > {}", out.display());
        let outcome = notify_once(
            &cfg(&script, DEFAULT_TIMEOUT),
            &event(EventKind::AuthRequired),
        )
        .await;
        assert_eq!(outcome, Outcome::Exited(Some(0)));
        let got: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got["event"], "auth_required");
        assert_eq!(got["broker"], "zerodha");
        assert_eq!(got["account"], "main");
        assert_eq!(got["generation"], 3);
        assert_eq!(got["login_url"], "https://kite.example/connect/login?v=3");
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_the_timeout() {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survivor");
        // A grandchild that would outlive a plain kill of the shell.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let outcome = notify_once(
            &cfg(&script, Duration::from_millis(300)),
            &event(EventKind::LockedOut),
        )
        .await;
        assert_eq!(outcome, Outcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the whole process group was killed");
    }

    #[tokio::test]
    async fn failures_and_missing_programs_are_reported() {
        let outcome = notify_once(
            &cfg("echo oops >&2; exit 3", DEFAULT_TIMEOUT),
            &event(EventKind::Conflict),
        )
        .await;
        assert_eq!(outcome, Outcome::Exited(Some(3)));
        let missing = NotifyConfig {
            argv: vec!["/nonexistent/brokerd-alert".into()],
            timeout: DEFAULT_TIMEOUT,
        };
        assert_eq!(
            notify_once(&missing, &event(EventKind::Conflict)).await,
            Outcome::NotStarted
        );
    }

    #[test]
    fn only_events_a_person_must_act_on() {
        assert!(
            wanted(EventKind::AuthRequired)
                && wanted(EventKind::LockedOut)
                && wanted(EventKind::Conflict)
                && wanted(EventKind::StoreUnavailable)
        );
        assert!(
            !wanted(EventKind::Renewed)
                && !wanted(EventKind::Expiring)
                && !wanted(EventKind::LoggedOut)
        );
    }

    #[test]
    fn long_output_is_clipped_on_a_char_boundary() {
        let long = "é".repeat(MAX_LOGGED_OUTPUT);
        let c = clip(long.as_bytes());
        assert!(c.len() <= MAX_LOGGED_OUTPUT + "…".len());
        assert!(c.ends_with('…'));
    }
}
