//! Zerodha Kite behind the [`Broker`] interface: a session starts only from
//! a person's browser login (the `request_token` it brings back).

use std::time::Duration;

use brokerd_core::SharedClock;
use chrono::{DateTime, Utc};

use super::{ZerodhaClient, ZerodhaConfig};
use crate::brokers::broker::{Broker, SessionClient, needs_a_person};
use crate::brokers::reminder::Reminder;
use crate::brokers::{Api, BrokerError, Material, NewSession, Report};
use crate::secret::Secret;

/// One Kite account's settings.
#[derive(Clone, Debug)]
pub struct ZerodhaConnector {
    /// The account's Kite settings (secrets resolved).
    cfg: ZerodhaConfig,
    /// HTTP timeout of one broker call.
    timeout: Duration,
    /// The daemon's clock (a session's `obtained_at` and cut-off).
    clock: SharedClock,
}

impl ZerodhaConnector {
    /// The account's one (interactive) session, its times read from `clock`
    /// (the daemon's).
    pub fn plan(cfg: &ZerodhaConfig, timeout: Duration, clock: SharedClock) -> Vec<(Api, Self)> {
        vec![(
            Api::Interactive,
            Self {
                cfg: cfg.clone(),
                timeout,
                clock,
            },
        )]
    }

    fn client(&self) -> Result<ZerodhaClient, BrokerError> {
        ZerodhaClient::new(&self.cfg, self.timeout, std::sync::Arc::clone(&self.clock))
    }
}

impl Broker for ZerodhaConnector {
    type Client = ZerodhaClient;

    async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, ZerodhaClient), BrokerError> {
        let submitted = submission.ok_or_else(needs_a_person)?;
        let client = self.client()?;
        let session = client.exchange(submitted).await?;
        Ok((session, client))
    }

    fn rehydrate(&self, _material: &Material) -> Result<ZerodhaClient, BrokerError> {
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
            "zerodha".into(),
            cfg.api_root.clone(),
            cfg.api_key.fingerprint(),
            cfg.api_secret.fingerprint(),
            cfg.user_id.clone().unwrap_or_default(),
        ]
    }

    /// Kite does not end a session by a new login.
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
        super::classify_report(status, reason)
    }

    fn login_url(&self, state: &str) -> Option<String> {
        Some(super::login_url(&self.cfg, state))
    }

    fn reminder(&self) -> Option<Reminder> {
        Some(self.cfg.reminder.clone())
    }
}

impl SessionClient for ZerodhaClient {
    async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        ZerodhaClient::validate(self, material).await
    }

    async fn check_secret(&self, _material: &Material) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        ZerodhaClient::logout(self, material).await
    }
}
