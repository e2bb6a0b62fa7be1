//! Black-box: a daemon in a process of its own, the real `brokerctl` and
//! `brokerd check-config` through a full lifecycle with every secret set to
//! a distinctive value. None of them may appear in the logs, the status
//! output or the audit table.
//!
//! The daemon is this test binary again in the daemon's role
//! (`child::spawn_virtual`: the daemon library as `brokerd --config` runs
//! it, JSON logs on stderr), on virtual time ten times faster than real
//! time, shared with the simulators: its second Kotak login waits for the
//! next TOTP window in 3 s of real time instead of up to 30.

use crate::common;

use std::process::Command;
use std::time::Duration;

use brokerd::brokers::Api;
use brokerd_sim::kotak::{KotakSim, KotakSimConfig, KotakSimUser};
use brokerd_sim::xts::{FailMode, XtsSim, XtsSimConfig, XtsSimUser};
use common::blackbox::{self, brokerctl};
use common::child;
use common::eventually;

const APP_KEY: &str = "APPKEY-SENTINEL-7f1c2e";
const SECRET_KEY: &str = "SECRETKEY-SENTINEL-94ad01";
const MD_APP_KEY: &str = "MDKEY-SENTINEL-3b8e55";
const MD_SECRET_KEY: &str = "MDSECRET-SENTINEL-c0ffee";
const KOTAK_ACCESS: &str = "KOTAK-ACCESS-SENTINEL-5e6f";
const KOTAK_MPIN: &str = "908172";
const KOTAK_SEED: &str = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU";
/// Not a secret, but personal data: it has no business in logs either.
const MOBILE_DIGITS: &str = "9999900001";

