//! Helpers for the tests that run the real binaries (`secrets*.rs`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use super::contains;

/// Runs brokerctl against the daemon whose socket is `dir/run/brokerd.sock`;
/// whether it succeeded, and stdout followed by stderr.
pub fn brokerctl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("--socket")
        .arg(dir.join("run/brokerd.sock"))
        .args(args)
        .output()
        .expect("brokerctl runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Sends SIGTERM and asserts the daemon exits cleanly.
pub async fn stop(mut daemon: std::process::Child) {
    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    let exit = tokio::task::spawn_blocking(move || daemon.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "clean exit on SIGTERM");
}

/// Every audit row of the store at `db`, one `event detail` line each.
pub async fn audit_text(db: &Path) -> String {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT event, detail FROM audit")
        .fetch_all(&pool)
        .await
        .unwrap();
    rows.iter().map(|(e, d)| format!("{e} {d}\n")).collect()
}

/// Asserts that no secret appears in any of the named texts.
pub fn assert_no_secret(secrets: &[String], texts: &[(&str, &str)]) {
    for (name, text) in texts {
        for secret in secrets {
            assert!(
                !contains(text.as_bytes(), secret),
                "a secret appears in the {name}"
            );
        }
    }
}
