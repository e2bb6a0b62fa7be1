//! Harness for the interactive brokers: Kite and Breeze simulators, a
//! daemon with the callback listener on a free port, and a browser (a
//! reqwest client that follows redirects, as `curl -L` would).
//!
//! The daemon and both simulators share one manual clock moved 20× faster
//! than real time (`virtual_time::Pump`): cut-offs, reminders, link and
//! token lifetimes and simulated latency pass without waiting for them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use brokerd::client::Client;
use brokerd::config::{Config, Loaded};
use brokerd::daemon::{self, Running};
use brokerd_core::time::Clock;
use brokerd_sim::breeze::{BreezeSim, BreezeSimConfig};
use brokerd_sim::kite::{KiteSim, KiteSimConfig};
use serde_json::{Value, json};

use super::virtual_time::Pump;

pub const KITE_KEY: &str = "demokitekey01";
pub const KITE_SECRET: &str = "demo-kite-api-secret";
pub const BREEZE_KEY: &str = "demo+breeze=key^01";
pub const BREEZE_SECRET: &str = "demo-breeze-secret-key";

/// A daemon with one Zerodha and one Breeze account, both named "main".
pub struct Browser {
    pub dir: tempfile::TempDir,
    pub kite: KiteSim,
    pub breeze: BreezeSim,
    pub running: Option<Running>,
    /// Extra lines for `[daemon]`.
    pub daemon: String,
    /// Extra lines for `[account.zerodha]`.
    pub zerodha: String,
    /// Extra lines for `[account.breeze]`.
    pub breeze_lines: String,
    /// The virtual time the daemon and the simulators share.
    pub time: Pump,
}

impl Browser {
    /// Both simulators and a daemon on a new virtual clock.
    pub async fn start(zerodha: &str, breeze: &str, daemon: &str) -> Self {
        Self::start_on(Pump::start(), zerodha, breeze, daemon).await
    }

