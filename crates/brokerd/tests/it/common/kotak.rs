//! A daemon with one Kotak Neo account "main" against the Kotak simulator.

use brokerd::client::Client;
use brokerd::config::Config;
use brokerd::daemon::{self, Running};
use brokerd::secret::SecretEnv;
use brokerd_sim::kotak::{KotakSim, KotakSimConfig, KotakSimUser};
use serde_json::{Value, json};

pub struct Kotak {
    pub dir: tempfile::TempDir,
    pub sim: KotakSim,
    pub running: Option<Running>,
    pub text: String,
    /// Virtual time shared by the daemon and the simulator, when the test
    /// runs on it (`None`: real time).
    pub time: Option<super::virtual_time::Pump>,
}

impl Kotak {
    pub async fn start(policy: &str) -> Self {
        Self::start_with_sim(policy, |_| {}).await
    }

    /// Starts the simulator, lets `prepare` set it up, then the daemon.
    pub async fn start_with_sim(policy: &str, prepare: impl FnOnce(&KotakSim)) -> Self {
        Self::start_with_limits(policy, "login_timeout = \"3s\"", prepare).await
    }

    /// Like [`Kotak::start_with_sim`], with `limits` as the `[daemon.limits]` lines.
    /// The daemon and the simulator run on one virtual clock moved 20×
    /// faster than real time ([`super::virtual_time`]).
    pub async fn start_with_limits(
        policy: &str,
        limits: &str,
        prepare: impl FnOnce(&KotakSim),
    ) -> Self {
        Self::start_on(
            Some(super::virtual_time::Pump::start()),
            policy,
            limits,
            prepare,
        )
        .await
    }

    async fn start_on(
        time: Option<super::virtual_time::Pump>,
        policy: &str,
        limits: &str,
        prepare: impl FnOnce(&KotakSim),
    ) -> Self {
        let sim = KotakSim::start(KotakSimConfig::default()).await.unwrap();
        if let Some(pump) = &time {
            sim.set_clock(pump.clock.clone());
        }
        prepare(&sim);
        let dir = tempfile::tempdir().unwrap();
        let u = KotakSimUser::demo();
        let d = dir.path().display();
        // The mobile number without +91 and with a space: normalised by config.
        let mobile = format!("{} {}", &u.mobile[3..8], &u.mobile[8..]);
        let text = format!(
            r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
key = "file:{d}/keys/brokerd.key"
create_key_if_missing = true
[daemon.limits]
{limits}
default_wait = "70s"

[[account]]
broker = "kotak_neo"
name = "main"
login_at_start = false
{policy}
[account.kotak_neo]
login_host = "{host}"
access_token = "{access}"
mobile = "{mobile}"
ucc = "{ucc}"
mpin = "{mpin}"
totp_seed = "{seed}"
"#,
            policy = super::without_budget(policy),
            host = sim.base_url(),
            access = u.access_token,
            ucc = u.ucc.to_lowercase(),
            mpin = u.mpin,
            seed = u.totp_seed,
        );
        // Virtual time runs 20× faster: a code is made with 15 s of its
        // window left (not the default 5 s), so it reaches the simulator
        // within its window even on a busy machine. The last section is
        // `[account.kotak_neo]`.
        let text = if time.is_some() {
            format!("{text}totp_min_remaining = \"15s\"\n")
        } else {
            text
        };
        let mut k = Self {
            dir,
            sim,
            running: None,
            text,
            time,
        };
        k.boot().await;
        k
    }

    pub async fn boot(&mut self) {
        let loaded =
            Config::from_toml_str(&self.text, self.dir.path(), &SecretEnv::process()).unwrap();
        self.running = Some(match &self.time {
            Some(pump) => daemon::start_on(loaded, None, pump.clock.clone())
                .await
                .unwrap(),
            None => daemon::start(loaded).await.unwrap(),
        });
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

    /// Now on the test's clock, Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        use brokerd_core::time::Clock;
        let now = match &self.time {
            Some(pump) => pump.clock.now(),
            None => chrono::Utc::now(),
        };
        now.timestamp_millis() as u64
    }

    /// Waits `d` of the test's time: virtual when it runs on a pump.
    pub async fn sleep(&self, d: std::time::Duration) {
        match &self.time {
            Some(pump) => pump.sleep(d).await,
            None => tokio::time::sleep(d).await,
        }
    }

    pub async fn call(&self, request: Value) -> Value {
        let mut c = Client::connect(&self.dir.path().join("run/brokerd.sock"))
            .await
            .unwrap();
        c.call(&request).await.unwrap()
    }

    pub async fn token(&self) -> Value {
        self.call(json!({"op": "token", "broker": "kotak_neo"}))
            .await
    }

    pub async fn invalidate(&self, generation: &Value, reason: Value) -> Value {
        self.call(json!({"op": "invalidate", "broker": "kotak_neo", "generation": generation, "reason": reason, "wait_secs": 70}))
            .await
    }

    pub async fn status(&self) -> Value {
        self.call(json!({"op": "status"})).await["accounts"][0].clone()
    }
}
