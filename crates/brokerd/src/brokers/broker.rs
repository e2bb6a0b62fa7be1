//! What every broker module provides. [`super::Connector`] and
//! [`super::BrokerClient`] hold one of these per broker and dispatch to it,
//! one line per broker and method: adding a broker means implementing these
//! two traits in its folder and adding one arm to each dispatch (the
//! compiler lists them, since no dispatch has a wildcard arm).
//!
//! Capabilities only some brokers have (a login page, signing, warnings)
//! default to "none". The methods about per-account state
//! (`keeping_state_of`, `note_previous_login`) have no default on purpose: a broker with a TOTP
//! ledger that inherited "nothing to keep" would reuse a window after a
//! reload or a restart (invariants 8 and 10), and would still compile.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::reminder::Reminder;
use super::{BrokerError, Material, NewSession, Report};
use crate::secret::Secret;

/// How to log one slot in: one broker's settings for one (account, api).
pub(crate) trait Broker: Clone + fmt::Debug + Send + Sync + Sized {
    /// The client bound to one session.
    type Client: SessionClient;

    /// Logs in with a brand-new client (invariant 2). `submission` is what a
    /// person brought back from the browser login (interactive brokers
    /// only; the others refuse one, and interactive ones refuse `None`).
    async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, Self::Client), BrokerError>;

    /// A new session for an account whose session `current` is still
    /// alive (a proactive refresh), with a brand-new client. Brokers that
    /// can renew a session do it here; the others log in again.
    async fn refresh(&self, current: &Material) -> Result<(NewSession, Self::Client), BrokerError> {
        let _ = current;
        self.login(None).await
    }

    /// A fresh client around a session read back from the store.
    fn rehydrate(&self, material: &Material) -> Result<Self::Client, BrokerError>;

    /// Whether two connectors carry the same settings (state aside).
    fn same_settings(&self, other: &Self) -> bool;

    /// What the broker checks at login, in a fixed order, secrets only as
    /// their fingerprints; the broker's name first.
    fn login_identity(&self) -> Vec<String>;

    /// The URL root of the API the daemon's login (or token exchange) and
    /// validation calls go to: its host is what the daemon paces
    /// (`session/pacing`), one queue per broker host. Not a browser login
    /// site: a person's browser is not paced.
    fn paced_root(&self) -> &str;

    /// Whether a new login ends the session it replaces at the broker.
    fn new_login_ends_previous(&self) -> bool;

    /// This connector with the per-account state of `old` (the same
    /// account's previous connector) carried over.
    fn keeping_state_of(self, old: &Self) -> Self;

    /// Checks worth doing at startup (none by default).
    async fn startup_check(&self) {}

    /// Whether `startup_check` calls the broker (then it waits for the
    /// host's turn like a login; a no-op check does not take one).
    fn startup_check_calls_broker(&self) -> bool {
        false
    }

    /// A login finished at `at` (a stored session found at startup).
    fn note_previous_login(&self, at: DateTime<Utc>);

    /// Operator warnings this broker knows of right now (none by default).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// What a client's report of a rejection means: `status` is the HTTP
    /// status it saw (when it says), `reason` the broker's body or message.
    fn classify_report(&self, status: Option<u16>, reason: &str) -> Report;

    /// Where a person logs in, for brokers that need one (`None` by default).
    fn login_url(&self, state: &str) -> Option<String> {
        let _ = state;
        None
    }

    /// The reminder settings of brokers that need a person every day
    /// (`None` by default).
    fn reminder(&self) -> Option<Reminder> {
        None
    }

    /// The checksum headers of one request body, for brokers that sign
    /// calls (the others refuse, by default).
    fn sign(
        &self,
        material: &Material,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let _ = (material, body, now);
        Err(does_not_sign())
    }

    /// The app key's expiry warning horizon, for brokers whose app keys
    /// expire (`None` by default).
    fn app_expiry_warning(&self) -> Option<Duration> {
        None
    }
}

/// The client bound to one session.
pub(crate) trait SessionClient: fmt::Debug + Send + Sync {
    /// Asks the broker whether the session's token is still alive.
    async fn validate(&self, material: &Material) -> Result<(), BrokerError>;

    /// Checks that the broker accepts the app secret (brokers that sign
    /// calls); the others have nothing to check.
    async fn check_secret(&self, material: &Material) -> Result<(), BrokerError>;

    /// Ends the session at the broker, where the broker has a logout.
    async fn logout(&self, material: &Material) -> Result<(), BrokerError>;
}

/// The refusal of a submission by a broker that logs in by itself.
pub(crate) fn nothing_to_submit() -> BrokerError {
    BrokerError::Config("this broker logs in by itself; nothing can be submitted".into())
}

/// The refusal of an unattended login by a broker that needs a person.
pub(crate) fn needs_a_person() -> BrokerError {
    BrokerError::Config("only a person's browser login can start a session of this broker".into())
}

/// The refusal of `sign` by a broker that does not sign calls.
fn does_not_sign() -> String {
    "only breeze signs requests; send this broker's headers as they are".into()
}
