//! The login budget of one session (DESIGN invariant 9): beneath every
//! other rule, automatic logins never come closer together than
//! `min_login_interval` and never number more than `max_logins_per_hour` in
//! any hour, whatever the broker answers and whatever clients report.
//!
//! Pure bookkeeping: every call takes `now`, so the rules are tested in
//! virtual time and the slot decides what a refusal means for its state.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The window of the hourly cap.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

/// The start of the hour the budget remembers at `now`: the login starts
/// a starting daemon reads back from the audit trail.
pub(crate) fn remembered_since(
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    now - chrono::Duration::from_std(HOUR).unwrap_or_default()
}

/// Which limit refused a login, and when a login is allowed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The last login started less than `interval` ago.
    TooSoon {
        /// When the interval has passed.
        until: DateTime<Utc>,
        /// The configured interval.
        interval: Duration,
    },
    /// `cap` logins started within the last hour.
    HourlyCap {
        /// When the oldest of them leaves the hour.
        until: DateTime<Utc>,
        /// The configured cap.
        cap: u32,
    },
}

impl Refusal {
    /// When a login is allowed again.
    pub fn until(self) -> DateTime<Utc> {
        match self {
            Self::TooSoon { until, .. } | Self::HourlyCap { until, .. } => until,
        }
    }
}

/// Start times of the logins of the last hour, oldest first.
#[derive(Debug)]
pub struct LoginBudget {
    interval: Duration,
    cap: u32,
    starts: VecDeque<DateTime<Utc>>,
}

impl LoginBudget {
    /// A budget allowing one login per `interval` and `cap` per hour.
    pub fn new(interval: Duration, cap: u32) -> Self {
        Self {
            interval,
            cap: cap.max(1),
            starts: VecDeque::new(),
        }
    }

    /// Applies reloaded limits; the logins already counted stay counted.
    pub fn set_limits(&mut self, interval: Duration, cap: u32) {
        self.interval = interval;
        self.cap = cap.max(1);
    }

    /// Whether an automatic login may start at `now`.
    pub fn check(&mut self, now: DateTime<Utc>) -> Result<(), Refusal> {
        self.forget_before(now);
        if self.starts.len() >= self.cap as usize
            && let Some(&oldest) = self.starts.front()
        {
            return Err(Refusal::HourlyCap {
                until: oldest + HOUR,
                cap: self.cap,
            });
        }
        match self.starts.back() {
            Some(&last) if now < last + self.interval => Err(Refusal::TooSoon {
                until: last + self.interval,
                interval: self.interval,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a login started at `now` (operator logins too: they bypass
    /// the check but not the count).
    pub fn record(&mut self, now: DateTime<Utc>) {
        self.forget_before(now);
        self.starts.push_back(now);
    }

    /// Counts login starts read from the audit trail that are not counted
    /// yet (a takeover reads the shared trail again), in time order.
    pub fn merge(&mut self, starts: impl IntoIterator<Item = DateTime<Utc>>) {
        for at in starts {
            if !self.starts.contains(&at) {
                self.starts.push_back(at);
            }
        }
        self.starts.make_contiguous().sort();
    }

    /// Takes back the latest login: it never reached the broker (the store
    /// could not have kept its session).
    pub fn refund(&mut self) {
        self.starts.pop_back();
    }

    /// Logins counted within the hour before `now`.
    pub fn used(&mut self, now: DateTime<Utc>) -> usize {
        self.forget_before(now);
        self.starts.len()
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        while let Some(&first) = self.starts.front() {
            if now - first >= chrono::Duration::from_std(HOUR).expect("an hour fits") {
                self.starts.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn one_login_per_interval() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        let mut b = LoginBudget::new(30 * S, 20);
        assert_eq!(b.check(t0), Ok(()));
        b.record(t0);
        assert_eq!(
            b.check(t0 + 29 * S),
            Err(Refusal::TooSoon {
                until: t0 + 30 * S,
                interval: 30 * S
            })
        );
        assert_eq!(b.check(t0 + 30 * S), Ok(()));
    }

    #[test]
    fn the_hourly_cap_holds_over_any_hour_and_frees_as_logins_age_out() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        let mut b = LoginBudget::new(30 * S, 20);
        // A login every 30 s, as fast as the interval lets it.
        let mut now = t0;
        let mut started = 0;
        for _ in 0..200 {
            if b.check(now).is_ok() {
                b.record(now);
                started += 1;
            }
            now += 30 * S;
        }
        // 200 × 30 s = 100 min: at most 20 in the first hour, then one per
        // freed slot.
        assert!(started <= 40, "{started}");
        // Whatever the timing, no hour holds more than 20.
        let mut b = LoginBudget::new(S, 20);
        let mut log = Vec::new();
        let mut now = t0;
        for i in 0..10_000u64 {
            if b.check(now).is_ok() {
                b.record(now);
                log.push(now);
            }
            now += Duration::from_millis(250 + (i * 7919) % 1000);
        }
        for (i, &start) in log.iter().enumerate() {
            let in_hour = log[i..].iter().take_while(|&&t| t < start + HOUR).count();
            assert!(in_hour <= 20, "{in_hour} logins within an hour");
        }
    }

    #[test]
    fn the_cap_names_when_it_frees() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        let mut b = LoginBudget::new(S, 3);
        for i in 0..3 {
            b.record(t0 + i * 10 * S);
        }
        assert_eq!(
            b.check(t0 + 60 * S),
            Err(Refusal::HourlyCap {
                until: t0 + HOUR,
                cap: 3
            })
        );
        assert_eq!(b.check(t0 + HOUR), Ok(()));
        assert_eq!(b.used(t0 + HOUR), 2);
    }

    #[test]
    fn operator_logins_count_against_the_automatic_ones() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time");
        let mut b = LoginBudget::new(10 * S, 2);
        b.record(t0);
        b.record(t0 + S);
        assert!(matches!(
            b.check(t0 + 20 * S),
            Err(Refusal::HourlyCap { .. })
        ));
    }
}
