//! Test harness: a Jainam simulator, a daemon started in-process on a temp
//! dir, and clients over the real Unix socket.
#![allow(dead_code)]

pub mod blackbox;
pub mod browser;
pub mod child;
pub mod deb;
pub mod kotak;
/// The private PostgreSQL cluster of this test process (the library's
/// store tests use the same file).
#[path = "../../../src/store/pg_test_cluster.rs"]
pub mod pg_cluster;
pub mod virtual_time;

use std::path::{Path, PathBuf};
use std::time::Duration;

use brokerd::client::Client;
use brokerd::config::{Config, Loaded};
use brokerd::daemon::{self, Running};
use brokerd::protocol::{self, Request};
use brokerd_sim::xts::{XtsSim, XtsSimConfig, XtsSimUser};
use serde_json::Value;

/// A daemon plus its simulator, on a private temp dir.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub sim: XtsSim,
    pub running: Option<Running>,
    pub policy: String,
    pub extra: String,
    /// Extra lines for `[daemon]`.
    pub daemon: String,
    /// Extra lines for `[daemon.limits]`.
    pub limits: String,
    /// Extra lines for the main account's `[account.jainam]` table.
    pub jainam: String,
    /// The clock every boot of the daemon runs on (`None`: the system's).
    pub clock: Option<brokerd_core::SharedClock>,
}

impl Harness {
    /// Starts a simulator and a daemon with one Jainam account "main" (both
    /// apis); `policy` is extra account-level TOML (e.g. `login_at_start = false`).
    pub async fn start(policy: &str) -> Self {
        Self::start_with(policy, "").await
    }

    /// Like [`start`], with extra TOML appended (more accounts).
    pub async fn start_with(policy: &str, extra: &str) -> Self {
        Self::start_on(policy, extra, None).await
    }

