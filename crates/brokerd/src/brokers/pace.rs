//! How fast brokerd may call one broker host's login and validation
//! endpoints, and each broker's default from its facts file
//! (`shared/brokers/<broker>.md`, "Limits"). The limiter that enforces it
//! is the session layer's (`session/pacing/`): brokers hold no state.

use super::BrokerId;

/// Logins and validations in flight at once, and started per second, at one
/// broker host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Broker calls (a login, a validation) in flight at once.
    pub concurrency: usize,
    /// Broker calls started per second, on average (a burst of
    /// `concurrency` is allowed from rest).
    pub per_second: f64,
}

// Configs are compared (a reload tells `[daemon]` changes apart); a pace's
// rate is finite wherever it comes from (the config reader refuses NaN), so
// equality is an equivalence.
impl Eq for Pace {}

impl Pace {
    /// `concurrency` calls in flight, `per_second` started per second.
    pub const fn new(concurrency: usize, per_second: f64) -> Self {
        Self {
            concurrency,
            per_second,
        }
    }

    /// The default for a broker, below what its facts file says the broker
    /// tolerates, so that the account's own programs keep some of the
    /// allowance.
    pub fn default_for(broker: BrokerId) -> Pace {
        match broker {
            // Undocumented; XTS servers are run per broker and dealer
            // desks log in many accounts from one address.
            BrokerId::Jainam => Pace::new(8, 10.0),
            // "10 requests/second across APIs"; a login is two requests
            // (TOTP, then MPIN).
            BrokerId::KotakNeo => Pace::new(2, 3.0),
            // Session endpoints share 10 requests/second; 429 beyond.
            BrokerId::Zerodha => Pace::new(4, 5.0),
            // 100 calls a minute per app.
            BrokerId::Breeze => Pace::new(2, 1.0),
            // loginByPassword and generateTokens: 1/s per user account;
            // the host's limit is undocumented.
            BrokerId::AngelOne => Pace::new(4, 5.0),
        }
    }

    /// Why this pace cannot work, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.concurrency == 0 || self.concurrency > 1024 {
            return Some(format!(
                "concurrency {} is out of range; use 1 to 1024",
                self.concurrency
            ));
        }
        if !self.per_second.is_finite() || !(0.01..=1000.0).contains(&self.per_second) {
            return Some(format!(
                "per_second {} is out of range; use 0.01 to 1000",
                self.per_second
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_usable() {
        for name in ["jainam", "kotak_neo", "zerodha", "breeze", "angel_one"] {
            let broker = BrokerId::parse(name).unwrap();
            assert_eq!(Pace::default_for(broker).problem(), None, "{broker}");
        }
    }

    #[test]
    fn nonsense_is_named() {
        let zero = Pace::new(0, 1.0);
        assert!(zero.problem().unwrap().contains("concurrency 0"));
        let nan = Pace {
            concurrency: 1,
            per_second: f64::NAN,
        };
        assert!(nan.problem().unwrap().contains("per_second"));
    }
}
