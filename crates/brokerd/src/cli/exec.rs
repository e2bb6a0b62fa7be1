//! `brokerctl exec`: runs a program with a session in its environment and
//! keeps it on the current session. For programs in any language that read
//! their token once at start (a shell script, a Go binary, a feed process
//! whose websocket keeps the token it was opened with): when the daemon
//! announces a new generation (`renewed`), the program is restarted with
//! the new session, or sent a signal, or left alone.
//!
//! brokerctl stays the program's parent for its whole life: the program's
//! exit status becomes brokerctl's, and SIGTERM, SIGINT and SIGHUP sent to
//! brokerctl are passed on, so it can stand in for the program under
//! systemd or a supervisor.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use serde_json::{Value, json};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use super::render;
use crate::client::Client;
use crate::protocol::{Request, Subscribe};

/// What to do with the program when the session is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnRenew {
    /// Stop it (SIGTERM, then SIGKILL after the grace) and start it again
    /// with the new session in its environment.
    Restart,
    /// Send it this signal; it fetches the new session itself (its
    /// environment cannot change).
    Signal(Signal),
    /// Nothing.
    Ignore,
}

impl std::str::FromStr for OnRenew {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "restart" => Ok(Self::Restart),
            "ignore" => Ok(Self::Ignore),
            other => match other.strip_prefix("signal:") {
                Some(name) => signal_named(name).map(Self::Signal),
                None => Err(format!(
                    "{other:?}: expected restart, ignore or signal:NAME (e.g. signal:HUP)"
                )),
            },
        }
    }
}

/// The signals a program may be asked to reload on.
fn signal_named(name: &str) -> Result<Signal, String> {
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    Ok(match bare.to_ascii_uppercase().as_str() {
        "HUP" => Signal::HUP,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "INT" => Signal::INT,
        "TERM" => Signal::TERM,
        "QUIT" => Signal::QUIT,
        "WINCH" => Signal::WINCH,
        "ALRM" => Signal::ALARM,
        _ => {
            return Err(format!(
                "unknown signal {name:?}: use HUP, USR1, USR2, INT, TERM, QUIT, WINCH or ALRM"
            ));
        }
    })
}

/// What `brokerctl exec` was asked to do.
#[derive(Debug)]
pub struct Exec {
    /// The `token` request for the session (broker, account, api, limits).
    pub request: Request<'static>,
    /// What to do on `renewed`.
    pub on_renew: OnRenew,
    /// How long a restarted program gets between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// Which session the events must match, learnt from the first reply (the
/// request may leave the account or api to the daemon).
struct Watched {
    broker: String,
    account: String,
    api: String,
    generation: u64,
}

impl Watched {
    fn of(session: &Value) -> Self {
        let text = |k: &str| session[k].as_str().unwrap_or_default().to_string();
        Self {
            broker: text("broker"),
            account: text("account"),
            api: text("api"),
            generation: session["generation"].as_u64().unwrap_or(0),
        }
    }

    /// A `renewed` of this session newer than the one the program has.
    fn renewed_by(&self, event: &Value) -> bool {
        event["event"] == "renewed"
            && event["broker"] == self.broker.as_str()
            && event["account"] == self.account.as_str()
            && event["api"] == self.api.as_str()
            && event["generation"]
                .as_u64()
                .is_some_and(|g| g > self.generation)
    }
}

/// Runs the program until it exits; its status is the result.
pub async fn run(socket: &Path, exec: Exec) -> anyhow::Result<ExitCode> {
    let Some(session) = fetch(socket, &exec.request).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut watched = Watched::of(&session);
    let mut child = spawn(&exec.command, &session)?;
    let mut events = Events::new(socket.to_path_buf(), watched.broker.clone());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            status = child.wait() => return Ok(exit_code(status?)),
            _ = term.recv() => forward(&child, Signal::TERM),
            _ = int.recv() => forward(&child, Signal::INT),
            _ = hup.recv() => forward(&child, Signal::HUP),
            news = events.next() => {
                // After a reconnect events may have been missed: ask.
                let renewed = match &news {
                    News::Event(event) => watched.renewed_by(event),
                    News::Reconnected => true,
                };
                if !renewed {
                    continue;
                }
                let Some(session) = fetch(socket, &exec.request).await? else {
                    continue;
                };
                let fresh = Watched::of(&session);
                if fresh.generation <= watched.generation {
                    continue;
                }
                watched = fresh;
                eprintln!(
                    "brokerctl exec: {}/{}/{} renewed (generation {})",
                    watched.broker, watched.account, watched.api, watched.generation
                );
                match exec.on_renew {
                    OnRenew::Restart => {
                        stop(&mut child, exec.grace).await;
                        child = spawn(&exec.command, &session)?;
                    }
                    OnRenew::Signal(sig) => forward(&child, sig),
                    OnRenew::Ignore => {}
                }
            }
        }
    }
}

