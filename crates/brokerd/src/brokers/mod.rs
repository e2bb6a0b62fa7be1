//! The brokers: one module per broker behind one enum, pure HTTP and mapping.
//! Brokers never touch the store, the socket or global state.

pub mod angel_one;
pub mod breeze;
pub mod http;
pub mod jainam;
pub mod kotak_neo;
pub mod zerodha;

// The broker-neutral vocabulary lives in brokerd-core (shared with the
// simulators); re-exported so `crate::brokers::X` keeps naming it.
pub use brokerd_core::time::{ist, skew as clock};
pub use brokerd_core::{
    Api, BrokerError, BrokerId, Material, NewSession, Report, SessionKey, SessionMeta, jwt,
};

use chrono::{DateTime, Utc};

use crate::secret::Secret;

/// How to log one slot in: the broker's settings for one (account, api).
/// Cheap to clone; swapped as a whole on reload.
#[derive(Clone, Debug)]
pub enum Connector {
    /// Jainam XTS, interactive or market data.
    Jainam {
        /// The account's Jainam settings (secrets resolved).
        cfg: crate::config::JainamConfig,
        /// Which of the two sessions.
        api: Api,
        /// HTTP timeout of one broker call.
        timeout: std::time::Duration,
    },
    /// Kotak Neo Trade API.
    KotakNeo {
        /// The account's Kotak settings (secrets resolved).
        cfg: crate::config::KotakNeoConfig,
        /// TOTP windows used and clock skew, shared by all logins of the account.
        shared: std::sync::Arc<kotak_neo::KotakShared>,
        /// HTTP timeout of one broker call.
        timeout: std::time::Duration,
    },
    /// Zerodha Kite Connect (a person's browser login every day).
    Zerodha {
        /// The account's Kite settings (secrets resolved).
        cfg: crate::config::ZerodhaConfig,
        /// HTTP timeout of one broker call.
        timeout: std::time::Duration,
    },
    /// ICICI Breeze (a person's browser login every day).
    Breeze {
        /// The account's Breeze settings (secrets resolved).
        cfg: crate::config::BreezeConfig,
        /// HTTP timeout of one broker call.
        timeout: std::time::Duration,
    },
}

