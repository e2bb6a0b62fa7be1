//! The brokers: one module per broker behind one enum, pure HTTP and mapping.
//! Brokers never touch the store, the socket or global state.

pub mod angel_one;
pub mod binding;
pub mod breeze;
mod broker;
pub mod http;
pub mod jainam;
pub mod kotak_neo;
pub mod pace;
pub mod reminder;
pub mod totp_gate;
pub mod totp_seed;
pub mod url_rule;
pub mod zerodha;

// The broker-neutral vocabulary lives in brokerd-core (shared with the
// simulators); re-exported so `crate::brokers::X` keeps naming it.
pub use brokerd_core::time::{ist, skew as clock};
pub use brokerd_core::{
    Api, BrokerError, BrokerId, Material, NewSession, Report, SessionKey, SessionMeta, jwt,
};

use std::time::Duration;

use chrono::{DateTime, Utc};

use angel_one::AngelConnector;
use breeze::BreezeConnector;
use broker::{Broker, SessionClient};
use jainam::JainamConnector;
use kotak_neo::KotakConnector;
use reminder::Reminder;
use zerodha::ZerodhaConnector;

use crate::secret::Secret;

/// How to log one slot in: the broker's settings for one (account, api).
/// Cheap to clone; swapped as a whole on reload. Each method delegates to
/// the broker's own [`broker::Broker`] implementation, one arm per broker.
#[derive(Clone, Debug)]
pub enum Connector {
    /// Jainam XTS, interactive or market data.
    Jainam(JainamConnector),
    /// Kotak Neo Trade API.
    KotakNeo(KotakConnector),
    /// Zerodha Kite Connect (a person's browser login every day).
    Zerodha(ZerodhaConnector),
    /// ICICI Breeze (a person's browser login every day).
    Breeze(BreezeConnector),
    /// Angel One SmartAPI.
    AngelOne(AngelConnector),
}

/// A login's answer with its client wrapped.
fn logged_in<C>(
    result: Result<(NewSession, C), BrokerError>,
    kind: fn(C) -> BrokerClientKind,
) -> Result<(NewSession, BrokerClient), BrokerError> {
    result.map(|(session, client)| (session, BrokerClient::new(kind(client))))
}

impl Connector {
    /// Which broker this is.
    pub fn broker(&self) -> BrokerId {
        match self {
            Self::Jainam(_) => BrokerId::Jainam,
            Self::KotakNeo(_) => BrokerId::KotakNeo,
            Self::Zerodha(_) => BrokerId::Zerodha,
            Self::Breeze(_) => BrokerId::Breeze,
            Self::AngelOne(_) => BrokerId::AngelOne,
        }
    }