    /// Like [`Browser::start`], on `time` (a test that computes cut-offs
    /// from the clock before the daemon starts).
    pub async fn start_on(time: Pump, zerodha: &str, breeze: &str, daemon: &str) -> Self {
        let kite = KiteSim::start(KiteSimConfig::default())
            .await
            .expect("kite sim");
        let breeze_sim = BreezeSim::start(BreezeSimConfig::default())
            .await
            .expect("breeze sim");
        kite.set_clock(time.clock.clone());
        breeze_sim.set_clock(time.clock.clone());
        // The daemon's cut-off is the test's to choose (by default an hour
        // behind the clock); a test that wants the brokers' own cut-off
        // sets it on the simulator too.
        kite.set_cutoff(None);
        breeze_sim.set_cutoff(None);
        let mut b = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            kite,
            breeze: breeze_sim,
            running: None,
            daemon: daemon.to_string(),
            zerodha: zerodha.to_string(),
            breeze_lines: breeze.to_string(),
            time,
        };
        b.boot().await;
        b
    }

    pub fn config_text(&self) -> String {
        // Unless a test sets its own, cut-offs an hour behind the wall
        // clock: the next one is 23 h away, so no test meets a real cut-off
        // (06:00 or 00:00 IST) by running at the wrong time of day.
        let zerodha = if self.zerodha.contains("cutoff") {
            self.zerodha.clone()
        } else {
            format!("cutoff = \"{}\"\n{}", self.ist_in(-3600), self.zerodha)
        };
        let breeze_lines = if self.breeze_lines.contains("cutoff") {
            self.breeze_lines.clone()
        } else {
            format!("cutoff = \"{}\"\n{}", self.ist_in(-3600), self.breeze_lines)
        };
        let d = self.dir.path().display();
        let kite = self.kite.base_url();
        let kite_ticker = self.kite.ticker_url();
        let breeze = self.breeze.base_url();
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
login_timeout = "3s"
shutdown_grace = "5s"

[callback]
listen = "127.0.0.1:0"

[[account]]
broker = "zerodha"
name = "main"
[account.zerodha]
api_root = "{kite}"
login_root = "{kite}"
ticker_root = "{kite_ticker}"
api_key = "{KITE_KEY}"
api_secret = "{KITE_SECRET}"
{zerodha}

[[account]]
broker = "breeze"
name = "main"
[account.breeze]
api_root = "{breeze}/breezeapi/api/v1"
login_root = "{breeze}/apiuser"
app_key = "{BREEZE_KEY}"
secret_key = "{BREEZE_SECRET}"
{breeze_lines}
"#,
            daemon = self.daemon,
        )
    }

    pub fn load(&self) -> Loaded {
        let path = self.dir.path().join("brokerd.toml");
        std::fs::write(&path, self.config_text()).expect("config written");
        Config::load(&path).unwrap_or_else(|e| panic!("test config is valid: {e}"))
    }

    /// Starts the daemon and registers its callback URLs with the simulators
    /// (what an operator does once in each broker's developer console).
    pub async fn boot(&mut self) {
        let running = daemon::start_on(self.load(), None, self.time.clock.clone())
            .await
            .expect("daemon starts");
        let base = running.callback_url.clone().expect("callback listener on");
        self.kite
            .set_redirect_url(KITE_KEY, &format!("{base}/callback/zerodha/main"));
        self.breeze
            .set_redirect_url(BREEZE_KEY, &format!("{base}/callback/breeze/main"));
        self.running = Some(running);
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

    pub fn callback_url(&self) -> String {
        self.running
            .as_ref()
            .and_then(|r| r.callback_url.clone())
            .expect("running")
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket()).await.expect("connects")
    }

    pub async fn call(&self, request: Value) -> Value {
        self.client().await.call(&request).await.expect("reply")
    }

    pub async fn status_of(&self, broker: &str) -> Value {
        let st = self.call(json!({"op": "status"})).await;
        st["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .find(|a| a["broker"] == broker)
            .cloned()
            .expect("account listed")
    }

    /// A person's login pasted through `submit`: a fresh Kite request token.
    pub async fn log_in_zerodha(&self) -> Value {
        let token = self.kite.mint_request_token(KITE_KEY);
        self.call(json!({"op": "submit", "broker": "zerodha", "request_token": token}))
            .await
    }

    /// A person's login pasted through `submit`: a fresh Breeze session key.
    pub async fn log_in_breeze(&self) -> Value {
        let key = self.breeze.mint_session_key(BREEZE_KEY);
        self.call(json!({"op": "submit", "broker": "breeze", "api_session": key}))
            .await
    }

    pub async fn login_url(&self, broker: &str) -> String {
        let r = self
            .call(json!({"op": "login_url", "broker": broker}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        r["login_url"].as_str().expect("login_url").to_string()
    }
}

/// A browser: follows redirects and POSTs like one would.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .expect("client")
}

/// Fetches `url` following redirects; the final status and page text.
pub async fn open(url: &str) -> (u16, String) {
    let r = browser().get(url).send().await.expect("page loads");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

/// A subscriber to events of `broker` (the subscribe answer consumed).
pub async fn subscribe(b: &Browser, broker: &str) -> Client {
    let mut c = b.client().await;
    let ok = c
        .call(&json!({"op": "subscribe", "brokers": [broker]}))
        .await
        .expect("subscribed");
    assert_eq!(ok["ok"], true);
    c
}

/// The next event of `kind` within `limit`, skipping others.
pub async fn next_event(c: &mut Client, kind: &str, limit: Duration) -> Value {
    tokio::time::timeout(limit, async {
        loop {
            let v = c.next().await.expect("stream").expect("event");
            if v["event"] == kind {
                return v;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event within {limit:?}"))
}

impl Browser {
    /// The Asia/Kolkata time of day `secs` from now on the shared clock.
    pub fn ist_in(&self, secs: i64) -> String {
        ist_in(&self.time, secs)
    }
}

/// The Asia/Kolkata time of day `secs` from now on `time`'s clock, for a
/// cut-off in a test.
pub fn ist_in(time: &Pump, secs: i64) -> String {
    let ist = brokerd::brokers::ist::offset();
    (time.clock.now() + chrono::Duration::seconds(secs))
        .with_timezone(&ist)
        .format("%H:%M:%S")
        .to_string()
}
