//! ICICI Breeze behind the [`Broker`] interface: a session starts only from
//! a person's browser login (the `API_Session` it brings back), and every
//! call is signed with the app secret.

use std::time::Duration;

use brokerd_core::SharedClock;
use chrono::{DateTime, Utc};

use super::{BreezeClient, BreezeConfig, ReportClass};
use crate::brokers::broker::{Broker, SessionClient, needs_a_person};
use crate::brokers::reminder::Reminder;
use crate::brokers::{Api, BrokerError, Material, NewSession, Report};
use crate::secret::Secret;

/// One Breeze account's settings.
#[derive(Clone, Debug)]
pub struct BreezeConnector {
    /// The account's Breeze settings (secrets resolved).
    cfg: BreezeConfig,
    /// HTTP timeout of one broker call.
    timeout: Duration,
    /// The daemon's clock (expiry, cut-off, the checks' timestamps).
    clock: SharedClock,
}

impl BreezeConnector {
    /// The account's one (interactive) session, its times read from `clock`
    /// (the daemon's).
    pub fn plan(cfg: &BreezeConfig, timeout: Duration, clock: SharedClock) -> Vec<(Api, Self)> {
        vec![(
            Api::Interactive,
            Self {
                cfg: cfg.clone(),
                timeout,
                clock,
            },
        )]
    }

    fn client(&self) -> Result<BreezeClient, BrokerError> {
        BreezeClient::new(&self.cfg, self.timeout, std::sync::Arc::clone(&self.clock))
    }
}

impl Broker for BreezeConnector {
    type Client = BreezeClient;

    async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, BreezeClient), BrokerError> {
        let submitted = submission.ok_or_else(needs_a_person)?;
        let client = self.client()?;
        let session = client.exchange(submitted).await?;
        Ok((session, client))
    }

    fn rehydrate(&self, _material: &Material) -> Result<BreezeClient, BrokerError> {
        self.client()
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
            "breeze".into(),
            cfg.api_root.clone(),
            cfg.app_key.fingerprint(),
            cfg.secret_key.fingerprint(),
            cfg.user_id.clone().unwrap_or_default(),
        ]
    }

    /// Breeze does not end a session by a new login.
    fn new_login_ends_previous(&self) -> bool {
        false
    }

    /// No per-account state.
    fn keeping_state_of(self, _old: &Self) -> Self {
        self
    }

    /// No one-time codes: an earlier login constrains nothing.
    fn note_previous_login(&self, _at: DateTime<Utc>) {}

    fn classify_report(&self, status: Option<u16>, reason: &str) -> Report {
        match super::classify_report(status, reason) {
            ReportClass::Dead(m) => Report::DeadSession(m),
            ReportClass::Recheck(m) => Report::Recheck(m),
            ReportClass::Transient(m) => Report::Transient(m),
        }
    }

    /// Breeze passes nothing back but the session key, so no `state`.
    fn login_url(&self, _state: &str) -> Option<String> {
        Some(super::login_url(&self.cfg))
    }

    fn reminder(&self) -> Option<Reminder> {
        Some(self.cfg.reminder.clone())
    }

    fn sign(
        &self,
        material: &Material,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<(&'static str, String)>, String> {
        Ok(super::sign(
            self.cfg.app_key.expose(),
            self.cfg.secret_key.expose(),
            material.token.expose(),
            body,
            now,
        ))
    }
}

impl SessionClient for BreezeClient {
    async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        BreezeClient::validate(self, material).await
    }

    async fn check_secret(&self, material: &Material) -> Result<(), BrokerError> {
        BreezeClient::check_secret(self, material).await
    }

    /// Breeze has no logout endpoint: forgetting the tokens is all its own
    /// SDKs do too.
    async fn logout(&self, _material: &Material) -> Result<(), BrokerError> {
        Ok(())
    }
}