    /// Logs in with a brand-new client and returns the session with the
    /// client that obtained it. `submission` is what a person brought back
    /// from the browser login (interactive brokers only).
    pub async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, BrokerClient), BrokerError> {
        match self {
            Self::Jainam(c) => logged_in(c.login(submission).await, BrokerClientKind::Jainam),
            Self::KotakNeo(c) => logged_in(c.login(submission).await, BrokerClientKind::KotakNeo),
            Self::Zerodha(c) => logged_in(c.login(submission).await, BrokerClientKind::Zerodha),
            Self::Breeze(c) => logged_in(c.login(submission).await, BrokerClientKind::Breeze),
            Self::AngelOne(c) => logged_in(c.login(submission).await, BrokerClientKind::AngelOne),
        }
    }

    /// A new session for a slot whose session `current` is still alive (a
    /// proactive refresh), with a brand-new client: a renewal where the
    /// broker has one (Angel One's `generateTokens`), else a login.
    pub async fn refresh(
        &self,
        current: &Material,
    ) -> Result<(NewSession, BrokerClient), BrokerError> {
        match self {
            Self::Jainam(c) => logged_in(c.refresh(current).await, BrokerClientKind::Jainam),
            Self::KotakNeo(c) => logged_in(c.refresh(current).await, BrokerClientKind::KotakNeo),
            Self::Zerodha(c) => logged_in(c.refresh(current).await, BrokerClientKind::Zerodha),
            Self::Breeze(c) => logged_in(c.refresh(current).await, BrokerClientKind::Breeze),
            Self::AngelOne(c) => logged_in(c.refresh(current).await, BrokerClientKind::AngelOne),
        }
    }

    /// A fresh client around a session read back from the store.
    pub fn rehydrate(&self, material: &Material) -> Result<BrokerClient, BrokerError> {
        let kind = match self {
            Self::Jainam(c) => BrokerClientKind::Jainam(c.rehydrate(material)?),
            Self::KotakNeo(c) => BrokerClientKind::KotakNeo(c.rehydrate(material)?),
            Self::Zerodha(c) => BrokerClientKind::Zerodha(c.rehydrate(material)?),
            Self::Breeze(c) => BrokerClientKind::Breeze(c.rehydrate(material)?),
            Self::AngelOne(c) => BrokerClientKind::AngelOne(c.rehydrate(material)?),
        };
        Ok(BrokerClient::new(kind))
    }

    /// The URL root this connector logs in against (its host is paced).
    pub fn paced_root(&self) -> &str {
        match self {
            Self::Jainam(c) => c.paced_root(),
            Self::KotakNeo(c) => c.paced_root(),
            Self::Zerodha(c) => c.paced_root(),
            Self::Breeze(c) => c.paced_root(),
            Self::AngelOne(c) => c.paced_root(),
        }
    }

    /// Whether two connectors carry the same settings (state aside).
    /// Connectors of different brokers never do.
    pub fn same_settings(&self, other: &Connector) -> bool {
        match self {
            Self::Jainam(a) => matches!(other, Self::Jainam(b) if a.same_settings(b)),
            Self::KotakNeo(a) => matches!(other, Self::KotakNeo(b) if a.same_settings(b)),
            Self::Zerodha(a) => matches!(other, Self::Zerodha(b) if a.same_settings(b)),
            Self::Breeze(a) => matches!(other, Self::Breeze(b) if a.same_settings(b)),
            Self::AngelOne(a) => matches!(other, Self::AngelOne(b) if a.same_settings(b)),
        }
    }

    /// Whether what the broker checks at login (credentials, hosts) differs.
    /// Only such a change may lift a lock-out: timeouts or warning
    /// thresholds do not make rejected credentials right.
    pub fn credentials_changed(&self, other: &Connector) -> bool {
        self.login_identity() != other.login_identity()
    }

    /// Whether a new login ends the session it replaces at the broker, so
    /// that a report of the replaced generation says nothing about another
    /// program (each broker says why in its own answer).
    pub fn new_login_ends_previous(&self) -> bool {
        match self {
            Self::Jainam(c) => c.new_login_ends_previous(),
            Self::KotakNeo(c) => c.new_login_ends_previous(),
            Self::Zerodha(c) => c.new_login_ends_previous(),
            Self::Breeze(c) => c.new_login_ends_previous(),
            Self::AngelOne(c) => c.new_login_ends_previous(),
        }
    }

    /// One fingerprint of everything the broker checks at login (hosts,
    /// identities, secrets), so a lock-out can remember what was rejected
    /// without keeping a secret: equal fingerprints mean the same secrets.
    pub fn credentials_fingerprint(&self) -> String {
        crate::secret::fingerprint(&self.login_identity().join("\u{1f}"))
    }

    /// What the broker checks at login, in a fixed order, secrets only as
    /// their fingerprints (the broker's name first, so two brokers differ).
    fn login_identity(&self) -> Vec<String> {
        match self {
            Self::Jainam(c) => c.login_identity(),
            Self::KotakNeo(c) => c.login_identity(),
            Self::Zerodha(c) => c.login_identity(),
            Self::Breeze(c) => c.login_identity(),
            Self::AngelOne(c) => c.login_identity(),
        }
    }

    /// This connector with the per-account state of `old` carried over
    /// (Kotak's used TOTP windows must survive a reload). An `old` of
    /// another broker has no state this one could use.
    pub fn keeping_state_of(self, old: &Connector) -> Connector {
        match (self, old) {
            (Self::Jainam(new), Self::Jainam(old)) => Self::Jainam(new.keeping_state_of(old)),
            (Self::KotakNeo(new), Self::KotakNeo(old)) => Self::KotakNeo(new.keeping_state_of(old)),
            (Self::Zerodha(new), Self::Zerodha(old)) => Self::Zerodha(new.keeping_state_of(old)),
            (Self::Breeze(new), Self::Breeze(old)) => Self::Breeze(new.keeping_state_of(old)),
            (Self::AngelOne(new), Self::AngelOne(old)) => Self::AngelOne(new.keeping_state_of(old)),
            (
                new,
                Self::Jainam(_)
                | Self::KotakNeo(_)
                | Self::Zerodha(_)
                | Self::Breeze(_)
                | Self::AngelOne(_),
            ) => new,
        }
    }

    /// Checks worth doing at startup (Kotak: the clock against the broker's,
    /// and which TOTP window was used last, even by a login that crashed).
    pub async fn startup_check(&self) {
        match self {
            Self::Jainam(c) => c.startup_check().await,
            Self::KotakNeo(c) => c.startup_check().await,
            Self::Zerodha(c) => c.startup_check().await,
            Self::Breeze(c) => c.startup_check().await,
            Self::AngelOne(c) => c.startup_check().await,
        }
    }

    /// Whether [`Connector::startup_check`] calls the broker.
    pub fn startup_check_calls_broker(&self) -> bool {
        match self {
            Self::Jainam(c) => c.startup_check_calls_broker(),
            Self::KotakNeo(c) => c.startup_check_calls_broker(),
            Self::Zerodha(c) => c.startup_check_calls_broker(),
            Self::Breeze(c) => c.startup_check_calls_broker(),
            Self::AngelOne(c) => c.startup_check_calls_broker(),
        }
    }

    /// Tells the connector a login finished at `at` (a stored session found
    /// at startup): Kotak must not reuse that login's TOTP window.
    pub fn note_previous_login(&self, at: DateTime<Utc>) {
        match self {
            Self::Jainam(c) => c.note_previous_login(at),
            Self::KotakNeo(c) => c.note_previous_login(at),
            Self::Zerodha(c) => c.note_previous_login(at),
            Self::Breeze(c) => c.note_previous_login(at),
            Self::AngelOne(c) => c.note_previous_login(at),
        }
    }

    /// Operator warnings this broker knows of right now.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Self::Jainam(c) => c.warnings(),
            Self::KotakNeo(c) => c.warnings(),
            Self::Zerodha(c) => c.warnings(),
            Self::Breeze(c) => c.warnings(),
            Self::AngelOne(c) => c.warnings(),
        }
    }

    /// What a client's report of a rejection means: `status` is the HTTP
    /// status it saw (when it says), `reason` the broker's body or message.
    pub fn classify_report(&self, status: Option<u16>, reason: &str) -> Report {
        match self {
            Self::Jainam(c) => c.classify_report(status, reason),
            Self::KotakNeo(c) => c.classify_report(status, reason),
            Self::Zerodha(c) => c.classify_report(status, reason),
            Self::Breeze(c) => c.classify_report(status, reason),
            Self::AngelOne(c) => c.classify_report(status, reason),
        }
    }

    /// Where a person logs in, for brokers that need one (`state` rides
    /// along where the broker passes it back).
    pub fn login_url(&self, state: &str) -> Option<String> {
        match self {
            Self::Jainam(c) => c.login_url(state),
            Self::KotakNeo(c) => c.login_url(state),
            Self::Zerodha(c) => c.login_url(state),
            Self::Breeze(c) => c.login_url(state),
            Self::AngelOne(c) => c.login_url(state),
        }
    }

    /// The reminder settings of brokers that need a person every day.
    pub fn reminder(&self) -> Option<Reminder> {
        match self {
            Self::Jainam(c) => c.reminder(),
            Self::KotakNeo(c) => c.reminder(),
            Self::Zerodha(c) => c.reminder(),
            Self::Breeze(c) => c.reminder(),
            Self::AngelOne(c) => c.reminder(),
        }
    }

    /// The checksum headers of one request body (Breeze signs every call).
    pub fn sign(
        &self,
        material: &Material,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, String)>, String> {
        match self {
            Self::Jainam(c) => c.sign(material, body, now),
            Self::KotakNeo(c) => c.sign(material, body, now),
            Self::Zerodha(c) => c.sign(material, body, now),
            Self::Breeze(c) => c.sign(material, body, now),
            Self::AngelOne(c) => c.sign(material, body, now),
        }
    }

    /// The app key's expiry warning horizon, for brokers whose app keys expire.
    pub fn app_expiry_warning(&self) -> Option<Duration> {
        match self {
            Self::Jainam(c) => c.app_expiry_warning(),
            Self::KotakNeo(c) => c.app_expiry_warning(),
            Self::Zerodha(c) => c.app_expiry_warning(),
            Self::Breeze(c) => c.app_expiry_warning(),
            Self::AngelOne(c) => c.app_expiry_warning(),
        }
    }
}

