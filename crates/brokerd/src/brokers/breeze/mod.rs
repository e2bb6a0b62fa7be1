//! ICICI Breeze: turning a browser login's `API_Session` into a session
//! (`customerdetails`), checking that session (again `customerdetails`) and
//! the app's secret key (a signed `funds`), and reading clients' reports.
//! Facts: `shared/brokers/breeze.md`. Pure HTTP and mapping.

mod errors;
mod sign;
#[cfg(test)]
mod tests;

mod config;
mod connector;
pub use config::{API_ROOT, BreezeConfig, LOGIN_ROOT};
pub use connector::BreezeConnector;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use brokerd_core::SharedClock;
use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::http;
use super::{BrokerError, Material, NewSession, SessionMeta, ist};

use crate::secret::{Secret, fingerprint};
use errors::Fault;

pub use errors::{ReportClass, classify_report};
pub use sign::{login_url, sign, timestamp};

/// One login's client: a brand-new HTTP client, the account's settings and
/// the daemon's clock.
pub struct BreezeClient {
    http: reqwest::Client,
    cfg: BreezeConfig,
    /// The daemon's clock: `obtained_at`, the cut-off and 24 h expiry, and
    /// the `X-Timestamp` of signed checks are read from it.
    clock: SharedClock,
}

impl fmt::Debug for BreezeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreezeClient")
            .field("api_root", &self.cfg.api_root)
            .field("app_key", &self.cfg.app_key.fingerprint())
            .field("user_id", &self.cfg.user_id)
            .finish_non_exhaustive()
    }
}

