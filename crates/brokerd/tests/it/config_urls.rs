//! Broker URL keys end to end: `brokerd check-config` refuses the path
//! mistakes before any login, and a login endpoint that answers 404 with a
//! web page (a host the rules cannot know is wrong) locks the account out
//! after exactly one attempt, counted at the simulator, with a message that
//! names the key. A gateway's 5xx page stays a transient failure.

use crate::common;

use std::process::Command;
use std::time::Duration;

use brokerd::config::Config;
use brokerd_sim::breeze::BreezeFail;
use brokerd_sim::kite::KiteFail;
use brokerd_sim::kotak::{KotakFail, KotakSim};
use common::browser::Browser;
use common::kotak::Kotak;
use common::{error_code, eventually};
use serde_json::{Value, json};

/// The message of an error reply.
fn message(reply: &Value) -> &str {
    reply["error"]["message"]
        .as_str()
        .expect("an error message")
}

#[test]
fn check_config_names_each_path_mistake_and_the_expected_form() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        r#"
[daemon]
socket = "{d}/brokerd.sock"
state_dir = "{d}/state"
key = "file:{d}/key"
create_key_if_missing = true

[[account]]
broker = "kotak_neo"
name = "main"
[account.kotak_neo]
login_host = "https://mis.kotaksecurities.com/login/1.0"
access_token = "kotak-access-token"
mobile = "9876543210"
ucc = "AB123"
mpin = "123456"
totp_seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

[[account]]
broker = "zerodha"
name = "main"
[account.zerodha]
login_root = "https://kite.zerodha.com/connect/login"
api_key = "kite-key"
api_secret = "kite-secret"

[[account]]
broker = "breeze"
name = "main"
[account.breeze]
api_root = "https://api.icicidirect.com/"
app_key = "breeze-key"
secret_key = "breeze-secret"
"#
    );
    let path = dir.path().join("brokerd.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("brokerd runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    for (key, wrong, want) in [
        (
            "account[0].kotak_neo.login_host",
            "has the path /login/1.0",
            "write \"https://mis.kotaksecurities.com\"",
        ),
        (
            "account[1].zerodha.login_root",
            "has the path /connect/login",
            "write \"https://kite.zerodha.com\"",
        ),
        (
            "account[2].breeze.api_root",
            "has no path",
            "write \"https://api.icicidirect.com/breezeapi/api/v1\"",
        ),
    ] {
        let at = report
            .find(key)
            .unwrap_or_else(|| panic!("{key} is not named:\n{report}"));
        // Each problem's text runs until the next key is named.
        let end = report[at + key.len()..]
            .find("account[")
            .map_or(report.len(), |i| at + key.len() + i);
        let problem = &report[at..end];
        assert!(problem.contains(wrong), "{problem}");
        assert!(problem.contains(want), "{problem}");
    }
    // The SDK defaults are quoted next to the fix.
    for sdk in [
        "https://kite.zerodha.com/connect/login;",
        "https://api.icicidirect.com/breezeapi/api/v1/",
    ] {
        assert!(report.contains(sdk), "{sdk}:\n{report}");
    }
    // The daemon refuses the same file.
    assert!(Config::load(&path).is_err());
}

/// A daemon with one Kotak Neo account against its own simulator; no login
/// at start (the test's `token` request makes the one login), fast backoff.
async fn kotak(prepare: impl FnOnce(&KotakSim)) -> Kotak {
    Kotak::start_with_sim(
        "backoff_initial = \"100ms\"\nbackoff_max = \"200ms\"",
        prepare,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kotak_login_host_answering_404_locks_out_after_one_attempt() {
    // The login host answers tradeApiLogin with a web server's 404 page, as
    // a host that is not Kotak's does.
    let mut k = kotak(|sim| sim.fail_next_logins(1, KotakFail::NotFound)).await;
    let reply = k
        .call(json!({"op": "token", "broker": "kotak_neo", "wait_secs": 60}))
        .await;
    assert_eq!(error_code(&reply), "locked_out", "{reply}");
    let m = message(&reply);
    assert!(
        m.contains("account.kotak_neo.login_host: ")
            && m.contains("tradeApiLogin answered HTTP 404 with an HTML page")
            && m.contains(&format!("{:?}", k.sim.base_url()))
            && m.contains("https://mis.kotaksecurities.com"),
        "{m}"
    );
    // Backoff is 100 ms: a transient failure would have been retried (and,
    // the fault being spent, succeeded) by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((k.sim.login_count(), k.sim.validate_count()), (1, 0));
    let status = k.call(json!({"op": "status"})).await;
    let account = &status["accounts"][0];
    assert_eq!(account["state"], "locked_out", "{status}");
    assert!(
        account["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("account.kotak_neo.login_host"),
        "{status}"
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kotak_gateway_page_is_still_retried() {
    // 502 with an HTML page: an outage, not the URL. Retried, then logged in.
    let mut k = kotak(|sim| sim.fail_next_logins(1, KotakFail::Html)).await;
    let first = k
        .call(json!({"op": "token", "broker": "kotak_neo", "wait_secs": 60}))
        .await;
    assert_eq!(error_code(&first), "unavailable", "{first}");
    // The retry waits for a fresh TOTP window: up to 30 s.
    assert!(eventually(Duration::from_secs(40), || k.sim.successful_logins() == 1).await);
    let reply = k
        .call(json!({"op": "token", "broker": "kotak_neo", "wait_secs": 10}))
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(k.sim.login_count(), 2);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kite_api_root_answering_404_locks_out_after_one_exchange() {
    let mut b = Browser::start("", "", "").await;
    b.kite.fail_next_exchanges(1, KiteFail::NotFound);
    let reply = b.log_in_zerodha().await;
    assert_eq!(error_code(&reply), "locked_out", "{reply}");
    let m = message(&reply);
    assert!(
        m.contains("account.zerodha.api_root: ")
            && m.contains("POST /session/token answered HTTP 404 with an HTML page")
            && m.contains("https://api.kite.trade"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.kite.exchange_count(), 1);
    assert_eq!(b.kite.successful_exchanges(), 0);
    assert_eq!(b.status_of("zerodha").await["state"], "locked_out");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breeze_api_root_answering_404_locks_out_after_one_exchange() {
    let mut b = Browser::start("", "", "").await;
    b.breeze.fail_next(1, BreezeFail::NotFound);
    let reply = b.log_in_breeze().await;
    assert_eq!(error_code(&reply), "locked_out", "{reply}");
    let m = message(&reply);
    assert!(
        m.contains("account.breeze.api_root: ")
            && m.contains("GET customerdetails answered HTTP 404 with an HTML page")
            && m.contains("https://api.icicidirect.com/breezeapi/api/v1"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.breeze.customerdetails_count(), 1);
    assert_eq!(b.status_of("breeze").await["state"], "locked_out");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_gateway_pages_do_not_lock_out() {
    let mut b = Browser::start("", "", "").await;
    b.kite.fail_next_exchanges(1, KiteFail::Html);
    b.breeze.fail_next(1, BreezeFail::Html);
    for (broker, reply) in [
        ("zerodha", b.log_in_zerodha().await),
        ("breeze", b.log_in_breeze().await),
    ] {
        assert_eq!(reply["ok"], false, "{reply}");
        assert_ne!(error_code(&reply), "locked_out", "{reply}");
        assert_ne!(b.status_of(broker).await["state"], "locked_out");
    }
    // The next person's login goes through.
    assert_eq!(b.log_in_zerodha().await["ok"], true);
    assert_eq!(b.log_in_breeze().await["ok"], true);
    b.stop().await;
}
