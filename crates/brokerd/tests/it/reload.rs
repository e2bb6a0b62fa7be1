//! Live reload through the `reload` op (SIGHUP takes the same path; see
//! tests/it/systemd.rs): sessions of unchanged accounts survive, accounts come
//! and go, changed credentials clear a lock-out, a bad file changes nothing.

use crate::common;

use brokerd::brokers::Api;
use brokerd_sim::xts::FailMode;
use common::{Harness, error_code, session};
use serde_json::json;

async fn reload(h: &Harness, text: &str) -> serde_json::Value {
    std::fs::write(h.config_path(), text).unwrap();
    h.call(json!({"op": "reload"})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_come_and_go_and_unchanged_sessions_keep_their_generation() {
    let mut h = Harness::start("login_at_start = false").await;
    let main = session(&h.token("interactive").await).clone();
    // Add an account.
    h.extra = common::second_account("");
    let added = reload(&h, &h.config_text()).await;
    assert_eq!(added["ok"], true, "{added}");
    assert_eq!(added["added"], json!(["jainam/second/interactive"]));
    assert_eq!(added["unchanged"], 2);
    let second = h
        .call(json!({"op": "token", "broker": "jainam", "account": "second"}))
        .await;
    assert_eq!(session(&second)["fields"]["user_id"], "SECOND01");
    let main_again = h.token("interactive").await;
    assert_eq!(
        session(&main_again)["token"],
        main["token"],
        "main kept its session"
    );
    assert_eq!(h.sim.login_count(Api::Interactive), 2);
    // Remove it again: it stops; its stored session is kept.
    h.extra = String::new();
    let removed = reload(&h, &h.config_text()).await;
    assert_eq!(removed["removed"], json!(["jainam/second/interactive"]));
    let gone = h
        .call(json!({"op": "token", "broker": "jainam", "account": "second"}))
        .await;
    assert_eq!(error_code(&gone), "unknown_account");
    // Back once more: its stored session returns without a login.
    h.extra = common::second_account("");
    reload(&h, &h.config_text()).await;
    let back = h
        .call(json!({"op": "token", "broker": "jainam", "account": "second"}))
        .await;
    assert_eq!(session(&back)["token"], session(&second)["token"]);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "no login for any reload"
    );
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_with_its_reasons_and_nothing_changes() {
    let h = Harness::start("login_at_start = false").await;
    let before = session(&h.token("interactive").await).clone();
    let broken = h
        .config_text()
        .replace("name = \"main\"", "name = \"Main!\"\nbogus_key = 1");
    let reply = reload(&h, &broken).await;
    assert_eq!(error_code(&reply), "bad_request");
    let msg = reply["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("account[0].name")
            && msg.contains("bogus_key")
            && msg.contains("running configuration stays"),
        "{msg}"
    );
    assert_eq!(
        session(&h.token("interactive").await)["token"],
        before["token"]
    );
    assert_eq!(h.status_of("interactive").await["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_credentials_clear_a_lock_out_and_daemon_changes_need_a_restart() {
    let mut h = Harness::start("login_at_start = false").await;
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    // Unchanged config: still locked out.
    let same = reload(&h, &h.config_text()).await;
    assert_eq!(same["changed"], json!([]));
    assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    // New credentials (another simulated user's keys): the lock is lifted.
    let text = h
        .config_text()
        .replacen("demo-interactive-key", "second-interactive-key", 1)
        .replacen("demo-interactive-secret", "second-interactive-secret", 1);
    let changed = reload(&h, &text).await;
    assert_eq!(
        changed["changed"],
        json!(["jainam/main/interactive"]),
        "{changed}"
    );
    let s = h.token("interactive").await;
    assert_eq!(session(&s)["fields"]["user_id"], "SECOND01");
    // [daemon] settings are reported as needing a restart.
    h.limits = "max_connections = 7".into();
    let daemon_change = reload(
        &h,
        &h.config_text()
            .replacen("demo-interactive-key", "second-interactive-key", 1)
            .replacen("demo-interactive-secret", "second-interactive-secret", 1),
    )
    .await;
    assert_eq!(daemon_change["needs_restart"], json!(["daemon.limits"]));
    assert_eq!(daemon_change["changed"], json!([]));
}

/// Going back to credentials the broker rejected earlier (an operator tries
/// a second secret, it is rejected too, and the edit is undone) never sends
/// the first ones again: not on the reload, not on `login`, not after a
/// restart. Every rejected set is remembered until a login succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn going_back_to_earlier_rejected_credentials_never_resends_them() {
    let mut h = Harness::start(&common::without_budget("login_at_start = false")).await;
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    let first = h.config_text();
    let second = first
        .replacen("demo-interactive-key", "second-interactive-key", 1)
        .replacen("demo-interactive-secret", "second-interactive-secret", 1);
    // The second secret is rejected as well.
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    assert_eq!(
        reload(&h, &second).await["changed"],
        json!(["jainam/main/interactive"])
    );
    assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    assert_eq!(h.sim.login_count(Api::Interactive), 2);

    // Back to the first: still locked out, and nothing is sent.
    assert_eq!(
        reload(&h, &first).await["changed"],
        json!(["jainam/main/interactive"])
    );
    assert_eq!(h.status_of("interactive").await["state"], "locked_out");
    let refused = h.token("interactive").await;
    assert_eq!(error_code(&refused), "locked_out", "{refused}");
    assert!(
        refused
            .to_string()
            .contains("the same credentials were rejected"),
        "{refused}"
    );
    common::resend_refused(
        &h.call(json!({"op": "login", "broker": "jainam", "account": "main"}))
            .await,
    );
    // A restart on the first credentials remembers both rejections.
    h.restart().await;
    assert_eq!(h.status_of("interactive").await["state"], "locked_out");
    assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        2,
        "neither rejected secret is ever sent again"
    );
}

/// Only credentials or hosts lift a lock-out: changing a timeout or a
/// warning threshold must not send the rejected credentials again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_without_new_credentials_keeps_the_lock_out() {
    let mut h = Harness::start("login_at_start = false").await;
    h.sim
        .fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    assert_eq!(error_code(&h.token("interactive").await), "locked_out");
    h.jainam = "fallback_lifetime = \"4h\"\napp_expiry_warning = \"30d\"".into();
    let reply = reload(&h, &h.config_text()).await;
    let changed = reply["changed"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"));
    assert!(
        changed.iter().any(|k| k == "jainam/main/interactive"),
        "{reply}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(h.status_of("interactive").await["state"], "locked_out");
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        1,
        "no second attempt with the rejected secret"
    );
}
