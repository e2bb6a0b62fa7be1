//! Kotak Neo behind the [`Broker`] interface. The account's TOTP gate and
//! clock skew ([`KotakShared`]) outlive any one connector: a reload keeps
//! them, so a window used before the reload is never used again.

use std::sync::Arc;
use std::time::Duration;

use brokerd_core::SharedClock;
use chrono::{DateTime, Utc};

use super::errors::CallClass;
use super::{KotakClient, KotakNeoConfig, KotakShared};
use crate::brokers::broker::{Broker, SessionClient, nothing_to_submit};
use crate::brokers::totp_gate::WindowLedger;
use crate::brokers::{Api, BrokerError, Material, NewSession, Report};
use crate::secret::Secret;

/// One Kotak Neo account's settings and its shared TOTP state.
#[derive(Clone, Debug)]
pub struct KotakConnector {
    /// The account's Kotak settings (secrets resolved).
    cfg: KotakNeoConfig,
    /// TOTP windows used and clock skew, shared by all logins of the account.
    shared: Arc<KotakShared>,
    /// HTTP timeout of one broker call.
    timeout: Duration,
}

impl KotakConnector {
    /// The account's one (interactive) session; used TOTP windows are
    /// recorded through `ledger` before each code is sent, and TOTP windows
    /// are read from `clock`.
    pub fn plan(
        cfg: &KotakNeoConfig,
        timeout: Duration,
        ledger: Arc<dyn WindowLedger>,
        clock: SharedClock,
    ) -> Vec<(Api, Self)> {
        vec![(
            Api::Interactive,
            Self {
                cfg: cfg.clone(),
                shared: Arc::new(KotakShared::with_clock(ledger, clock)),
                timeout,
            },
        )]
    }
}

impl Broker for KotakConnector {
    type Client = KotakClient;

    async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, KotakClient), BrokerError> {
        if submission.is_some() {
            return Err(nothing_to_submit());
        }
        let client = KotakClient::new(&self.cfg, self.timeout)?;
        let session = client.login(&self.shared).await?;
        Ok((session, client))
    }

    fn rehydrate(&self, _material: &Material) -> Result<KotakClient, BrokerError> {
        KotakClient::new(&self.cfg, self.timeout)
    }

    fn same_settings(&self, other: &Self) -> bool {
        self.cfg == other.cfg && self.timeout == other.timeout
    }

    fn paced_root(&self) -> &str {
        &self.cfg.login_host
    }

    fn login_identity(&self) -> Vec<String> {
        let cfg = &self.cfg;
        vec![
            "kotak_neo".into(),
            cfg.login_host.clone(),
            cfg.access_token.fingerprint(),
            cfg.mobile.clone(),
            cfg.ucc.clone(),
            cfg.mpin.fingerprint(),
            cfg.totp_seed.fingerprint(),
            cfg.neo_fin_key.clone(),
        ]
    }

    /// Kotak allows several sessions (whether a second login ends the first
    /// is undocumented; the conflict window bounds the harm of guessing
    /// wrong: only sessions younger than it count).
    fn new_login_ends_previous(&self) -> bool {
        false
    }

    /// The used TOTP windows must survive a reload (invariant 8).
    fn keeping_state_of(self, old: &Self) -> Self {
        Self {
            shared: Arc::clone(&old.shared),
            ..self
        }
    }

    /// The clock against the broker's, and which TOTP window was used
    /// last, even by a login that crashed.
    async fn startup_check(&self) {
        if let Err(e) = self.shared.totp.load().await {
            // The next login tries again and sends nothing until it can.
            tracing::error!(ucc = %self.cfg.ucc, error = %e, "cannot seed the TOTP gate");
        }
        if let Ok(client) = KotakClient::new(&self.cfg, self.timeout) {
            client.check_clock(&self.shared).await;
        }
    }

    /// The clock check asks Kotak for its `Date`.
    fn startup_check_calls_broker(&self) -> bool {
        true
    }

    /// That login's TOTP window must not be reused (invariant 10).
    fn note_previous_login(&self, at: DateTime<Utc>) {
        self.shared
            .totp
            .used_before(at.timestamp_millis().max(0) as u64)
    }

    fn warnings(&self) -> Vec<String> {
        match *self.shared.skew_secs.lock() {
            Some(skew) if skew.unsigned_abs() > self.cfg.clock_skew_warning.as_secs() => {
                vec![format!(
                    "the local clock differs from Kotak's by {skew}s: TOTP logins may be rejected; enable NTP (timedatectl set-ntp true)"
                )]
            }
            Some(_) | None => Vec::new(),
        }
    }

    fn classify_report(&self, status: Option<u16>, reason: &str) -> Report {
        match super::classify_report(status.unwrap_or(0), reason) {
            (CallClass::IpNotAllowed, m) => Report::IpNotAllowed(m),
            (CallClass::SessionIpMismatch, m) => Report::SessionIpMismatch(m),
            (CallClass::Transient, m) => Report::Transient(m),
            // Unrecognised answers count as dead: one fenced re-login.
            (CallClass::DeadSession | CallClass::Other, m) => Report::DeadSession(m),
        }
    }
}

impl SessionClient for KotakClient {
    async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        KotakClient::validate(self, material).await
    }

    async fn check_secret(&self, _material: &Material) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Kotak has no server-side logout: forgetting the tokens is all its
    /// own SDK does too.
    async fn logout(&self, _material: &Material) -> Result<(), BrokerError> {
        Ok(())
    }
}
