//! Angel One SmartAPI: the unattended login (client code, PIN and a TOTP
//! that is never reused, through the shared window gate), renewal with the
//! refresh token (`generateTokens`), validation (`getProfile`) and logout.
//! Every answer shape is classified in `errors.rs`; the session mapping is
//! in `session.rs`, the settings in `config.rs`, the [`Broker`] interface
//! in `connector.rs`.
//!
//! [`Broker`]: super::broker::Broker
//! Facts: `shared/brokers/angel_one.md`. Pure HTTP and mapping.

pub mod config;
mod connector;
pub mod errors;
#[cfg(test)]
mod errors_tests;
pub mod session;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use brokerd_core::time::{SharedClock, SystemClock};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::http::{self, Answer};
use super::totp_gate::{TotpGate, WindowLedger};
use super::{BrokerError, Material, Report};
use crate::secret::Secret;
pub use config::{API_ROOT, AngelOneConfig};
pub use connector::AngelConnector;
use errors::{Class, LoginFailure};
pub use session::AngelSession;

/// The paths under the REST root, as the SDKs spell them.
/// Where an Angel One customer copies the TOTP seed from.
const SEED_FROM: &str = "smartapi.angelone.in/enable-totp";
const LOGIN: &str = "/rest/auth/angelbroking/user/v1/loginByPassword";
const RENEW: &str = "/rest/auth/angelbroking/jwt/v1/generateTokens";
const PROFILE: &str = "/rest/secure/angelbroking/user/v1/getProfile";
const LOGOUT: &str = "/rest/secure/angelbroking/user/v1/logout";

/// What all logins of one account share: the TOTP windows already used,
/// and the clock they are read from.
#[derive(Debug)]
pub struct AngelShared {
    /// Never the same TOTP window twice, across logins and crashes.
    pub totp: TotpGate,
    /// The daemon's clock: TOTP windows and a session's `obtained_at`, so a
    /// test's manual clock moves through windows instead of waiting.
    pub clock: SharedClock,
}

impl AngelShared {
    /// The state of one account whose used TOTP windows go to `ledger`, on
    /// the system clock.
    pub fn new(ledger: Arc<dyn WindowLedger>) -> Self {
        Self::with_clock(ledger, SystemClock::shared())
    }

    /// [`AngelShared::new`] on `clock`: the gate and `obtained_at` read it.
    pub fn with_clock(ledger: Arc<dyn WindowLedger>, clock: SharedClock) -> Self {
        Self {
            totp: TotpGate::with_clock(ledger, Arc::clone(&clock)),
            clock,
        }
    }
}

/// One login's client: a brand-new HTTP client, never reused across logins.
#[derive(Debug)]
pub struct AngelOneClient {
    http: reqwest::Client,
    cfg: AngelOneConfig,
}

impl AngelOneClient {
    /// A fresh client.
    pub fn new(cfg: &AngelOneConfig, timeout: Duration) -> Result<Self, BrokerError> {
        Ok(Self {
            http: http::new_client(timeout)?,
            cfg: cfg.clone(),
        })
    }

    fn post(&self, root: &str, path: &str) -> reqwest::RequestBuilder {
        self.common(self.http.post(format!("{root}{path}")))
    }

    fn common(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in session::common_headers(&self.cfg) {
            req = req.header(name, value.expose());
        }
        req
    }

    /// The REST root a session's calls go to: its own `api_root`, else the
    /// configured one.
    fn root_of<'a>(&'a self, material: &'a Material) -> &'a str {
        material
            .fields
            .get("api_root")
            .and_then(Value::as_str)
            .unwrap_or(&self.cfg.api_root)
            .trim_end_matches('/')
    }

    /// `loginByPassword`. A refused TOTP (`AB1050`) gets exactly one retry
    /// with the next window's code; every other refusal is final.
    pub async fn login(&self, shared: &AngelShared) -> Result<AngelSession, BrokerError> {
        let root = self.cfg.api_root.trim_end_matches('/');
        let mut retried = false;
        let data = loop {
            let (code, step) = shared
                .totp
                .next_code(&self.cfg.totp_seed, self.cfg.totp_min_remaining, SEED_FROM)
                .await?;
            let body = json!({"clientcode": self.cfg.client_code,
                "password": self.cfg.pin.expose(), "totp": code});
            let answer = http::send(self.post(root, LOGIN).json(&body)).await?;
            check_endpoint(&answer, "loginByPassword", root)?;
            match errors::classify_login(answer.status, answer.json.as_ref(), &answer.snippet()) {
                Ok(data) => break data.clone(),
                Err(LoginFailure::Totp(msg)) if !retried => {
                    retried = true;
                    warn!(step, client_code = %self.cfg.client_code,
                          "TOTP refused ({msg}); one retry with the next window's code");
                }
                Err(LoginFailure::Totp(msg)) => {
                    return Err(BrokerError::CodeRejected(format!(
                        "Angel One refused the TOTP twice ({msg}); check totp_seed (the base32 \
                         secret shown when TOTP was enabled for the account) and the clock \
                         (timedatectl set-ntp true)"
                    )));
                }
                Err(other) => return Err(from_failure(other)),
            }
        };
        let session = session::map(&self.cfg, root, &data, shared.clock.now())?;
        info!(client_code = %self.cfg.client_code,
              token = %session.session.material.token.fingerprint(), "Angel One session obtained");
        Ok(session)
    }

