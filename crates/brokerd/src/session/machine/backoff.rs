//! Backoff after transient login failures: doubling from an initial delay up
//! to a cap, with jitter so that many daemons (or accounts) that failed
//! together do not retry together.

use std::time::Duration;

/// The delay before retry number `failures` (1 = first failure).
/// `jitter` in [0, 1) adds up to a quarter of the delay; the cap still holds.
pub fn delay(failures: u32, initial: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let base = initial.saturating_mul(1u32 << exp).min(max);
    let extra = base.mul_f64(jitter.clamp(0.0, 0.999) / 4.0);
    (base + extra).min(max)
}

/// [`delay`] with a random jitter.
pub fn delay_with_jitter(failures: u32, initial: Duration, max: Duration) -> Duration {
    delay(failures, initial, max, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const CAP: Duration = Duration::from_secs(300);

    #[test]
    fn doubles_from_one_second_to_five_minutes() {
        let got: Vec<u64> = (1..=10).map(|n| delay(n, S, CAP, 0.0).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(delay(1000, S, CAP, 0.0), CAP);
    }

    #[test]
    fn jitter_adds_at_most_a_quarter_and_respects_the_cap() {
        assert_eq!(delay(3, S, CAP, 0.999).as_millis(), 4999);
        assert_eq!(delay(20, S, CAP, 0.999), CAP);
        for _ in 0..100 {
            let d = delay_with_jitter(2, S, CAP);
            assert!(d >= Duration::from_secs(2) && d < Duration::from_millis(2500));
        }
    }
}