    /// Like [`start`], with `daemon` lines in `[daemon]` from the first
    /// boot on (e.g. a `database_url`).
    pub async fn start_with_daemon(policy: &str, daemon: &str) -> Self {
        let mut cfg = XtsSimConfig::default();
        cfg.users.push(second_user());
        let sim = XtsSim::start(cfg).await.expect("simulator starts");
        let mut h = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            sim,
            running: None,
            policy: policy.to_string(),
            extra: String::new(),
            daemon: daemon.to_string(),
            limits: String::new(),
            jainam: String::new(),
            clock: None,
        };
        h.boot().await;
        h
    }

    /// A desk: the main account plus `accounts` more, each its own user at
    /// the simulator (both apis, logged in at start), with `daemon` lines
    /// in `[daemon]` (e.g. a `[daemon.pacing.jainam]` table) and the
    /// simulator's login latency set before the daemon starts.
    pub async fn start_desk(accounts: usize, daemon: &str, latency: Duration) -> Self {
        let mut cfg = XtsSimConfig::default();
        let mut extra = String::new();
        for i in 0..accounts {
            let user = desk_user(i);
            extra.push_str(&format!(
                "\n[[account]]\nbroker = \"jainam\"\nname = \"desk{i}\"\nmin_login_interval = \"0s\"\n\
                 [account.jainam]\nroot = \"{{root}}\"\n\
                 [account.jainam.interactive]\napp_key = \"{}\"\nsecret_key = \"{}\"\n\
                 [account.jainam.market]\napp_key = \"{}\"\nsecret_key = \"{}\"\n",
                user.interactive_app_key,
                user.interactive_secret_key,
                user.market_app_key,
                user.market_secret_key
            ));
            cfg.users.push(user);
        }
        let sim = XtsSim::start(cfg).await.expect("simulator starts");
        sim.set_latency(latency);
        let mut h = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            sim,
            running: None,
            policy: String::new(),
            extra,
            daemon: daemon.to_string(),
            limits: String::new(),
            jainam: String::new(),
            clock: None,
        };
        h.boot().await;
        h
    }

    /// Like [`start`], with the daemon (every boot of it) and the
    /// simulator on `pump`'s virtual clock.
    pub async fn start_virtual(policy: &str, pump: &virtual_time::Pump) -> Self {
        Self::start_on(policy, "", Some(pump)).await
    }

    async fn start_on(policy: &str, extra: &str, pump: Option<&virtual_time::Pump>) -> Self {
        let mut cfg = XtsSimConfig::default();
        cfg.users.push(second_user());
        let sim = XtsSim::start(cfg).await.expect("simulator starts");
        if let Some(pump) = pump {
            sim.set_clock(pump.clock.clone());
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut h = Self {
            dir,
            sim,
            running: None,
            policy: policy.to_string(),
            extra: extra.to_string(),
            daemon: String::new(),
            limits: String::new(),
            jainam: String::new(),
            clock: pump.map(|p| p.clock.clone() as brokerd_core::SharedClock),
        };
        h.boot().await;
        h
    }

    pub fn config_text(&self) -> String {
        let d = self.dir.path().display();
        let root = self.sim.base_url();
        format!(
            r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
key = "file:{d}/keys/brokerd.key"
create_key_if_missing = true
{daemon}
[daemon.limits]
default_wait = "10s"
login_timeout = "2s"
{grace}
{limits}

[[account]]
broker = "jainam"
name = "main"
{policy}
[account.jainam]
root = "{root}"
{jainam}
[account.jainam.interactive]
app_key = "demo-interactive-key"
secret_key = "demo-interactive-secret"
[account.jainam.market]
app_key = "demo-market-key"
secret_key = "demo-market-secret"
{extra}
"#,
            policy = without_budget(&self.policy),
            daemon = self.daemon,
            limits = self.limits,
            // Unless the test sets its own.
            grace = if self.limits.contains("shutdown_grace") {
                ""
            } else {
                "shutdown_grace = \"5s\""
            },
            jainam = self.jainam,
            extra = self.extra.replace("{root}", &root),
        )
    }

    /// Validates a config text as the daemon would, relative to the temp dir.
    /// Writes `text` as the config file (so `reload` can re-read it).
    pub fn load(&self, text: &str) -> Loaded {
        let path = self.config_path();
        std::fs::write(&path, text).expect("config written");
        Config::load(&path).unwrap_or_else(|e| panic!("test config is valid: {e}"))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("brokerd.toml")
    }

    /// Starts (or restarts) the daemon on the same directory.
    pub async fn boot(&mut self) {
        let loaded = self.load(&self.config_text());
        let running = match &self.clock {
            Some(clock) => daemon::start_on(loaded, None, clock.clone()).await,
            None => daemon::start(loaded).await,
        };
        self.running = Some(running.expect("daemon starts"));
    }

    /// Restarts with extra `[account.jainam]` lines for account main.
    pub async fn restart_with_jainam(&mut self, lines: &str) {
        self.stop().await;
        self.jainam = lines.to_string();
        self.boot().await;
    }

    /// Restarts with extra `[daemon.limits]` lines.
    pub async fn restart_with_limits(&mut self, limits: &str) {
        self.stop().await;
        self.limits = limits.to_string();
        self.boot().await;
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/brokerd.sock")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("state/brokerd.db")
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket()).await.expect("connects")
    }

    /// One request on a fresh connection.
    pub async fn call(&self, request: Value) -> Value {
        self.client().await.call(&request).await.expect("reply")
    }

    /// One typed request on a fresh connection.
    pub async fn request(&self, request: &Request<'_>) -> Value {
        self.client().await.request(request).await.expect("reply")
    }

    pub async fn token(&self, api: &str) -> Value {
        self.request(&Request::Token(protocol::Token {
            broker: Some("jainam".into()),
            account: Some("main".into()),
            api: Some(api.into()),
            ..protocol::Token::default()
        }))
        .await
    }

    /// The status line of one api of account main.
    pub async fn status_of(&self, api: &str) -> Value {
        let st = self.request(&Request::Status(protocol::Status {})).await;
        st["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .find(|a| a["account"] == "main" && a["api"] == api)
            .cloned()
            .expect("account main is listed")
    }
}

/// `policy` with the login budget opened wide unless it sets the budget
/// itself: most tests exercise other rules with logins in quick succession,
/// and `tests/it/login_safety.rs` tests the budget at its defaults and limits.
pub fn without_budget(policy: &str) -> String {
    let mut out = policy.to_string();
    if !policy.contains("min_login_interval") {
        out.push_str("\nmin_login_interval = \"0s\"");
    }
    if !policy.contains("max_logins_per_hour") {
        out.push_str("\nmax_logins_per_hour = 3600");
    }
    out
}