static CLIENT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The client bound to one session. Each carries a process-unique serial
/// so tests (and logs) can show that no client outlives its session.
#[derive(Debug)]
pub struct BrokerClient {
    serial: u64,
    kind: BrokerClientKind,
}

#[derive(Debug)]
enum BrokerClientKind {
    Jainam(jainam::JainamClient),
    KotakNeo(kotak_neo::KotakClient),
    Zerodha(zerodha::ZerodhaClient),
    Breeze(breeze::BreezeClient),
    AngelOne(angel_one::AngelOneClient),
}

impl BrokerClient {
    fn new(kind: BrokerClientKind) -> Self {
        let serial = CLIENT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { serial, kind }
    }

    /// Process-unique number of this client.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Asks the broker whether the session's token is still alive.
    pub async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        match &self.kind {
            BrokerClientKind::Jainam(c) => SessionClient::validate(c, material).await,
            BrokerClientKind::KotakNeo(c) => SessionClient::validate(c, material).await,
            BrokerClientKind::Zerodha(c) => SessionClient::validate(c, material).await,
            BrokerClientKind::Breeze(c) => SessionClient::validate(c, material).await,
            BrokerClientKind::AngelOne(c) => SessionClient::validate(c, material).await,
        }
    }

    /// Checks that the broker accepts the app secret (Breeze: a signed
    /// call); brokers that do not sign calls have nothing to check.
    pub async fn check_secret(&self, material: &Material) -> Result<(), BrokerError> {
        match &self.kind {
            BrokerClientKind::Jainam(c) => SessionClient::check_secret(c, material).await,
            BrokerClientKind::KotakNeo(c) => SessionClient::check_secret(c, material).await,
            BrokerClientKind::Zerodha(c) => SessionClient::check_secret(c, material).await,
            BrokerClientKind::Breeze(c) => SessionClient::check_secret(c, material).await,
            BrokerClientKind::AngelOne(c) => SessionClient::check_secret(c, material).await,
        }
    }

    /// Ends the session at the broker, where the broker has a logout.
    pub async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        match &self.kind {
            BrokerClientKind::Jainam(c) => SessionClient::logout(c, material).await,
            BrokerClientKind::KotakNeo(c) => SessionClient::logout(c, material).await,
            BrokerClientKind::Zerodha(c) => SessionClient::logout(c, material).await,
            BrokerClientKind::Breeze(c) => SessionClient::logout(c, material).await,
            BrokerClientKind::AngelOne(c) => SessionClient::logout(c, material).await,
        }
    }
}
