//! `brokerctl exec`: the real brokerctl runs a program with the session in
//! its environment and keeps it on the current one. On `renewed` it
//! restarts the program with the new session (default), or signals it, and
//! it passes its own SIGTERM on and returns the program's exit status.
//! Renewals are made by reporting the current generation dead, as a
//! trading program would; the simulator issues each new token.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Harness, eventually, session, without_budget};
use serde_json::json;

/// The program's notes, one line each.
fn lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn exec(h: &Harness, on_renew: &str, script: &str, out: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("--socket")
        .arg(h.socket())
        .args([
            "exec",
            "jainam",
            "--on-renew",
            on_renew,
            "--grace",
            "5",
            "--",
        ])
        .args(["sh", "-c", script])
        .env("OUT", out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reports the current interactive session dead; returns the new one.
async fn renew(h: &Harness) -> serde_json::Value {
    let current = session(&h.token("interactive").await).clone();
    let reply = h
        .call(json!({"op": "invalidate", "broker": "jainam", "generation": current["generation"],
                     "reason": {"type": "error", "code": "e-session-0007", "description": "Invalid Token"},
                     "http_status": 401, "wait_secs": 10}))
        .await;
    session(&reply).clone()
}

async fn wait_lines(out: &Path, n: usize) -> Vec<String> {
    let arrived = eventually(Duration::from_secs(10), || lines(out).len() >= n).await;
    assert!(arrived, "expected {n} lines, got {:?}", lines(out));
    lines(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_restarts_the_program_with_the_new_session() {
    let h = Harness::start(&without_budget("")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first = session(&h.token("interactive").await).clone();
    let mut child = exec(
        &h,
        "restart",
        r#"echo "$$ $JAINAM_MAIN_GENERATION $JAINAM_MAIN_TOKEN $JAINAM_MAIN_USER_ID" >> "$OUT"; exec sleep 600"#,
        &out,
    );
    let started = wait_lines(&out, 1).await;
    let fields: Vec<&str> = started[0].split(' ').collect();
    assert_eq!(
        fields[1..],
        [
            &first["generation"].to_string(),
            first["token"].as_str().unwrap(),
            "DEMO01"
        ]
    );
    let first_pid: i32 = fields[0].parse().unwrap();

    // The subscription may not be taken yet: renew until the program moves.
    let mut renewed = renew(&h).await;
    while !eventually(Duration::from_millis(500), || lines(&out).len() >= 2).await {
        renewed = renew(&h).await;
    }
    let after = wait_lines(&out, 2).await;
    let fields: Vec<&str> = after[1].split(' ').collect();
    assert_eq!(
        fields[1..3],
        [
            &renewed["generation"].to_string(),
            renewed["token"].as_str().unwrap()
        ],
        "restarted with the new session: {after:?}"
    );
    assert!(
        !Path::new(&format!("/proc/{first_pid}")).exists(),
        "the first program was stopped"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "brokerctl keeps running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_mode_signals_instead_of_restarting_and_sigterm_is_passed_on() {
    let h = Harness::start(&without_budget("")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = exec(
        &h,
        "signal:USR1",
        r#"trap 'echo usr1 >> "$OUT"' USR1
           trap 'echo term >> "$OUT"; exit 0' TERM
           echo started >> "$OUT"
           while :; do sleep 0.05; done"#,
        &out,
    );
    wait_lines(&out, 1).await;
    renew(&h).await;
    while !eventually(Duration::from_millis(500), || lines(&out).len() >= 2).await {
        renew(&h).await;
    }
    assert_eq!(
        lines(&out)[..2],
        ["started", "usr1"],
        "signalled, not restarted"
    );

    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        status.success(),
        "the program's exit 0 is brokerctl's: {status:?}"
    );
    assert_eq!(lines(&out).last().unwrap(), "term", "{:?}", lines(&out));
    assert_eq!(lines(&out).iter().filter(|l| *l == "started").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_programs_exit_status_is_brokerctls_and_a_refusal_starts_nothing() {
    let h = Harness::start(&without_budget("")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = exec(&h, "restart", "exit 7", &out).wait().unwrap();
    assert_eq!(status.code(), Some(7));

    let refused = Command::new(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("--socket")
        .arg(h.socket())
        .args(["exec", "jainam", "--account", "nobody-here", "--"])
        .args(["sh", "-c", r#"echo ran >> "$OUT""#])
        .env("OUT", &out)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("unknown_account"), "{text}");
    assert!(lines(&out).is_empty(), "the program never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_keeps_running_through_a_daemon_restart_and_follows_later_renewals() {
    let mut h = Harness::start(&without_budget("")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut child = exec(
        &h,
        "restart",
        r#"echo "$JAINAM_MAIN_GENERATION" >> "$OUT"; exec sleep 600"#,
        &out,
    );
    let before = wait_lines(&out, 1).await;
    h.restart().await;
    // The restored session is the same generation: no restart for it.
    let restored = session(&h.token("interactive").await).clone();
    assert_eq!(restored["generation"].to_string(), before[0]);
    let mut renewed = renew(&h).await;
    while !eventually(Duration::from_secs(3), || lines(&out).len() >= 2).await {
        renewed = renew(&h).await;
    }
    let after = lines(&out);
    assert_eq!(after.len(), 2, "one restart, for the renewal: {after:?}");
    assert_eq!(after[1], renewed["generation"].to_string());
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    child.wait().unwrap();
}
