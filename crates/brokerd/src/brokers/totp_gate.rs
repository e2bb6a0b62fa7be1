//! TOTP hygiene: a code is made from the stored seed at the moment of use,
//! never near the end of its 30 s window, and never twice: each window is
//! recorded durably (through a [`WindowLedger`]) before its code is made,
//! so not even a crash between sending a code and its answer reuses it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::brokers::BrokerError;
use crate::secret::Secret;

/// Length of a TOTP window.
pub const STEP_SECS: u64 = 30;

/// Which window to use and how long to wait for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The 30 s window (Unix time / 30).
    pub step: u64,
    /// How long until that window starts (zero for the current one).
    pub wait: Duration,
}

/// Picks the window for a code at `now_ms` (Unix milliseconds): the current
/// one if at least `min_remaining` of it is left and it was not used
/// before, else the next unused one.
pub fn plan(now_ms: u64, min_remaining: Duration, last_used: Option<u64>) -> Plan {
    let step_ms = STEP_SECS * 1000;
    let mut step = now_ms / step_ms;
    let remaining = (step + 1) * step_ms - now_ms;
    if u128::from(remaining) < min_remaining.as_millis() {
        step += 1;
    }
    // A last window far ahead means the clock stepped back (NTP fixing a
    // fast clock): those codes were for windows not yet reached, so none of
    // the windows from now on was used. Waiting for them would stall logins.
    if let Some(last) = last_used.filter(|l| *l <= step + 2)
        && step <= last
    {
        step = last + 1;
    }
    Plan {
        step,
        wait: Duration::from_millis((step * step_ms).saturating_sub(now_ms)),
    }
}

/// The code of window `step` for a base32 `seed` (SHA-1, 6 digits).
/// `seed_from` says where the broker's customer copies the seed from (an
/// app or a web page), for the fix of a seed that is not base32.
pub fn code(seed: &Secret, step: u64, seed_from: &str) -> Result<String, BrokerError> {
    let cleaned: String = seed
        .expose()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = totp_rs::Secret::Encoded(cleaned).to_bytes().map_err(|_| {
        BrokerError::Config(format!(
            "totp_seed is not valid base32; copy it again from {seed_from}"
        ))
    })?;
    // new_unchecked: Kotak's seeds may be shorter than the RFC's 128-bit advice.
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, STEP_SECS, bytes);
    Ok(totp.generate(step * STEP_SECS))
}

/// Where the gate writes down each window before its code is made, so that
/// a crash cannot make it forget a window whose code may have left. The
/// session layer backs it with the store: brokers never touch the store.
pub trait WindowLedger: Send + Sync + std::fmt::Debug {
    /// The last window recorded for the account, if any.
    fn last_used(&self) -> BoxFuture<'_, Result<Option<u64>, String>>;
    /// Durably records that window `step` is taken. Returns only once the
    /// record is committed: the code of `step` is made only after that.
    fn record(&self, step: u64) -> BoxFuture<'_, Result<(), String>>;
}

/// The last window used for an account, shared by all its logins so no
/// code is ever sent twice, and recorded in a [`WindowLedger`] before each
/// use so that this holds across crashes too.
#[derive(Debug)]
pub struct TotpGate {
    last_used: Mutex<Option<u64>>,
    /// Whether the ledger's last window has been read into `last_used`.
    loaded: AtomicBool,
    ledger: Arc<dyn WindowLedger>,
    /// Taken from reserving a window until its record is committed, so the
    /// records land in the order the windows were reserved (the ledger
    /// keeps the last one written).
    recording: tokio::sync::Mutex<()>,
    /// Where windows are read from: the daemon's clock (a test's manual
    /// one moves through windows without waiting for them).
    clock: SharedClock,
}

impl TotpGate {
    /// A gate that records every window it hands out in `ledger`, on the
    /// system clock.
    pub fn new(ledger: Arc<dyn WindowLedger>) -> Self {
        Self::with_clock(ledger, SystemClock::shared())
    }

    /// [`TotpGate::new`] reading windows from `clock`.
    pub fn with_clock(ledger: Arc<dyn WindowLedger>, clock: SharedClock) -> Self {
        Self {
            last_used: Mutex::new(None),
            loaded: AtomicBool::new(false),
            ledger,
            recording: tokio::sync::Mutex::new(()),
            clock,
        }
    }

