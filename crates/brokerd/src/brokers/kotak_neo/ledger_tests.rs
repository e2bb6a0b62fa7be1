//! The login against the simulator with the TOTP ledger in the path: the
//! window is recorded before its code reaches the broker, and a window
//! that cannot be recorded is never sent.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;

use super::*;
use crate::brokers::totp_gate::WindowLedger;
use brokerd_sim::kotak::{KotakSim, KotakSimConfig, KotakSimUser};

/// Records each window with how many codes the simulator had received when
/// the record was made; refuses every write when `fail`.
#[derive(Debug)]
struct Ledger {
    sim: KotakSimProbe,
    fail: bool,
    records: Mutex<Vec<(u64, usize)>>,
}

/// `KotakSim` has no `Debug` (its users hold credentials).
struct KotakSimProbe(KotakSim);

impl std::fmt::Debug for KotakSimProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KotakSim")
    }
}

impl WindowLedger for Ledger {
    fn last_used(&self) -> BoxFuture<'_, Result<Option<u64>, String>> {
        Box::pin(async { Ok(None) })
    }

    fn record(&self, step: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.fail {
                return Err("disk full".to_string());
            }
            let received = self.sim.0.totp_attempts().len();
            self.records.lock().push((step, received));
            Ok(())
        })
    }
}

async fn setup(fail: bool) -> (KotakSim, KotakNeoConfig, Arc<Ledger>) {
    let sim = KotakSim::start(KotakSimConfig::default()).await.unwrap();
    let u = KotakSimUser::demo();
    let cfg = KotakNeoConfig {
        login_host: sim.base_url(),
        access_token: Secret::new(u.access_token),
        mobile: u.mobile,
        ucc: u.ucc,
        mpin: Secret::new(u.mpin),
        totp_seed: Secret::new(u.totp_seed),
        // Short, so the test waits at most a second for a window.
        totp_min_remaining: Duration::from_secs(1),
        clock_skew_warning: Duration::from_secs(2),
        neo_fin_key: "neotradeapi".into(),
    };
    let ledger = Arc::new(Ledger {
        sim: KotakSimProbe(sim.clone()),
        fail,
        records: Mutex::new(Vec::new()),
    });
    (sim, cfg, ledger)
}

#[tokio::test]
async fn a_window_that_cannot_be_recorded_never_reaches_the_broker() {
    let (sim, cfg, ledger) = setup(true).await;
    let shared = KotakShared::new(ledger.clone());
    let client = KotakClient::new(&cfg, Duration::from_secs(5)).unwrap();
    let err = client.login(&shared).await.unwrap_err();
    assert!(matches!(err, BrokerError::Transient(_)), "{err:?}");
    assert!(
        err.message().contains("could not be recorded") && err.message().contains("disk full"),
        "{err}"
    );
    assert_eq!(sim.login_count(), 0, "no tradeApiLogin was sent");
    assert!(sim.totp_attempts().is_empty());
}

#[tokio::test]
async fn the_window_is_recorded_before_its_code_is_sent() {
    let (sim, cfg, ledger) = setup(false).await;
    let shared = KotakShared::new(ledger.clone());
    let client = KotakClient::new(&cfg, Duration::from_secs(5)).unwrap();
    client.login(&shared).await.unwrap();
    let attempts = sim.totp_attempts();
    assert_eq!(attempts.len(), 1);
    let step = attempts[0].matched_step.expect("a valid code") as u64;
    assert_eq!(
        *ledger.records.lock(),
        vec![(step, 0)],
        "the window the sim saw was recorded while the sim had seen no code"
    );
}
