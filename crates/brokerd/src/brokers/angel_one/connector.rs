//! Angel One behind the [`Broker`] interface. The account's TOTP gate
//! ([`AngelShared`]) outlives any one connector: a reload keeps it, so a
//! window used before the reload is never used again. A proactive refresh
//! renews with the refresh token the session keeps privately, and logs in
//! only when Angel refuses the renewal.

use std::sync::Arc;
use std::time::Duration;

use brokerd_core::SharedClock;
use chrono::{DateTime, Utc};

use super::config::DEFAULT_PUBLIC_IP;
use super::session::REFRESH_TOKEN;
use super::{AngelOneClient, AngelOneConfig, AngelSession, AngelShared};
use crate::brokers::broker::{Broker, SessionClient, nothing_to_submit};
use crate::brokers::totp_gate::WindowLedger;
use crate::brokers::{Api, BrokerError, Material, NewSession, Report};
use crate::secret::Secret;

/// One Angel One account's settings and its shared TOTP state.
#[derive(Clone, Debug)]
pub struct AngelConnector {
    /// The account's settings (secrets resolved).
    cfg: AngelOneConfig,
    /// TOTP windows used, shared by all logins of the account.
    shared: Arc<AngelShared>,
    /// HTTP timeout of one broker call.
    timeout: Duration,
}

impl AngelConnector {
    /// The account's one (interactive) session; used TOTP windows are
    /// recorded through `ledger` before each code is sent, and read from
    /// `clock` (the daemon's).
    pub fn plan(
        cfg: &AngelOneConfig,
        timeout: Duration,
        ledger: Arc<dyn WindowLedger>,
        clock: SharedClock,
    ) -> Vec<(Api, Self)> {
        vec![(
            Api::Interactive,
            Self {
                cfg: cfg.clone(),
                shared: Arc::new(AngelShared::with_clock(ledger, clock)),
                timeout,
            },
        )]
    }
}

fn session(s: AngelSession) -> NewSession {
    s.session
}

impl Broker for AngelConnector {
    type Client = AngelOneClient;

    async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, AngelOneClient), BrokerError> {
        if submission.is_some() {
            return Err(nothing_to_submit());
        }
        let client = AngelOneClient::new(&self.cfg, self.timeout)?;
        let got = client.login(&self.shared).await?;
        Ok((session(got), client))
    }

    /// `generateTokens` with the refresh token `current` keeps, a login
    /// when it has none or Angel refuses it; a brand-new client either way.
    async fn refresh(
        &self,
        current: &Material,
    ) -> Result<(NewSession, AngelOneClient), BrokerError> {
        let client = AngelOneClient::new(&self.cfg, self.timeout)?;
        let renewable = current.private.get(REFRESH_TOKEN).map(|r| (current, r));
        let got = client.refresh(&self.shared, renewable).await?;
        Ok((session(got), client))
    }

    fn rehydrate(&self, _material: &Material) -> Result<AngelOneClient, BrokerError> {
        AngelOneClient::new(&self.cfg, self.timeout)
    }

    fn same_settings(&self, other: &Self) -> bool {
        self.cfg == other.cfg && self.timeout == other.timeout
    }

    fn paced_root(&self) -> &str {
        &self.cfg.api_root
    }

    fn login_identity(&self) -> Vec<String> {
        let cfg = &self.cfg;
        vec![
            "angel_one".into(),
            cfg.api_root.clone(),
            cfg.api_key.fingerprint(),
            cfg.client_code.clone(),
            cfg.pin.fingerprint(),
            cfg.totp_seed.fingerprint(),
        ]
    }

    /// Undocumented, so the operator says (`login_ends_previous`); the
    /// conflict window bounds the harm of guessing wrong.
    fn new_login_ends_previous(&self) -> bool {
        self.cfg.login_ends_previous
    }

    /// The used TOTP windows must survive a reload (invariant 8).
    fn keeping_state_of(self, old: &Self) -> Self {
        Self {
            shared: Arc::clone(&old.shared),
            ..self
        }
    }

    /// Which TOTP window was used last, even by a login that crashed.
    async fn startup_check(&self) {
        if let Err(e) = self.shared.totp.load().await {
            // The next login tries again and sends nothing until it can.
            tracing::error!(client_code = %self.cfg.client_code, error = %e,
                            "cannot seed the TOTP gate");
        }
    }

    /// That login's TOTP window must not be reused (invariant 10).
    fn note_previous_login(&self, at: DateTime<Utc>) {
        self.shared
            .totp
            .used_before(at.timestamp_millis().max(0) as u64)
    }

    fn warnings(&self) -> Vec<String> {
        if self.cfg.public_ip == DEFAULT_PUBLIC_IP {
            vec![
                "public_ip is the Python SDK's placeholder: set it to the static IP registered \
                 for the SmartAPI app (Angel accepts orders only from that IP)"
                    .into(),
            ]
        } else {
            Vec::new()
        }
    }

    fn classify_report(&self, status: Option<u16>, reason: &str) -> Report {
        super::classify_report(status, reason)
    }
}

impl SessionClient for AngelOneClient {
    async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        AngelOneClient::validate(self, material).await
    }

    async fn check_secret(&self, _material: &Material) -> Result<(), BrokerError> {
        Ok(())
    }

    /// Angel's logout ends the API session (the docs advise one daily).
    async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        AngelOneClient::logout(self, material).await
    }
}