    /// Now on the gate's clock, Unix milliseconds.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0)
    }

    /// Records that a login finished at `unix_ms` (e.g. a session found in
    /// the store after a restart): its code was of that window or earlier,
    /// so that window is never used again.
    pub fn used_before(&self, unix_ms: u64) {
        self.used_step(unix_ms / (STEP_SECS * 1000));
    }

    fn used_step(&self, step: u64) {
        let mut last = self.last_used.lock();
        *last = Some(last.map_or(step, |l| l.max(step)));
    }

    /// Seeds the gate from the ledger (at startup; a login does it first
    /// when this has not succeeded yet). Without it a login that crashed
    /// before its answer arrived would leave no trace of its window.
    pub async fn load(&self) -> Result<(), BrokerError> {
        if self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let stored = self.ledger.last_used().await.map_err(|e| {
            BrokerError::Transient(format!(
                "cannot read which TOTP windows were already used ({e}); no code is sent until \
                 it can be read, so none is sent twice"
            ))
        })?;
        if let Some(step) = stored {
            self.used_step(step);
        }
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// Waits for a usable window, records it as used, and returns its code.
    /// If the record cannot be written, no code is made: the error is
    /// transient and names the cause. `seed_from` names where the seed is
    /// copied from, for the message of a seed that is not base32.
    pub async fn next_code(
        &self,
        seed: &Secret,
        min_remaining: Duration,
        seed_from: &str,
    ) -> Result<(String, u64), BrokerError> {
        loop {
            let plan = self.reserve(|| self.now_ms(), min_remaining).await?;
            if !plan.wait.is_zero() {
                tracing::debug!(
                    wait_ms = plan.wait.as_millis() as u64,
                    "waiting for a fresh TOTP window"
                );
                // Until the window starts by the clock (a manual clock's
                // move ends the wait, not real seconds).
                let start = chrono::DateTime::from_timestamp_millis(
                    i64::try_from(plan.step * STEP_SECS * 1000).unwrap_or(i64::MAX),
                )
                .unwrap_or_else(|| self.clock.now());
                brokerd_core::time::sleep_until(&*self.clock, start, tokio::time::sleep).await;
            }
            if fresh(self.now_ms(), plan.step, min_remaining) {
                return Ok((code(seed, plan.step, seed_from)?, plan.step));
            }
            // The record (or the wait) took so long that the window is
            // nearly over: it stays burnt, and the next one is taken.
            tracing::debug!(
                step = plan.step,
                "the TOTP window ran short while it was recorded; taking the next one"
            );
        }
    }

    /// Picks the window for a code at `now()`, reserves it, and returns once
    /// the ledger holds it. A window whose record failed stays reserved in
    /// memory too: skipping a window costs at most 30 s, reusing one costs
    /// a rejected login.
    async fn reserve(
        &self,
        now: impl Fn() -> u64,
        min_remaining: Duration,
    ) -> Result<Plan, BrokerError> {
        self.load().await?;
        let _order = self.recording.lock().await;
        let plan = {
            let mut last = self.last_used.lock();
            let p = plan(now(), min_remaining, *last);
            // Reserved before recording and sleeping, so a concurrent caller
            // picks a later window.
            *last = Some(p.step);
            p
        };
        self.ledger.record(plan.step).await.map_err(|e| {
            BrokerError::Transient(format!(
                "the TOTP window could not be recorded as used ({e}); no code was sent, \
                 because after a crash brokerd could not tell that window was spent"
            ))
        })?;
        Ok(plan)
    }
}

