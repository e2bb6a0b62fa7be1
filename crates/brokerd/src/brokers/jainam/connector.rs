//! Jainam (XTS) behind the [`Broker`] interface: one connector per session
//! (interactive, market data), each seeing only its own app key pair.

use std::time::Duration;

use brokerd_core::SharedClock;
use chrono::{DateTime, Utc};

use super::{JainamClient, JainamConfig};
use crate::brokers::broker::{Broker, SessionClient, nothing_to_submit};
use crate::brokers::{Api, BrokerError, Material, NewSession, Report};
use crate::secret::Secret;

/// One Jainam session's settings.
#[derive(Clone, Debug)]
pub struct JainamConnector {
    /// The account's Jainam settings (secrets resolved), with the other
    /// session's key pair removed.
    cfg: JainamConfig,
    /// Which of the two sessions.
    api: Api,
    /// HTTP timeout of one broker call.
    timeout: Duration,
    /// The daemon's clock (a session's `obtained_at` and fallback expiry).
    clock: SharedClock,
}

impl JainamConnector {
    /// One connector per configured key pair of the account, its times read
    /// from `clock` (the daemon's).
    pub fn plan(cfg: &JainamConfig, timeout: Duration, clock: SharedClock) -> Vec<(Api, Self)> {
        let mut out = Vec::new();
        for (api, present) in [
            (Api::Interactive, cfg.interactive.is_some()),
            (Api::Market, cfg.market.is_some()),
        ] {
            if present {
                out.push((
                    api,
                    Self {
                        cfg: view(cfg, api),
                        api,
                        timeout,
                        clock: std::sync::Arc::clone(&clock),
                    },
                ));
            }
        }
        out
    }
}

/// The part of a Jainam account's settings one session uses: the other
/// session's keys are none of its business (a change to them must not
/// count as a change to this session).
fn view(cfg: &JainamConfig, api: Api) -> JainamConfig {
    let mut view = cfg.clone();
    match api {
        Api::Interactive => view.market = None,
        Api::Market => view.interactive = None,
    }
    view
}

impl Broker for JainamConnector {
    type Client = JainamClient;

    async fn login(
        &self,
        submission: Option<&Secret>,
    ) -> Result<(NewSession, JainamClient), BrokerError> {
        if submission.is_some() {
            return Err(nothing_to_submit());
        }
        let clock = std::sync::Arc::clone(&self.clock);
        let mut client = JainamClient::new(&self.cfg, self.api, self.timeout, clock)?;
        let session = client.login().await?;
        Ok((session, client))
    }

    fn rehydrate(&self, material: &Material) -> Result<JainamClient, BrokerError> {
        let clock = std::sync::Arc::clone(&self.clock);
        JainamClient::for_stored(&self.cfg, self.api, self.timeout, clock, material)
    }

    fn same_settings(&self, other: &Self) -> bool {
        self.api == other.api && self.timeout == other.timeout && self.cfg == other.cfg
    }

    fn paced_root(&self) -> &str {
        &self.cfg.root
    }

    fn login_identity(&self) -> Vec<String> {
        let pair = |p: &Option<super::AppKeyPair>| {
            p.as_ref().map_or_else(String::new, |p| {
                format!("{}/{}", p.app_key.fingerprint(), p.secret_key.fingerprint())
            })
        };
        let v = &self.cfg;
        vec![
            "jainam".into(),
            v.root.clone(),
            v.market_prefix.clone(),
            v.source.clone(),
            pair(&v.interactive),
            pair(&v.market),
            v.client_id.clone().unwrap_or_default(),
        ]
    }

    /// XTS keeps one live session per app key.
    fn new_login_ends_previous(&self) -> bool {
        true
    }

    /// No per-account state.
    fn keeping_state_of(self, _old: &Self) -> Self {
        self
    }

    /// No one-time codes: an earlier login constrains nothing.
    fn note_previous_login(&self, _at: DateTime<Utc>) {}

    /// XTS has one dead-session answer and the client saw it.
    fn classify_report(&self, _status: Option<u16>, reason: &str) -> Report {
        Report::DeadSession(reason.to_string())
    }

    fn app_expiry_warning(&self) -> Option<Duration> {
        Some(self.cfg.app_expiry_warning)
    }
}

impl SessionClient for JainamClient {
    async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        JainamClient::validate(self, &material.token).await
    }

    async fn check_secret(&self, _material: &Material) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        JainamClient::logout(self, &material.token).await
    }
}
