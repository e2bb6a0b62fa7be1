//! `history` over the real socket: the audit trail newest first, bounded,
//! filtered, never a secret, and shown to each peer as `status` is: only the
//! accounts it may use. brokerctl's table and `--json`, and a peer of
//! another uid (run with `setpriv`, as the tests that switch users do).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{Harness, contains, error_code, session};
use serde_json::{Value, json};

/// The second account of these tests.
fn second() -> String {
    common::second_account("min_login_interval = \"0s\"\nallowed_uids = [65534]")
}

fn events(reply: &Value) -> &Vec<Value> {
    assert_eq!(reply["ok"], true, "{reply}");
    reply["events"].as_array().expect("events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_newest_first_bounded_filtered_and_secret_free() {
    let h = Harness::start_with("login_at_start = false", &second()).await;
    let first = session(&h.token("interactive").await).clone();
    let market = session(&h.token("market").await).clone();
    let second = session(
        &h.call(json!({"op": "token", "broker": "jainam", "account": "second"}))
            .await,
    )
    .clone();
    session(
        &h.call(json!({"op": "invalidate", "broker": "jainam", "account": "main", "generation": 1, "reason": "Invalid Token"}))
            .await,
    );

    let all = h.call(json!({"op": "history"})).await;
    let rows = events(&all);
    assert_eq!(all["truncated"], false);
    assert_eq!(all["limit"], 50);
    // Newest first. (The invalidation's own row may come before or after
    // the login it caused: only the logins' order is fixed.)
    let main_logins: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "login_ok" && r["account"] == "main" && r["api"] == "interactive")
        .map(|r| &r["generation"])
        .collect();
    assert_eq!(main_logins, [&json!(2), &json!(1)], "newest first: {all}");
    assert!(rows.iter().any(|r| r["event"] == "invalidated_current"));
    assert!(rows.iter().any(|r| r["account"] == "second"));
    assert!(
        rows[0]["at"].as_str().unwrap().ends_with("+05:30"),
        "times in IST: {all}"
    );
    // Never a token or a secret: the audit table has none by design.
    let text = all.to_string();
    for secret in h.sim.issued_tokens().iter().map(String::as_str).chain([
        first["token"].as_str().unwrap(),
        market["token"].as_str().unwrap(),
        second["token"].as_str().unwrap(),
        "demo-interactive-secret",
        "second-interactive-secret",
    ]) {
        assert!(!contains(text.as_bytes(), secret), "a secret in history");
    }

    // Filters, limit, window.
    let main_market = h
        .call(json!({"op": "history", "broker": "jainam", "account": "main", "api": "market"}))
        .await;
    assert!(events(&main_market).iter().all(|r| r["api"] == "market"));
    assert!(!events(&main_market).is_empty());
    let one = h.call(json!({"op": "history", "limit": 1})).await;
    assert_eq!(events(&one).len(), 1);
    assert_eq!(one["truncated"], true);
    let capped = h.call(json!({"op": "history", "limit": 100000})).await;
    assert_eq!(capped["limit"], 1000);
    let recent = h.call(json!({"op": "history", "since_secs": 3600})).await;
    assert_eq!(events(&recent).len(), rows.len());
    for bad in [
        json!({"op": "history", "limit": 0}),
        json!({"op": "history", "api": "quotes"}),
        json!({"op": "history", "broker": "nse"}),
    ] {
        assert_eq!(error_code(&h.call(bad).await), "bad_request");
    }

    // brokerctl: a table, or the reply as it came.
    let (ok, table) =
        common::blackbox::brokerctl(h.dir.path(), &["history", "jainam", "--account", "second"]);
    assert!(ok, "{table}");
    assert!(table.starts_with("TIME (IST)"), "{table}");
    assert!(
        table.contains("jainam/second") && !table.contains("jainam/main"),
        "{table}"
    );
    let (ok, raw) =
        common::blackbox::brokerctl(h.dir.path(), &["history", "--since", "1h", "--json"]);
    assert!(ok, "{raw}");
    let parsed: Value = serde_json::from_str(&raw).expect("--json prints the reply");
    assert_eq!(parsed["ok"], true);
    assert_eq!(parsed["events"].as_array().unwrap().len(), rows.len());
}

/// A peer allowed on account "second" only (uid 65534 in its allowed_uids)
/// sees second's rows and nothing else, and may not rotate the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sees_only_the_accounts_it_may_use_and_may_not_rotate() {
    let mut h = Harness::start_with("login_at_start = false", &second()).await;
    session(&h.token("interactive").await);
    session(
        &h.call(json!({"op": "token", "broker": "jainam", "account": "second"}))
            .await,
    );
    // Let nobody reach the socket: the socket folder in nogroup, the temp
    // folder enterable.
    h.stop().await;
    std::fs::remove_dir_all(h.dir.path().join("run")).unwrap();
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    h.daemon = "socket_group = \"nogroup\"".into();
    h.boot().await;

    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_brokerctl"))
            .arg("--socket")
            .arg(h.socket())
            .args(args)
            .output()
            .expect("setpriv runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, raw) = as_nobody(&["history", "--json"]);
    assert!(ok, "{raw}");
    let reply: Value = serde_json::from_str(&raw).unwrap();
    let rows = events(&reply);
    assert!(!rows.is_empty(), "{reply}");
    assert!(rows.iter().all(|r| r["account"] == "second"), "{reply}");
    // An operator (root) sees both.
    let all = h.call(json!({"op": "history"})).await;
    assert!(events(&all).iter().any(|r| r["account"] == "main"));

    let (ok, text) = as_nobody(&["rotate-key"]);
    assert!(!ok);
    assert!(
        text.contains("forbidden") && text.contains("rotate"),
        "{text}"
    );
}