/// Whether at `now_ms` the window `step` is current with at least
/// `min_remaining` of it left.
fn fresh(now_ms: u64, step: u64, min_remaining: Duration) -> bool {
    let step_ms = STEP_SECS * 1000;
    now_ms / step_ms == step
        && u128::from((step + 1) * step_ms - now_ms) >= min_remaining.as_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(5);

    #[test]
    fn the_current_window_when_enough_is_left() {
        // 10 s into window 100.
        assert_eq!(
            plan(3_010_000, S, None),
            Plan {
                step: 100,
                wait: Duration::ZERO
            }
        );
    }

    #[test]
    fn two_seconds_before_the_roll_over_waits_for_the_next_window() {
        assert_eq!(
            plan(3_028_000, S, None),
            Plan {
                step: 101,
                wait: Duration::from_secs(2)
            }
        );
        // Exactly at the margin still counts as enough.
        assert_eq!(plan(3_025_000, S, None).step, 100);
    }

    #[test]
    fn a_window_is_never_used_twice() {
        assert_eq!(
            plan(3_001_000, S, Some(100)),
            Plan {
                step: 101,
                wait: Duration::from_secs(29)
            }
        );
        assert_eq!(plan(3_001_000, S, Some(99)).step, 100);
    }

    #[test]
    fn a_clock_stepped_back_does_not_stall_the_login() {
        // Last used window 10 minutes ahead of now.
        assert_eq!(
            plan(3_010_000, S, Some(120)),
            Plan {
                step: 100,
                wait: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_login_remembered_from_the_store_blocks_its_window() {
        let gate = TotpGate::new(Arc::new(Ledger::default()));
        gate.used_before(3_010_000);
        gate.used_before(2_000_000);
        assert_eq!(*gate.last_used.lock(), Some(100), "never moves backwards");
    }

    /// A ledger in memory that can be told to fail.
    #[derive(Debug, Default)]
    struct Ledger {
        stored: Mutex<Option<u64>>,
        records: Mutex<Vec<u64>>,
        fail_reads: AtomicBool,
        fail_writes: AtomicBool,
    }

    impl WindowLedger for Ledger {
        fn last_used(&self) -> BoxFuture<'_, Result<Option<u64>, String>> {
            let answer = if self.fail_reads.load(Ordering::Relaxed) {
                Err("disk I/O error".to_string())
            } else {
                Ok(*self.stored.lock())
            };
            Box::pin(async move { answer })
        }

        fn record(&self, step: u64) -> BoxFuture<'_, Result<(), String>> {
            let answer = if self.fail_writes.load(Ordering::Relaxed) {
                Err("database is locked".to_string())
            } else {
                *self.stored.lock() = Some(step);
                self.records.lock().push(step);
                Ok(())
            };
            Box::pin(async move { answer })
        }
    }

    fn gate_with(ledger: &Arc<Ledger>) -> TotpGate {
        TotpGate::new(Arc::clone(ledger) as Arc<dyn WindowLedger>)
    }

    #[tokio::test]
    async fn the_window_recorded_before_a_crash_is_not_used_again() {
        // The last run recorded window 100 and died before its login ended:
        // no session is stored, only the ledger knows.
        let ledger = Arc::new(Ledger::default());
        *ledger.stored.lock() = Some(100);
        let gate = gate_with(&ledger);
        gate.load().await.unwrap();
        // 10 s into window 100: plenty left, but it is spent.
        let p = gate.reserve(|| 3_010_000, S).await.unwrap();
        assert_eq!(
            p,
            Plan {
                step: 101,
                wait: Duration::from_secs(20)
            }
        );
        assert_eq!(*ledger.records.lock(), vec![101], "recorded before use");
    }

    #[tokio::test]
    async fn stored_sessions_and_the_ledger_both_seed_the_gate() {
        let ledger = Arc::new(Ledger::default());
        *ledger.stored.lock() = Some(99);
        let gate = gate_with(&ledger);
        // A stored session obtained in window 100, later than the ledger says.
        gate.used_before(3_005_000);
        gate.load().await.unwrap();
        assert_eq!(*gate.last_used.lock(), Some(100), "the later one wins");
        assert_eq!(gate.reserve(|| 3_010_000, S).await.unwrap().step, 101);
        // Without any record the current window is used (and recorded).
        let fresh = Arc::new(Ledger::default());
        let gate = gate_with(&fresh);
        assert_eq!(gate.reserve(|| 3_010_000, S).await.unwrap().step, 100);
        assert_eq!(*fresh.stored.lock(), Some(100));
    }

    #[tokio::test]
    async fn a_window_that_cannot_be_recorded_gives_no_code() {
        let ledger = Arc::new(Ledger::default());
        ledger.fail_writes.store(true, Ordering::Relaxed);
        let gate = gate_with(&ledger);
        let seed = Secret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
        let err = gate.next_code(&seed, S, "the app").await.unwrap_err();
        assert!(matches!(err, BrokerError::Transient(_)), "{err:?}");
        assert!(
            err.message().contains("could not be recorded")
                && err.message().contains("database is locked")
                && err.message().contains("no code was sent"),
            "{err}"
        );
        assert!(ledger.records.lock().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_ledger_stops_logins_until_it_can_be_read() {
        let ledger = Arc::new(Ledger::default());
        *ledger.stored.lock() = Some(100);
        ledger.fail_reads.store(true, Ordering::Relaxed);
        let gate = gate_with(&ledger);
        let err = gate.reserve(|| 3_010_000, S).await.unwrap_err();
        assert!(matches!(err, BrokerError::Transient(_)), "{err:?}");
        assert!(err.message().contains("disk I/O error"), "{err}");
        assert!(ledger.records.lock().is_empty(), "nothing reserved blind");
        ledger.fail_reads.store(false, Ordering::Relaxed);
        assert_eq!(gate.reserve(|| 3_010_000, S).await.unwrap().step, 101);
    }

    #[test]
    fn a_window_is_fresh_only_while_enough_of_it_is_left() {
        assert!(fresh(3_000_000, 100, S));
        assert!(fresh(3_025_000, 100, S));
        assert!(!fresh(3_025_001, 100, S), "too little left");
        assert!(!fresh(2_999_999, 100, S), "not started yet");
        assert!(!fresh(3_030_000, 100, S), "over");
    }

    #[test]
    fn codes_match_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // the 6-digit code is the last six digits.
        let seed = Secret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(code(&seed, 59 / STEP_SECS, "-").unwrap(), "287082");
        let lower = Secret::new("gezdgnbvgy3tqojqgezdgnbvgy3tqojq====");
        assert_eq!(code(&lower, 1, "-").unwrap(), "287082");
        // A bad seed's fix names where that broker's seed comes from.
        let err = code(&Secret::new("not base32!"), 1, "the Neo app").unwrap_err();
        assert!(
            matches!(&err, BrokerError::Config(m) if m.ends_with("copy it again from the Neo app")),
            "{err:?}"
        );
        let err = code(
            &Secret::new("not base32!"),
            1,
            "smartapi.angelone.in/enable-totp",
        );
        assert!(format!("{:?}", err.unwrap_err()).contains("enable-totp"));
    }
}