/// A second simulated user, for tests with two accounts.
pub fn second_user() -> XtsSimUser {
    XtsSimUser {
        user_id: "SECOND01".into(),
        interactive_app_key: "second-interactive-key".into(),
        interactive_secret_key: "second-interactive-secret".into(),
        market_app_key: "second-market-key".into(),
        market_secret_key: "second-market-secret".into(),
        is_investor_client: false,
        client_codes: vec!["CLI01".into(), "CLI02".into()],
        application_expiry_date: "2026-12-01".into(),
    }
}

/// The `i`-th user of a desk ([`Harness::start_desk`]).
pub fn desk_user(i: usize) -> XtsSimUser {
    XtsSimUser {
        user_id: format!("DESK{i:04}"),
        interactive_app_key: format!("desk{i}-interactive-key"),
        interactive_secret_key: format!("desk{i}-interactive-secret"),
        market_app_key: format!("desk{i}-market-key"),
        market_secret_key: format!("desk{i}-market-secret"),
        is_investor_client: false,
        client_codes: Vec::new(),
        application_expiry_date: "2027-03-31".into(),
    }
}

/// An `[[account]]` "second" on [`second_user`]'s interactive keys (the
/// harness fills in `{root}`), with `policy` lines at account level.
pub fn second_account(policy: &str) -> String {
    format!(
        r#"
[[account]]
broker = "jainam"
name = "second"
login_at_start = false
{policy}
[account.jainam]
root = "{{root}}"
[account.jainam.interactive]
app_key = "second-interactive-key"
secret_key = "second-interactive-secret"
"#
    )
}

/// Asserts `reply` is a success and returns its session.
pub fn session(reply: &Value) -> &Value {
    assert_eq!(reply["ok"], true, "expected success, got {reply}");
    &reply["session"]
}

/// Asserts the session in `reply` has exactly the `fields` in `expected`
/// (the per-broker tables of docs/protocol.md), and that no secret leaks:
/// none of `never` appears anywhere in the reply, and none of
/// `token_or_headers` appears outside `token` and `headers`, the only places
/// the protocol puts credentials.
pub fn assert_session_fields(
    reply: &Value,
    expected: Value,
    never: &[&str],
    token_or_headers: &[&str],
) {
    let s = session(reply);
    assert_eq!(
        s["fields"], expected,
        "the documented fields, with the broker's values"
    );
    let whole = reply.to_string();
    let mut rest = reply.clone();
    let rest_session = rest["session"].as_object_mut().expect("a session object");
    rest_session.remove("token");
    rest_session.remove("headers");
    let rest = rest.to_string();
    for secret in never {
        assert!(
            !secret.is_empty() && !whole.contains(secret),
            "{secret:?} leaked into {whole}"
        );
    }
    for secret in token_or_headers {
        assert!(
            !secret.is_empty() && whole.contains(secret),
            "{secret:?} is in token or headers"
        );
        assert!(
            !rest.contains(secret),
            "{secret:?} leaked outside token/headers: {rest}"
        );
    }
}

/// Asserts `reply` failed with `code`.
pub fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "expected an error, got {reply}");
    reply["error"]["code"].as_str().expect("error code")
}

/// Asserts `reply` is `login` refused because the broker rejected these very
/// credentials (no broker call); returns the message.
pub fn resend_refused(reply: &Value) -> &str {
    assert_eq!(error_code(reply), "locked_out", "{reply}");
    let message = reply["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("the same credentials were rejected at"),
        "{message}"
    );
    message
}

/// Writes a secret file as an operator must: mode 0600, because brokerd
/// refuses a `file:` secret its group or others can read. Rewriting an
/// existing file keeps its mode.
pub fn write_secret(path: &Path, text: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("secret written");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("mode set");
}

/// [`eventually`] for a condition that must ask the daemon (a `status` or
/// `token` over the socket): polls every 10 ms until it holds or `limit`
/// passes.
pub async fn eventually_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond().await
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

/// All bytes of the sqlite database and its WAL/SHM files.
pub fn db_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(b) = std::fs::read(p) {
            all.extend(b);
        }
    }
    all
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