/// This test, by its module path, for the daemon's command line.
const THIS_TEST: &str = "secrets::no_secret_reaches_logs_status_or_audit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_status_or_audit() {
    if child::daemon_child().await {
        return;
    }
    let now = chrono::Utc::now();
    let time = child::SharedTime {
        origin: now,
        since: now,
        speed: 10,
    };
    let pump = time.pump();
    let user = XtsSimUser {
        interactive_app_key: APP_KEY.into(),
        interactive_secret_key: SECRET_KEY.into(),
        market_app_key: MD_APP_KEY.into(),
        market_secret_key: MD_SECRET_KEY.into(),
        ..XtsSimUser::demo()
    };
    let sim = XtsSim::start(XtsSimConfig {
        users: vec![user],
        ..XtsSimConfig::default()
    })
    .await
    .unwrap();
    let kotak_user = KotakSimUser {
        access_token: KOTAK_ACCESS.into(),
        mpin: KOTAK_MPIN.into(),
        totp_seed: KOTAK_SEED.into(),
        ..KotakSimUser::demo()
    };
    let kotak = KotakSim::start(KotakSimConfig {
        users: vec![kotak_user.clone()],
        ..KotakSimConfig::default()
    })
    .await
    .unwrap();
    sim.set_clock(pump.clock.clone());
    kotak.set_clock(pump.clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    common::write_secret(&d.join("secrets/kotak_access"), KOTAK_ACCESS);
    common::write_secret(&d.join("secrets/kotak_mpin"), KOTAK_MPIN);
    common::write_secret(&d.join("secrets/kotak_seed"), KOTAK_SEED);
    common::write_secret(&d.join("secrets/app_key"), format!("{APP_KEY}\n"));
    common::write_secret(&d.join("secrets/secret_key"), SECRET_KEY);
    let key = brokerd::store::EncryptionKey::generate();
    let key_b64 = key.to_base64().expose().to_string();
    let config = format!(
        r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
log_format = "json"
[daemon.limits]
login_timeout = "2s"

[[account]]
broker = "jainam"
name = "main"
login_at_start = false
# The test re-logs in right after a login; the budget has its own tests.
min_login_interval = "0s"
[account.jainam]
root = "{root}"
[account.jainam.interactive]
app_key = "file:secrets/app_key"
secret_key = "file:secrets/secret_key"
[account.jainam.market]
app_key = "env:TEST_MD_APP_KEY"
secret_key = "env:TEST_MD_SECRET_KEY"

[[account]]
broker = "kotak_neo"
name = "main"
login_at_start = false
min_login_interval = "0s"
[account.kotak_neo]
login_host = "{kotak_host}"
access_token = "file:secrets/kotak_access"
mobile = "{mobile}"
ucc = "{ucc}"
mpin = "file:secrets/kotak_mpin"
totp_seed = "file:secrets/kotak_seed"
"#,
        d = d.display(),
        root = sim.base_url(),
        kotak_host = kotak.base_url(),
        mobile = kotak_user.mobile,
        ucc = kotak_user.ucc,
    );
    let config_path = d.join("brokerd.toml");
    std::fs::write(&config_path, config).unwrap();

    // With the daemon's environment: the checker reads the key as the
    // daemon's start does (BROKERD_KEY overrides daemon.key).
    let check = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .args(["check-config", "--config"])
        .arg(&config_path)
        .env("BROKERD_KEY", &key_b64)
        .env("TEST_MD_APP_KEY", MD_APP_KEY)
        .env("TEST_MD_SECRET_KEY", MD_SECRET_KEY)
        .output()
        .unwrap();
    let check_text = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{check_text}");

    let log_path = d.join("daemon.log");
    let env = [
        ("BROKERD_KEY", key_b64.as_str()),
        ("TEST_MD_APP_KEY", MD_APP_KEY),
        ("TEST_MD_SECRET_KEY", MD_SECRET_KEY),
        ("RUST_LOG", "debug"),
    ];
    let log = std::fs::File::create(&log_path).unwrap();
    let daemon = child::spawn_virtual(THIS_TEST, d, time, &env, log);
    let socket = d.join("run/brokerd.sock");
    assert!(
        eventually(Duration::from_secs(20), || socket.exists()).await,
        "daemon came up"
    );

    // The lifecycle, through brokerctl.
    let mut outputs = String::new();
    let run = |args: &[&str], expect_ok: bool| {
        let (ok, text) = brokerctl(d, args);
        assert_eq!(ok, expect_ok, "brokerctl {args:?}: {text}");
        text
    };
    let token = run(&["token", "jainam", "--field", "token"], true)
        .trim()
        .to_string();
    assert!(token.len() > 20 && sim.is_token_valid(&token));
    let export = run(&["token", "jainam", "--api", "market", "--export"], true);
    assert!(export.contains("export JAINAM_MAIN_MARKET_TOKEN='"));
    run(
        &[
            "invalidate",
            "jainam",
            "--generation",
            "1",
            "--reason",
            "Invalid Token",
        ],
        true,
    );
    sim.fail_next_logins(Api::Interactive, 1, FailMode::WrongSecret);
    run(&["invalidate", "jainam", "--generation", "2"], false);
    outputs += &run(&["status"], true);
    outputs += &run(&["status", "--json"], true);
    assert!(outputs.contains("locked_out"), "{outputs}");
    // The secret was not changed: `login` refuses to send it again, and
    // says so without quoting it.
    let refused = run(&["login", "jainam"], false);
    assert!(
        refused.contains("the same credentials were rejected"),
        "{refused}"
    );
    outputs += &refused;
    run(&["logout", "jainam", "--api", "market"], true);
    outputs += &run(&["status"], true);
    outputs += &run(&["metrics"], true);
    let kotak_token = run(
        &["token", "kotak_neo", "--wait", "70", "--field", "token"],
        true,
    )
    .trim()
    .to_string();
    assert!(kotak.is_token_valid(&kotak_token));
    let flattened =
        r#"{"code":"900901","message":"Invalid Credentials","description":"Invalid JWT token"}"#;
    run(
        &[
            "invalidate",
            "kotak_neo",
            "--generation",
            "1",
            "--wait",
            "70",
            "--reason",
            flattened,
        ],
        true,
    );
    outputs += &run(&["status"], true);
    assert_eq!(sim.login_count(Api::Interactive), 3);

    blackbox::stop(daemon).await;

    let logs = std::fs::read_to_string(&log_path).unwrap();
    for line in logs.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "log lines are JSON: {line}"
        );
    }
    assert!(
        logs.contains("\"outcome\":\"ok\""),
        "login attempts are logged"
    );
    let fingerprint = brokerd::secret::fingerprint(&token);
    assert!(logs.contains(&fingerprint), "tokens appear as fingerprints");

    let audit = blackbox::audit_text(&d.join("state/brokerd.db")).await;
    for event in [
        "login_ok",
        "login_failed",
        "locked_out",
        "invalidated_current",
        "logout",
    ] {
        assert!(audit.contains(event), "audit has {event}: {audit}");
    }

    let mut secrets: Vec<String> = sim.issued_tokens();
    secrets.extend(kotak.issued_tokens());
    secrets.extend(
        [
            APP_KEY,
            SECRET_KEY,
            MD_APP_KEY,
            MD_SECRET_KEY,
            &key_b64,
            KOTAK_ACCESS,
            KOTAK_MPIN,
            KOTAK_SEED,
            MOBILE_DIGITS,
        ]
        .map(String::from),
    );
    blackbox::assert_no_secret(
        &secrets,
        &[
            ("check-config output", check_text.as_str()),
            ("logs", logs.as_str()),
            ("brokerctl output", outputs.as_str()),
            ("audit table", audit.as_str()),
        ],
    );
}

#[test]
fn check_config_names_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[daemon]\nsocket_mode = \"0666\"\n[[account]]\nbroker = \"jainam\"\nname = \"Main!\"\nrefresh_margin = 600\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    for key in [
        "daemon.socket_mode",
        "account[0].name",
        "account[0].refresh_margin",
        "account[0].jainam",
    ] {
        assert!(text.contains(key), "{key} is reported: {text}");
    }
}

#[test]
fn brokerctl_says_clearly_when_the_daemon_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = brokerctl(dir.path(), &["status"]);
    assert!(!ok);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(text.contains("is brokerd running?"), "{text}");
}

#[test]
fn keygen_writes_a_private_key_file_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let (ok, _) = brokerctl(dir.path(), &["keygen", "--out", path.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(brokerd::store::EncryptionKey::from_base64(&key).is_ok());
    let (again, text) = brokerctl(dir.path(), &["keygen", "--out", path.to_str().unwrap()]);
    assert!(!again, "never overwrites a key: {text}");
}