impl Connector {
    /// Logs in with a brand-new client and returns the session with the
    /// client that obtained it. `submission` is what a person brought back
    /// from the browser login (interactive brokers only).
    pub async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, BrokerClient), BrokerError> {
        if let Some(submitted) = submission {
            return match self {
                Self::Zerodha { cfg, timeout } => {
                    let client = zerodha::ZerodhaClient::new(cfg, *timeout)?;
                    let session = client.exchange(submitted).await?;
                    Ok((
                        session,
                        BrokerClient::new(BrokerClientKind::Zerodha(client)),
                    ))
                }
                Self::Breeze { cfg, timeout } => {
                    let client = breeze::BreezeClient::new(cfg, *timeout)?;
                    let session = client.exchange(submitted).await?;
                    Ok((session, BrokerClient::new(BrokerClientKind::Breeze(client))))
                }
                Self::Jainam { .. } | Self::KotakNeo { .. } => Err(BrokerError::Config(
                    "this broker logs in by itself; nothing can be submitted".into(),
                )),
            };
        }
        match self {
            Self::Zerodha { .. } | Self::Breeze { .. } => Err(BrokerError::Config(
                "only a person's browser login can start a session of this broker".into(),
            )),
            Self::Jainam { cfg, api, timeout } => {
                let mut client = jainam::JainamClient::new(cfg, *api, *timeout)?;
                let session = client.login().await?;
                Ok((session, BrokerClient::new(BrokerClientKind::Jainam(client))))
            }
            Self::KotakNeo {
                cfg,
                shared,
                timeout,
            } => {
                let client = kotak_neo::KotakClient::new(cfg, *timeout)?;
                let session = client.login(shared).await?;
                Ok((
                    session,
                    BrokerClient::new(BrokerClientKind::KotakNeo(client)),
                ))
            }
        }
    }

    /// A fresh client around a session read back from the store.
    pub fn rehydrate(&self, material: &Material) -> Result<BrokerClient, BrokerError> {
        match self {
            Self::Jainam { cfg, api, timeout } => {
                let client = jainam::JainamClient::for_stored(cfg, *api, *timeout, material)?;
                Ok(BrokerClient::new(BrokerClientKind::Jainam(client)))
            }
            Self::KotakNeo { cfg, timeout, .. } => {
                let client = kotak_neo::KotakClient::new(cfg, *timeout)?;
                Ok(BrokerClient::new(BrokerClientKind::KotakNeo(client)))
            }
            Self::Zerodha { cfg, timeout } => {
                let client = zerodha::ZerodhaClient::new(cfg, *timeout)?;
                Ok(BrokerClient::new(BrokerClientKind::Zerodha(client)))
            }
            Self::Breeze { cfg, timeout } => {
                let client = breeze::BreezeClient::new(cfg, *timeout)?;
                Ok(BrokerClient::new(BrokerClientKind::Breeze(client)))
            }
        }
    }

    /// Whether two connectors carry the same settings (state aside).
    pub fn same_settings(&self, other: &Connector) -> bool {
        match (self, other) {
            (
                Self::Jainam {
                    cfg: a,
                    api: x,
                    timeout: t,
                },
                Self::Jainam {
                    cfg: b,
                    api: y,
                    timeout: u,
                },
            ) => x == y && t == u && jainam_view(a, *x) == jainam_view(b, *y),
            (
                Self::KotakNeo {
                    cfg: a, timeout: t, ..
                },
                Self::KotakNeo {
                    cfg: b, timeout: u, ..
                },
            ) => a == b && t == u,
            (Self::Breeze { cfg: a, timeout: t }, Self::Breeze { cfg: b, timeout: u }) => {
                a == b && t == u
            }
            (Self::Zerodha { cfg: a, timeout: t }, Self::Zerodha { cfg: b, timeout: u }) => {
                a == b && t == u
            }
            // Different brokers. Listed, not `_`: a new broker must get its
            // own arm above (a missing one does not compile).
            (
                Self::Jainam { .. }
                | Self::KotakNeo { .. }
                | Self::Breeze { .. }
                | Self::Zerodha { .. },
                _,
            ) => false,
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
    /// program. XTS keeps one live session per app key. Kotak allows several
    /// sessions (whether a second login ends the first is undocumented; the
    /// conflict window bounds the harm of guessing wrong: only sessions
    /// younger than it count). Kite and Breeze do not end a session by a new
    /// login.
    pub fn new_login_ends_previous(&self) -> bool {
        match self {
            Self::Jainam { .. } => true,
            Self::KotakNeo { .. } | Self::Zerodha { .. } | Self::Breeze { .. } => false,
        }
    }

    /// One fingerprint of everything the broker checks at login (hosts,
    /// identities, secrets), so a lock-out can remember what was rejected
    /// without keeping a secret: equal fingerprints mean the same secrets.
    pub fn credentials_fingerprint(&self) -> String {
        crate::secret::fingerprint(&self.login_identity().join("\u{1f}"))
    }

    /// What the broker checks at login, in a fixed order, secrets only as
    /// their fingerprints.
    fn login_identity(&self) -> Vec<String> {
        let pair = |p: &Option<crate::config::AppKeyPair>| {
            p.as_ref().map_or_else(String::new, |p| {
                format!("{}/{}", p.app_key.fingerprint(), p.secret_key.fingerprint())
            })
        };
        match self {
            Self::Jainam { cfg, api, .. } => {
                let v = jainam_view(cfg, *api);
                vec![
                    "jainam".into(),
                    v.root,
                    v.market_prefix,
                    v.source,
                    pair(&v.interactive),
                    pair(&v.market),
                    v.client_id.unwrap_or_default(),
                ]
            }
            Self::KotakNeo { cfg, .. } => vec![
                "kotak_neo".into(),
                cfg.login_host.clone(),
                cfg.access_token.fingerprint(),
                cfg.mobile.clone(),
                cfg.ucc.clone(),
                cfg.mpin.fingerprint(),
                cfg.totp_seed.fingerprint(),
                cfg.neo_fin_key.clone(),
            ],
            Self::Zerodha { cfg, .. } => vec![
                "zerodha".into(),
                cfg.api_root.clone(),
                cfg.api_key.fingerprint(),
                cfg.api_secret.fingerprint(),
                cfg.user_id.clone().unwrap_or_default(),
            ],
            Self::Breeze { cfg, .. } => vec![
                "breeze".into(),
                cfg.api_root.clone(),
                cfg.app_key.fingerprint(),
                cfg.secret_key.fingerprint(),
                cfg.user_id.clone().unwrap_or_default(),
            ],
        }
    }

    /// This connector with the per-account state of `old` carried over
    /// (Kotak's used TOTP windows must survive a reload).
    pub fn keeping_state_of(self, old: &Connector) -> Connector {
        match (self, old) {
            (Self::KotakNeo { cfg, timeout, .. }, Self::KotakNeo { shared, .. }) => {
                Self::KotakNeo {
                    cfg,
                    shared: std::sync::Arc::clone(shared),
                    timeout,
                }
            }
            // Nothing else keeps per-account state across a reload. Listed,
            // not `_`: a new broker with state (a TOTP ledger) must decide.
            (
                new @ (Self::KotakNeo { .. }
                | Self::Jainam { .. }
                | Self::Zerodha { .. }
                | Self::Breeze { .. }),
                _,
            ) => new,
        }
    }

    /// Checks worth doing at startup (Kotak: the clock against the broker's,
    /// and which TOTP window was used last, even by a login that crashed).
    pub async fn startup_check(&self) {
        match self {
            Self::KotakNeo {
                cfg,
                shared,
                timeout,
            } => {
                if let Err(e) = shared.totp.load().await {
                    // The next login tries again and sends nothing until it can.
                    tracing::error!(ucc = %cfg.ucc, error = %e, "cannot seed the TOTP gate");
                }
                if let Ok(client) = kotak_neo::KotakClient::new(cfg, *timeout) {
                    client.check_clock(shared).await;
                }
            }
            Self::Jainam { .. } | Self::Zerodha { .. } | Self::Breeze { .. } => {}
        }
    }

    /// Tells the connector a login finished at `at` (a stored session found
    /// at startup): Kotak must not reuse that login's TOTP window.
    pub fn note_previous_login(&self, at: DateTime<Utc>) {
        match self {
            Self::KotakNeo { shared, .. } => {
                shared.totp.used_before(at.timestamp_millis().max(0) as u64)
            }
            Self::Jainam { .. } | Self::Zerodha { .. } | Self::Breeze { .. } => {}
        }
    }

    /// Operator warnings this broker knows of right now.
    pub fn warnings(&self) -> Vec<String> {
        match self {
            Self::KotakNeo { cfg, shared, .. } => match *shared.skew_secs.lock() {
                Some(skew) if skew.unsigned_abs() > cfg.clock_skew_warning.as_secs() => {
                    vec![format!(
                        "the local clock differs from Kotak's by {skew}s: TOTP logins may be rejected; enable NTP (timedatectl set-ntp true)"
                    )]
                }
                _ => Vec::new(),
            },
            Self::Jainam { .. } | Self::Zerodha { .. } | Self::Breeze { .. } => Vec::new(),
        }
    }

    /// What a client's report of a rejection means: `status` is the HTTP
    /// status it saw (when it says), `reason` the broker's body or message.
    pub fn classify_report(&self, status: Option<u16>, reason: &str) -> Report {
        match self {
            // XTS has one dead-session answer and the client saw it.
            Self::Jainam { .. } => Report::DeadSession(reason.to_string()),
            Self::KotakNeo { .. } => {
                match kotak_neo::classify_report(status.unwrap_or(0), reason) {
                    (kotak_neo::errors::CallClass::IpNotAllowed, m) => Report::IpNotAllowed(m),
                    (kotak_neo::errors::CallClass::SessionIpMismatch, m) => {
                        Report::SessionIpMismatch(m)
                    }
                    (kotak_neo::errors::CallClass::Transient, m) => Report::Transient(m),
                    (_, m) => Report::DeadSession(m),
                }
            }
            Self::Zerodha { .. } => zerodha::classify_report(status, reason),
            Self::Breeze { .. } => match breeze::classify_report(status, reason) {
                breeze::ReportClass::Dead(m) => Report::DeadSession(m),
                breeze::ReportClass::Recheck(m) => Report::Recheck(m),
                breeze::ReportClass::Transient(m) => Report::Transient(m),
            },
        }
    }

    /// Where a person logs in, for brokers that need one (`state` rides
    /// along where the broker passes it back).
    pub fn login_url(&self, state: &str) -> Option<String> {
        match self {
            Self::Jainam { .. } | Self::KotakNeo { .. } => None,
            Self::Zerodha { cfg, .. } => Some(zerodha::login_url(cfg, state)),
            // Breeze passes nothing back but the session key.
            Self::Breeze { cfg, .. } => Some(breeze::login_url(cfg)),
        }
    }

    /// The reminder settings of brokers that need a person every day.
    pub fn reminder(&self) -> Option<crate::config::Reminder> {
        match self {
            Self::Jainam { .. } | Self::KotakNeo { .. } => None,
            Self::Zerodha { cfg, .. } => Some(cfg.reminder.clone()),
            Self::Breeze { cfg, .. } => Some(cfg.reminder.clone()),
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
            Self::Breeze { cfg, .. } => Ok(breeze::sign(
                cfg.app_key.expose(),
                cfg.secret_key.expose(),
                material.token.expose(),
                body,
                now,
            )),
            Self::Jainam { .. } | Self::KotakNeo { .. } | Self::Zerodha { .. } => {
                Err("only breeze signs requests; send this broker's headers as they are".into())
            }
        }
    }

    /// The app key's expiry warning horizon, for brokers whose app keys expire.
    pub fn app_expiry_warning(&self) -> Option<std::time::Duration> {
        match self {
            Self::Jainam { cfg, .. } => Some(cfg.app_expiry_warning),
            Self::KotakNeo { .. } | Self::Zerodha { .. } | Self::Breeze { .. } => None,
        }
    }
}

/// The part of a Jainam account's settings one session uses: the other
/// session's keys are none of its business.
fn jainam_view(cfg: &crate::config::JainamConfig, api: Api) -> crate::config::JainamConfig {
    let mut view = cfg.clone();
    match api {
        Api::Interactive => view.market = None,
        Api::Market => view.interactive = None,
    }
    view
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
            BrokerClientKind::Jainam(c) => c.validate(&material.token).await,
            BrokerClientKind::KotakNeo(c) => c.validate(material).await,
            BrokerClientKind::Zerodha(c) => c.validate(material).await,
            BrokerClientKind::Breeze(c) => c.validate(material).await,
        }
    }

    /// Checks that the broker accepts the app secret (Breeze: a signed
    /// call); brokers that do not sign calls have nothing to check.
    pub async fn check_secret(&self, material: &Material) -> Result<(), BrokerError> {
        match &self.kind {
            BrokerClientKind::Jainam(_)
            | BrokerClientKind::KotakNeo(_)
            | BrokerClientKind::Zerodha(_) => Ok(()),
            BrokerClientKind::Breeze(c) => c.check_secret(material).await,
        }
    }

    /// Ends the session at the broker.
    pub async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        match &self.kind {
            BrokerClientKind::Jainam(c) => c.logout(&material.token).await,
            BrokerClientKind::Zerodha(c) => c.logout(material).await,
            // Kotak has no server-side logout: forgetting the tokens is all
            // its own SDK does too.
            // Neither has a logout endpoint: forgetting the tokens is all
            // their own SDKs do too.
            BrokerClientKind::KotakNeo(_) | BrokerClientKind::Breeze(_) => Ok(()),
        }
    }
}
