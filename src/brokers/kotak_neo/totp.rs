//! TOTP hygiene: a code is made from the stored seed at the moment of use,
//! never near the end of its 30 s window, and never twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
pub fn code(seed: &Secret, step: u64) -> Result<String, BrokerError> {
    let cleaned: String = seed
        .expose()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = totp_rs::Secret::Encoded(cleaned).to_bytes().map_err(|_| {
        BrokerError::Config(
            "the TOTP seed is not valid base32; copy it again from the Neo app".into(),
        )
    })?;
    // new_unchecked: Kotak's seeds may be shorter than the RFC's 128-bit advice.
    let totp = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 0, STEP_SECS, bytes);
    Ok(totp.generate(step * STEP_SECS))
}

/// The last window used for an account, shared by all its logins so no
/// code is ever sent twice.
#[derive(Debug, Default)]
pub struct TotpGate {
    last_used: Mutex<Option<u64>>,
}

impl TotpGate {
    /// Records that a login finished at `unix_ms` (e.g. a session found in
    /// the store after a restart): its code was of that window or earlier,
    /// so that window is never used again.
    pub fn used_before(&self, unix_ms: u64) {
        let step = unix_ms / (STEP_SECS * 1000);
        let mut last = self.last_used.lock();
        *last = Some(last.map_or(step, |l| l.max(step)));
    }

    /// Waits for a usable window, reserves it and returns its code.
    pub async fn next_code(
        &self,
        seed: &Secret,
        min_remaining: Duration,
    ) -> Result<(String, u64), BrokerError> {
        let plan = {
            let mut last = self.last_used.lock();
            let p = plan(now_ms(), min_remaining, *last);
            // Reserved before sleeping, so a concurrent caller picks a later window.
            *last = Some(p.step);
            p
        };
        if !plan.wait.is_zero() {
            tracing::debug!(
                wait_ms = plan.wait.as_millis() as u64,
                "waiting for a fresh TOTP window"
            );
            tokio::time::sleep(plan.wait).await;
        }
        Ok((code(seed, plan.step)?, plan.step))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        let gate = TotpGate::default();
        gate.used_before(3_010_000);
        gate.used_before(2_000_000);
        assert_eq!(*gate.last_used.lock(), Some(100), "never moves backwards");
    }

    #[test]
    fn codes_match_rfc_6238() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890", T = 59 s → 94287082 (8 digits);
        // the 6-digit code is the last six digits.
        let seed = Secret::new("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(code(&seed, 59 / STEP_SECS).unwrap(), "287082");
        let lower = Secret::new("gezdgnbvgy3tqojqgezdgnbvgy3tqojq====");
        assert_eq!(code(&lower, 1).unwrap(), "287082");
        assert!(code(&Secret::new("not base32!"), 1).is_err());
    }
}