    /// `generateTokens`: a new jwtToken, refresh token and feed token from
    /// the current ones, obtained at `shared`'s clock. `DeadSession` when
    /// either token is no longer accepted: only a new login can help then.
    pub async fn renew(
        &self,
        shared: &AngelShared,
        material: &Material,
        refresh_token: &Secret,
    ) -> Result<AngelSession, BrokerError> {
        let root = self.root_of(material);
        let jwt = material.token.expose();
        let mut body = json!({"refreshToken": refresh_token.expose()});
        if self.cfg.renew_checksum {
            body["checksum"] = json!(checksum(&self.cfg.api_key, refresh_token, jwt));
        }
        let req = self.post(root, RENEW).bearer_auth(jwt).json(&body);
        let answer = http::send(req).await?;
        let data = call_result(&answer, "generateTokens")?;
        let renewed = session::map(&self.cfg, root, data, shared.clock.now())?;
        info!(client_code = %self.cfg.client_code,
              token = %renewed.session.material.token.fingerprint(), "Angel One session renewed");
        Ok(renewed)
    }

    /// A new session for an account that may already hold one: renewal
    /// with its refresh token when there is one, a login when there is none
    /// or the broker no longer accepts it (`DeadSession`). Any other
    /// renewal failure is returned as it is: after an outage the current
    /// session still works, and a login would spend a TOTP window for
    /// nothing.
    pub async fn refresh(
        &self,
        shared: &AngelShared,
        current: Option<(&Material, &Secret)>,
    ) -> Result<AngelSession, BrokerError> {
        if let Some((material, refresh_token)) = current {
            match self.renew(shared, material, refresh_token).await {
                Err(BrokerError::DeadSession(why)) => {
                    info!(client_code = %self.cfg.client_code, reason = %why,
                          "renewal refused; logging in instead");
                }
                other => return other,
            }
        }
        self.login(shared).await
    }

    /// `getProfile`: a cheap call proving the session alive.
    pub async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        let root = self.root_of(material);
        let req = self
            .common(self.http.get(format!("{root}{PROFILE}")))
            .bearer_auth(material.token.expose());
        let answer = http::send(req).await?;
        call_result(&answer, "getProfile").map(drop)
    }

    /// `logout`: ends the API session at the broker.
    pub async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        let root = self.root_of(material);
        let req = self
            .post(root, LOGOUT)
            .bearer_auth(material.token.expose())
            .json(&json!({"clientcode": self.cfg.client_code}));
        let answer = http::send(req).await?;
        call_result(&answer, "logout").map(drop)
    }
}

/// The Java SDK's `checksum` of `generateTokens`: hex SHA-256 of
/// api key + refresh token + jwt.
fn checksum(api_key: &Secret, refresh_token: &Secret, jwt: &str) -> String {
    let mut h = Sha256::new();
    h.update(api_key.expose());
    h.update(refresh_token.expose());
    h.update(jwt);
    hex::encode(h.finalize())
}

/// The answer of a session call: `data` on success, else the error the
/// slot branches on.
fn call_result<'a>(answer: &'a Answer, call: &str) -> Result<&'a Value, BrokerError> {
    let n = errors::normalize(answer.status, answer.json.as_ref(), &answer.snippet());
    let what = format!("{call} answered {n}");
    match errors::classify(&n) {
        Class::Success => Ok(answer
            .json
            .as_ref()
            .and_then(|b| b.get("data"))
            .unwrap_or(&Value::Null)),
        Class::DeadSession | Class::RefreshDead => Err(BrokerError::DeadSession(what)),
        Class::Credentials => Err(BrokerError::Rejected(format!(
            "{what}: the API key was refused; copy it again from the SmartAPI app"
        ))),
        Class::Config => Err(BrokerError::Config(what)),
        Class::Totp | Class::IpNotAllowed | Class::Transient | Class::Other => {
            Err(BrokerError::Transient(what))
        }
    }
}

/// A login endpoint that does not exist at the configured root is a
/// configuration problem naming `api_root`, not a rejection.
fn check_endpoint(answer: &Answer, call: &str, root: &str) -> Result<(), BrokerError> {
    http::check_login_endpoint(
        answer,
        call,
        &API_ROOT.key(),
        root,
        &format!(
            "{} (or the older \"{}\")",
            API_ROOT.expected(),
            config::LEGACY_API_ROOT
        ),
    )
}

fn from_failure(f: LoginFailure) -> BrokerError {
    match f {
        LoginFailure::Transient(m) => BrokerError::Transient(m),
        LoginFailure::Totp(m) | LoginFailure::Rejected(m) => BrokerError::Rejected(m),
        LoginFailure::Config(m) => BrokerError::Config(m),
    }
}

/// Classifies what a client reports from a post-login call.
pub fn classify_report(status: Option<u16>, reason: &str) -> Report {
    errors::report(status.unwrap_or(0), reason)
}
