//! The store as the daemon uses it: restarts reuse valid sessions, nothing
//! secret reaches the disk in the clear, bad rows are contained.

use crate::common;

use brokerd::brokers::Api;
use common::{Harness, contains, db_bytes, eventually, session};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_serves_the_stored_session_without_a_login() {
    let mut h = Harness::start("login_at_start = false").await;
    let before = session(&h.token("interactive").await).clone();
    let market = session(&h.token("market").await).clone();
    h.restart().await;
    let after = h.token("interactive").await;
    assert_eq!(session(&after)["token"], before["token"]);
    assert_eq!(session(&after)["generation"], 1);
    assert_eq!(session(&h.token("market").await)["token"], market["token"]);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no login after the restart"
    );
    assert_eq!(h.status_of("interactive").await["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_session_the_broker_no_longer_accepts_is_replaced_after_a_restart() {
    let mut h = Harness::start("login_at_start = false").await;
    session(&h.token("interactive").await);
    h.stop().await;
    h.sim.reject_all_now();
    h.boot().await;
    // Ready before any broker call (invariant 19): the stored session is
    // served until the background check finds it dead, then replaced
    // through the fenced path, by exactly one login.
    assert!(
        eventually(Duration::from_secs(10), || h
            .sim
            .login_count(Api::Interactive)
            == 2)
        .await,
        "the check found the stored session dead and logged in once"
    );
    let after = h.token("interactive").await;
    assert_eq!(
        session(&after)["generation"],
        2,
        "generation continues from the store"
    );
    // A client that used the old session and reports it late is answered
    // with the new one: no second login.
    let late = h
        .call(json!({"op": "invalidate", "broker": "jainam", "api": "interactive", "generation": 1, "reason": "Invalid Token"}))
        .await;
    assert_eq!(session(&late)["generation"], 2, "{late}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_racing_the_restart_check_of_a_dead_session_costs_one_login() {
    for _ in 0..5 {
        let mut h = Harness::start("login_at_start = false").await;
        session(&h.token("interactive").await);
        h.stop().await;
        h.sim.reject_all_now();
        h.boot().await;
        // A client reports the restored generation while the daemon's own
        // check of it may be running: both are reports of generation 1.
        let reply = h
            .call(json!({"op": "invalidate", "broker": "jainam", "api": "interactive", "generation": 1, "reason": "Invalid Token"}))
            .await;
        assert_eq!(session(&reply)["generation"], 2, "{reply}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            h.sim.login_count(Api::Interactive),
            2,
            "one login per death"
        );
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_holds_no_token_or_secret_in_the_clear() {
    let h = Harness::start("login_at_start = false").await;
    let i = session(&h.token("interactive").await).clone();
    let m = session(&h.token("market").await).clone();
    session(&h.call(json!({"op": "invalidate", "broker": "jainam", "generation": 1, "reason": "Invalid Token"})).await);
    let bytes = db_bytes(&h.db_path());
    assert!(bytes.len() > 4096, "the database exists");
    for secret in h.sim.issued_tokens().iter().map(String::as_str).chain([
        i["token"].as_str().unwrap(),
        m["token"].as_str().unwrap(),
        "demo-interactive-secret",
        "demo-market-secret",
        "demo-interactive-key",
        "demo-market-key",
    ]) {
        assert!(
            !contains(&bytes, secret),
            "a secret is in the database in the clear"
        );
    }
    // The key file is the only place the key lives, and it is private.
    let key_path = h.dir.path().join("keys/brokerd.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(!contains(&bytes, key.trim()));
}

/// Copies one row's ciphertext over another's: that row must fail to
/// decrypt (naming its account), and every other account keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_row_is_reported_by_name_and_the_other_accounts_keep_serving() {
    // Its re-login follows its first login closely; the budget has its own tests.
    let extra = &common::second_account("min_login_interval = \"0s\"");
    let mut h = Harness::start_with("login_at_start = false", extra).await;
    let main = session(&h.token("interactive").await).clone();
    let second = session(
        &h.call(json!({"op": "token", "broker": "jainam", "account": "second"}))
            .await,
    )
    .clone();
    h.stop().await;
    let db = h.db_path();
    let url = format!("sqlite://{}", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE sessions SET ciphertext = (SELECT ciphertext FROM sessions WHERE account = 'main' AND api = 'interactive'), nonce = (SELECT nonce FROM sessions WHERE account = 'main' AND api = 'interactive') WHERE account = 'second'")
        .execute(&pool).await.unwrap();
    pool.close().await;
    let logins_before = h.sim.login_count(Api::Interactive);
    h.boot().await;
    // main is served from the store with no login.
    let again = h.token("interactive").await;
    assert_eq!(session(&again)["token"], main["token"]);
    assert_eq!(h.sim.login_count(Api::Interactive), logins_before);
    // second's row is unreadable: status names it, then it logs in afresh.
    let st = h.call(json!({"op": "status"})).await;
    let second_status = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "second")
        .unwrap()
        .clone();
    let msg = second_status["last_error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("jainam/second"),
        "the error names the account: {second_status}"
    );
    let fresh = h
        .call(json!({"op": "token", "broker": "jainam", "account": "second"}))
        .await;
    assert!(
        session(&fresh)["generation"].as_u64().unwrap() > second["generation"].as_u64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_clear_error_per_account_not_a_crash() {
    let mut h = Harness::start("login_at_start = false").await;
    session(&h.token("interactive").await);
    h.stop().await;
    // Replace the key: every stored row now fails to decrypt.
    let key_path = h.dir.path().join("keys/brokerd.key");
    std::fs::remove_file(&key_path).unwrap();
    h.boot().await;
    let st = h.status_of("interactive").await;
    let msg = st["last_error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("jainam/main/interactive"), "{msg}");
    assert!(msg.to_lowercase().contains("key"), "{msg}");
    // The daemon carries on: a fresh login replaces the unreadable session.
    assert_eq!(session(&h.token("interactive").await)["generation"], 2);
    assert!(
        eventually(Duration::from_secs(1), || h
            .sim
            .login_count(Api::Interactive)
            == 2)
        .await
    );
}

/// A dealer login: `client_id` is served with the token, the restart check
/// sends `clientID` (the simulator refuses dealers without it), and the
/// app key's near expiry shows in status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dealer_sessions_carry_client_id_and_survive_a_restart() {
    let extra = r#"
[[account]]
broker = "jainam"
name = "dealer"
login_at_start = false
[account.jainam]
root = "{root}"
[account.jainam.interactive]
app_key = "second-interactive-key"
secret_key = "second-interactive-secret"
[account.jainam.market]
app_key = "second-market-key"
secret_key = "second-market-secret"
"#;
    let mut h = Harness::start_with("login_at_start = false", extra).await;
    let s = session(
        &h.call(json!({"op": "token", "broker": "jainam", "account": "dealer"}))
            .await,
    )
    .clone();
    assert_eq!(s["fields"]["is_investor_client"], false);
    assert_eq!(s["fields"]["client_id"], "CLI01");
    assert_eq!(s["fields"]["client_codes"], json!(["CLI01", "CLI02"]));
    session(
        &h.call(json!({"op": "token", "broker": "jainam", "account": "dealer", "api": "market"}))
            .await,
    );
    h.restart().await;
    let again = h
        .call(json!({"op": "token", "broker": "jainam", "account": "dealer"}))
        .await;
    assert_eq!(
        session(&again)["token"],
        s["token"],
        "validated with clientID and reused"
    );
    let st = h.call(json!({"op": "status"})).await;
    let market = st["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "dealer" && a["api"] == "market")
        .unwrap()
        .clone();
    assert_eq!(market["app_expiry"], "2026-12-01");
    if chrono::Utc::now()
        < chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap()
            - chrono::Duration::days(14)
    {
        assert_eq!(market["warnings"], json!([]));
    } else {
        assert!(
            market["warnings"][0]
                .as_str()
                .unwrap()
                .contains("2026-12-01"),
            "{market}"
        );
    }
}

/// The store holding a newer generation than the daemon knows (its row was
/// unreadable at startup) must not make every login fail for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_generation_in_the_store_is_continued_from() {
    let h = Harness::start("login_at_start = false").await;
    session(&h.token("interactive").await);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", h.db_path().display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sessions SET generation = 41 WHERE account = 'main' AND api = 'interactive'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let renewed = h
        .call(json!({"op": "invalidate", "broker": "jainam", "generation": 1}))
        .await;
    assert_eq!(session(&renewed)["generation"], 42);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "one login, not a retry loop"
    );
}