impl BreezeClient {
    /// A brand-new client (its own `reqwest::Client` via `http::new_client`),
    /// reading time from `clock`.
    pub fn new(
        cfg: &BreezeConfig,
        timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            http: http::new_client(timeout)?,
            cfg: cfg.clone(),
            clock,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.cfg.api_root.trim_end_matches('/'))
    }

    /// `GET customerdetails` with the JSON body Breeze wants, unsigned.
    async fn customerdetails(&self, session_key: &str) -> Result<http::Answer, BrokerError> {
        let body = json!({"SessionToken": session_key, "AppKey": self.cfg.app_key.expose()});
        let req = self
            .http
            .request(Method::GET, self.url("customerdetails"))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        http::send(req).await
    }

    /// `GET {api_root}/customerdetails` with JSON body
    /// `{"SessionToken":<api_session>,"AppKey":<app_key>}`, no checksum.
    pub async fn exchange(&self, api_session: &Secret) -> Result<NewSession, BrokerError> {
        let key = api_session.expose().trim();
        if key.is_empty() {
            return Err(BrokerError::BadSubmission(
                "the API_Session is empty; log in again and submit the key Breeze hands back"
                    .into(),
            ));
        }
        let answer = self.customerdetails(key).await?;
        http::check_login_url(
            &answer,
            "GET customerdetails",
            &API_ROOT,
            &self.cfg.api_root,
        )?;
        let success =
            errors::read("customerdetails", &answer).map_err(|f| self.exchange_error(f))?;
        let text = |k: &str| {
            success
                .get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default()
                .to_string()
        };
        let (user_id, token) = (text("idirect_userid"), text("session_token"));
        if user_id.is_empty() || token.is_empty() {
            return Err(BrokerError::Transient(
                "customerdetails answered success without idirect_userid or session_token".into(),
            ));
        }
        if let Some(want) = &self.cfg.user_id
            && !want.trim().eq_ignore_ascii_case(&user_id)
        {
            return Err(BrokerError::BadSubmission(format!(
                "the browser login was as ICICI user {user_id}, but this account is configured for user {}; log in again as {}",
                want.trim(),
                want.trim()
            )));
        }
        if session_key_of(&token).is_none() {
            warn!(token = %fingerprint(&token), "Breeze session_token is not base64 of user_id:session_key; validating it will fail");
        }
        let now = self.clock.now();
        let expires_at = expiry(&self.cfg, now);
        info!(user_id = %user_id, token = %fingerprint(&token), %expires_at, "Breeze session obtained");
        let mut headers = BTreeMap::new();
        headers.insert("X-AppKey".to_string(), self.cfg.app_key.clone());
        headers.insert("X-SessionToken".to_string(), Secret::new(token.clone()));
        // No copy of the session token here: it travels as `token` and
        // `X-SessionToken`, and fields hold no credential of their own.
        // The app key is public (it is in every login URL) and is what
        // BreezeConnect(api_key=...) takes.
        let mut fields = serde_json::Map::new();
        fields.insert(
            "api_root".into(),
            json!(self.cfg.api_root.trim_end_matches('/')),
        );
        fields.insert("api_key".into(), json!(self.cfg.app_key.expose()));
        fields.insert("user_id".into(), json!(user_id));
        Ok(NewSession {
            material: Material {
                token: Secret::new(token),
                headers,
                fields,
                private: Default::default(),
            },
            meta: SessionMeta {
                expires_at,
                obtained_at: now,
                user_id: Some(user_id),
                app_expiry: None,
            },
        })
    }

    fn exchange_error(&self, f: Fault) -> BrokerError {
        match f {
            Fault::InvalidSession(m) => BrokerError::BadSubmission(format!(
                "{m}: the API_Session was mistyped or does not come from this app's login; log in again"
            )),
            Fault::ResourceNotAvailable(m) => BrokerError::BadSubmission(format!(
                "{m} (the SDK's \"Session key is expired.\"): the API_Session expired, or the app's daily API quota is exhausted; log in again (after the quota resets)"
            )),
            Fault::PublicKey(m) => self.wrong_app_key(m),
            Fault::InvalidChecksum(m) | Fault::Transient(m) => BrokerError::Transient(m),
        }
    }

    fn wrong_app_key(&self, m: String) -> BrokerError {
        BrokerError::Rejected(format!(
            "{m}: Breeze does not know the app key (fingerprint {}); fix app_key in the config",
            self.cfg.app_key.fingerprint()
        ))
    }

    /// `customerdetails` again with the session key recovered from the
    /// session token (base64 of `user_id:session_key`): Ok if alive.
    pub async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        let Some(key) = session_key_of(material.token.expose()) else {
            return Err(BrokerError::Config(format!(
                "the Breeze session token (fingerprint {}) is not base64 of user_id:session_key, so customerdetails cannot check it",
                material.token.fingerprint()
            )));
        };
        let answer = self.customerdetails(&key).await?;
        match errors::read("customerdetails", &answer) {
            Ok(_) => Ok(()),
            Err(Fault::InvalidSession(m) | Fault::ResourceNotAvailable(m)) => Err(
                BrokerError::DeadSession(format!("{m}: the Breeze session has ended")),
            ),
            Err(Fault::PublicKey(m)) => Err(self.wrong_app_key(m)),
            Err(Fault::InvalidChecksum(m) | Fault::Transient(m)) => Err(BrokerError::Transient(m)),
        }
    }

    /// A signed `GET {api_root}/funds` with body `{}`: proves the secret key
    /// too. Ok, or `Rejected` when the signature is refused while the session
    /// is alive, `DeadSession`/`Transient` otherwise.
    pub async fn check_secret(&self, material: &Material) -> Result<(), BrokerError> {
        let body = "{}";
        let headers = sign(
            self.cfg.app_key.expose(),
            self.cfg.secret_key.expose(),
            material.token.expose(),
            body,
            self.clock.now(),
        );
        let mut req = self.http.request(Method::GET, self.url("funds"));
        for (name, value) in headers {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                BrokerError::Config(format!(
                    "the Breeze {name} header cannot be sent: it holds characters HTTP headers cannot carry"
                ))
            })?;
            value.set_sensitive(name != "Content-Type" && name != "X-Timestamp");
            req = req.header(name, value);
        }
        let answer = http::send(req.body(body)).await?;
        match errors::read("funds", &answer) {
            Ok(_) => Ok(()),
            // Breeze says the same for a wrong secret and a dead session:
            // customerdetails, which ignores the secret, tells them apart.
            Err(Fault::InvalidChecksum(m)) => match self.validate(material).await {
                Ok(()) => Err(BrokerError::Rejected(format!(
                    "{m}: the app's secret_key was refused while customerdetails accepts the session: the secret was regenerated or is wrong; fix secret_key (fingerprint {})",
                    self.cfg.secret_key.fingerprint()
                ))),
                Err(e) => Err(e),
            },
            Err(Fault::InvalidSession(m) | Fault::ResourceNotAvailable(m)) => Err(
                BrokerError::DeadSession(format!("{m}: the Breeze session has ended")),
            ),
            Err(Fault::PublicKey(m)) => Err(self.wrong_app_key(m)),
            Err(Fault::Transient(m)) => Err(BrokerError::Transient(m)),
        }
    }
}

/// The session key inside a session token: base64 of `user_id:session_key`.
fn session_key_of(token: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let token = token.trim();
    let raw = STANDARD
        .decode(token)
        .or_else(|_| STANDARD_NO_PAD.decode(token))
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (_, key) = text.split_once(':')?;
    (!key.is_empty()).then(|| key.to_string())
}

/// When a session obtained at `now` ends: the earlier of `now +
/// max_lifetime` and the next IST cut-off.
fn expiry(cfg: &BreezeConfig, now: DateTime<Utc>) -> DateTime<Utc> {
    let cutoff = ist::next_at(now, cfg.cutoff);
    chrono::Duration::from_std(cfg.max_lifetime)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map_or(cutoff, |end| end.min(cutoff))
}
