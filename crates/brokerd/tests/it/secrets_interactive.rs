//! Black-box, like `secrets.rs`, for the interactive brokers: the real
//! binaries through browser logins, `sign`, a checksum recheck, a refused
//! submission and a logout, with distinctive Zerodha and Breeze secrets.
//! None of them, and none of the tokens the brokers issued, may appear in
//! the logs, the status table or the audit table.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use brokerd_sim::breeze::{BreezeSim, BreezeSimApp, BreezeSimConfig};
use brokerd_sim::kite::{KiteSim, KiteSimApp, KiteSimConfig};
use common::blackbox::{self, brokerctl};
use common::browser::open;
use common::eventually;

const KITE_KEY: &str = "kitekeysentinel8d2e";
const KITE_SECRET: &str = "KITE-SECRET-SENTINEL-1a2b";
const BREEZE_KEY: &str = "breeze+KEY=sentinel^9";
const BREEZE_SECRET: &str = "BREEZE-SECRET-SENTINEL-3c4d";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_interactive_secret_reaches_logs_status_or_audit() {
    let kite = KiteSim::start(KiteSimConfig {
        apps: vec![KiteSimApp {
            api_key: KITE_KEY.into(),
            api_secret: KITE_SECRET.into(),
            ..KiteSimApp::demo()
        }],
        ..KiteSimConfig::default()
    })
    .await
    .unwrap();
    let breeze = BreezeSim::start(BreezeSimConfig {
        apps: vec![BreezeSimApp {
            app_key: BREEZE_KEY.into(),
            secret_key: BREEZE_SECRET.into(),
            ..BreezeSimApp::demo()
        }],
        ..BreezeSimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    for (name, value) in [
        ("kite_key", KITE_KEY),
        ("kite_secret", KITE_SECRET),
        ("breeze_key", BREEZE_KEY),
        ("breeze_secret", BREEZE_SECRET),
    ] {
        common::write_secret(&d.join("secrets").join(name), value);
    }
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}");
    kite.set_redirect_url(KITE_KEY, &format!("{callback}/callback/zerodha/main"));
    breeze.set_redirect_url(BREEZE_KEY, &format!("{callback}/callback/breeze/main"));
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

[callback]
listen = "127.0.0.1:{port}"

[[account]]
broker = "zerodha"
name = "main"
[account.zerodha]
api_root = "{kite_root}"
login_root = "{kite_root}"
api_key = "file:secrets/kite_key"
api_secret = "file:secrets/kite_secret"
user_id = "ZD1234"

[[account]]
broker = "breeze"
name = "main"
[account.breeze]
api_root = "{breeze_root}/breezeapi/api/v1"
login_root = "{breeze_root}/apiuser"
app_key = "file:secrets/breeze_key"
secret_key = "file:secrets/breeze_secret"
user_id = "BZ1234"
"#,
        d = d.display(),
        kite_root = kite.base_url(),
        breeze_root = breeze.base_url(),
    );
    let config_path = d.join("brokerd.toml");
    std::fs::write(&config_path, config).unwrap();

    let log_path = d.join("daemon.log");
    let daemon = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .arg("--config")
        .arg(&config_path)
        .env("BROKERD_KEY", &key_b64)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let socket = d.join("run/brokerd.sock");
    assert!(
        eventually(Duration::from_secs(20), || socket.exists()).await,
        "daemon came up"
    );

    let mut outputs = String::new();
    let run = |args: &[&str], expect_ok: bool| {
        let (ok, text) = brokerctl(d, args);
        assert_eq!(ok, expect_ok, "brokerctl {args:?}: {text}");
        text
    };
    outputs += &run(&["status"], true);
    // Both browser logins, through the callback listener.
    for broker in ["zerodha", "breeze"] {
        let url = run(&["login-url", broker], true);
        let url = url.lines().next().unwrap().trim().to_string();
        let (status, page) = open(&url).await;
        assert_eq!(status, 200, "{page}");
        outputs += &page;
    }
    let kite_token = run(&["token", "zerodha", "--field", "token"], true)
        .trim()
        .to_string();
    assert!(kite.is_token_valid(&kite_token));
    let signed = run(&["sign", "breeze", "--body", "{}"], true);
    assert!(signed.contains("X-Checksum"));
    // A checksum failure while all is well: rechecked, session kept.
    let (ok, text) = brokerctl(
        d,
        &[
            "invalidate",
            "breeze",
            "--generation",
            "1",
            "--reason",
            r#"{"Success":null,"Status":5,"Error":"Authentication Fail :: Invalid Checksum."}"#,
        ],
    );
    assert!(!ok && text.contains("bad_request"), "{text}");
    outputs += &text;
    // A refused submission names the cause without echoing the value.
    let spent = kite.mint_request_token(KITE_KEY);
    let first = run(&["submit", "zerodha", &spent], true);
    outputs += &first;
    let (ok, text) = brokerctl(d, &["submit", "zerodha", &spent]);
    assert!(!ok && text.contains("login_failed"), "{text}");
    assert!(
        !text.contains(&spent),
        "the request token is not echoed: {text}"
    );
    outputs += &text;
    outputs += &run(&["status"], true);
    outputs += &run(&["metrics"], true);
    run(&["logout", "zerodha"], true);
    outputs += &run(&["status"], true);

    blackbox::stop(daemon).await;

    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains(&brokerd::secret::fingerprint(&kite_token)),
        "tokens appear as fingerprints"
    );
    let audit = blackbox::audit_text(&d.join("state/brokerd.db")).await;
    for event in [
        "auth_required",
        "submitted",
        "login_ok",
        "login_failed",
        "logout",
    ] {
        assert!(audit.contains(event), "audit has {event}: {audit}");
    }

    let mut secrets: Vec<String> = kite.issued_tokens();
    secrets.extend(breeze.issued_session_tokens());
    secrets.extend([KITE_KEY, KITE_SECRET, BREEZE_KEY, BREEZE_SECRET, &key_b64].map(String::from));
    assert!(
        secrets.len() >= 8,
        "request and access tokens were issued: {}",
        secrets.len()
    );
    blackbox::assert_no_secret(
        &secrets,
        &[
            ("logs", logs.as_str()),
            ("brokerctl output and callback pages", outputs.as_str()),
            ("audit table", audit.as_str()),
        ],
    );
}