/// The session, or `None` after printing the daemon's refusal.
async fn fetch(socket: &Path, request: &Request<'_>) -> anyhow::Result<Option<Value>> {
    let reply = Client::connect(socket).await?.request(request).await?;
    if reply["ok"] == json!(true) {
        return Ok(Some(reply["session"].clone()));
    }
    eprintln!(
        "brokerctl exec: {}: {}",
        reply["error"]["code"].as_str().unwrap_or("error"),
        reply["error"]["message"].as_str().unwrap_or("no message")
    );
    Ok(None)
}

/// Starts the program with the session's variables (those of `brokerctl
/// token --export`) added to brokerctl's own environment.
fn spawn(command: &[String], session: &Value) -> anyhow::Result<Child> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no command given: brokerctl exec BROKER -- COMMAND ..."))?;
    Command::new(program)
        .args(args)
        .envs(render::env_pairs(session))
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {program}: {e}"))
}

fn forward(child: &Child, sig: Signal) {
    if let Some(pid) = child.id().and_then(|id| Pid::from_raw(id as i32)) {
        // Gone already: its exit is reported by `wait` anyway.
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// SIGTERM, then SIGKILL if it is still running after `grace`.
async fn stop(child: &mut Child, grace: Duration) {
    forward(child, Signal::TERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// The program's status as brokerctl's: its code, or 128 + the signal that
/// ended it (as a shell reports it).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// What the subscription brought.
enum News {
    /// An event line.
    Event(Value),
    /// The subscription was re-established after a break (a daemon
    /// restart): events may have been missed.
    Reconnected,
}

/// A subscription to one broker's events that reconnects by itself.
struct Events {
    socket: PathBuf,
    broker: String,
    conn: Option<Client>,
    broken: bool,
}

impl Events {
    fn new(socket: PathBuf, broker: String) -> Self {
        Self {
            socket,
            broker,
            conn: None,
            broken: false,
        }
    }

    /// The next event; waits (retrying every second) while the daemon is
    /// unreachable, so the program keeps running through a daemon restart.
    async fn next(&mut self) -> News {
        loop {
            if let Some(conn) = &mut self.conn {
                match conn.next().await {
                    Ok(Some(event)) => return News::Event(event),
                    Ok(None) | Err(_) => {
                        self.conn = None;
                        self.broken = true;
                    }
                }
            }
            match self.subscribe().await {
                Some(conn) => {
                    self.conn = Some(conn);
                    if std::mem::take(&mut self.broken) {
                        return News::Reconnected;
                    }
                }
                None => {
                    self.broken = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn subscribe(&self) -> Option<Client> {
        let mut conn = Client::connect(&self.socket).await.ok()?;
        let ack = conn
            .request(&Request::Subscribe(Subscribe {
                brokers: Some(vec![self.broker.clone()]),
            }))
            .await
            .ok()?;
        (ack["ok"] == json!(true)).then_some(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_renew_parses_every_form_and_names_the_choices() {
        assert_eq!("restart".parse::<OnRenew>(), Ok(OnRenew::Restart));
        assert_eq!("ignore".parse::<OnRenew>(), Ok(OnRenew::Ignore));
        assert_eq!(
            "signal:HUP".parse::<OnRenew>(),
            Ok(OnRenew::Signal(Signal::HUP))
        );
        assert_eq!(
            "signal:SIGUSR1".parse::<OnRenew>(),
            Ok(OnRenew::Signal(Signal::USR1))
        );
        let err = "signal:KILLME".parse::<OnRenew>().unwrap_err();
        assert!(err.contains("USR1"), "{err}");
        let err = "reboot".parse::<OnRenew>().unwrap_err();
        assert!(err.contains("signal:NAME"), "{err}");
    }

    #[test]
    fn only_a_newer_renewal_of_the_same_session_counts() {
        let w = Watched::of(
            &json!({"broker": "jainam", "account": "main", "api": "interactive", "generation": 3}),
        );
        let ev = |account: &str, api: &str, generation: u64, kind: &str| json!({"event": kind, "broker": "jainam", "account": account, "api": api, "generation": generation});
        assert!(w.renewed_by(&ev("main", "interactive", 4, "renewed")));
        assert!(!w.renewed_by(&ev("main", "interactive", 3, "renewed")));
        assert!(!w.renewed_by(&ev("main", "market", 4, "renewed")));
        assert!(!w.renewed_by(&ev("other", "interactive", 4, "renewed")));
        assert!(!w.renewed_by(&ev("main", "interactive", 4, "expiring")));
    }
}
