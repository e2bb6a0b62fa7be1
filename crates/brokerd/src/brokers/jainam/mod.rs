//! Jainam (Symphony XTS): app-key logins for the interactive and the
//! market-data session, each independent (own keys, token and expiry).
//! Facts: `shared/brokers/jainam.md`. Pure HTTP and mapping.

mod config;
mod connector;
pub use config::{AppKeyPair, JainamConfig, ROOT};
pub use connector::JainamConnector;

use std::collections::BTreeMap;
use std::time::Duration;

use brokerd_core::SharedClock;
use serde_json::{Value, json};

use super::http::{self, Answer};
use super::{Api, BrokerError, Material, NewSession, SessionMeta, jwt};

use crate::secret::Secret;

/// The default retail root; overridable per account.
pub const DEFAULT_ROOT: &str = ROOT.default;

/// One login's client: a brand-new HTTP client bound to one session.
#[derive(Debug)]
pub struct JainamClient {
    http: reqwest::Client,
    cfg: JainamConfig,
    api: Api,
    /// The dealer client code sent as `clientID`, when the login is a dealer's.
    client_id: Option<String>,
    /// The daemon's clock: `obtained_at` and the fallback expiry (a token
    /// without `exp`) are read from it.
    clock: SharedClock,
}

impl JainamClient {
    /// Builds a fresh client (never reused across logins: invariant 2),
    /// reading time from `clock`.
    pub fn new(
        cfg: &JainamConfig,
        api: Api,
        timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            http: http::new_client(timeout)?,
            cfg: cfg.clone(),
            api,
            client_id: cfg.client_id.clone(),
            clock,
        })
    }

    /// Rebuilds a client around a stored session (after a restart).
    pub fn for_stored(
        cfg: &JainamConfig,
        api: Api,
        timeout: Duration,
        clock: SharedClock,
        material: &Material,
    ) -> Result<Self, BrokerError> {
        let mut client = Self::new(cfg, api, timeout, clock)?;
        client.client_id = material
            .fields
            .get("client_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(client)
    }

    fn url(&self, tail: &str) -> String {
        match self.api {
            Api::Interactive => format!("{}/interactive{tail}", self.cfg.root),
            Api::Market => format!("{}{}{tail}", self.cfg.root, self.cfg.market_prefix),
        }
    }

    fn keys(&self) -> Result<&AppKeyPair, BrokerError> {
        let keys = match self.api {
            Api::Interactive => self.cfg.interactive.as_ref(),
            Api::Market => self.cfg.market.as_ref(),
        };
        keys.ok_or_else(|| {
            BrokerError::Config(format!(
                "no [account.jainam.{}] app_key/secret_key configured",
                self.api
            ))
        })
    }

    /// Logs in and maps the answer to a session.
    pub async fn login(&mut self) -> Result<NewSession, BrokerError> {
        let keys = self.keys()?;
        let body = json!({
            "appKey": keys.app_key.expose(),
            "secretKey": keys.secret_key.expose(),
            "source": self.cfg.source,
        });
        let path = match self.api {
            Api::Interactive => "/user/session",
            Api::Market => "/auth/login",
        };
        let req = self.http.post(self.url(path)).json(&body);
        let answer = http::send(req).await?;
        self.check_login_endpoint(&answer, path)?;
        let result = classify(&answer, true)?;
        let session = self.map_login(result)?;
        if self.api == Api::Interactive {
            self.client_id = session
                .material
                .fields
                .get("client_id")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(session)
    }

    /// A login URL that does not exist is the root's fault, or for market
    /// data the root's or the prefix's: the key names both.
    fn check_login_endpoint(&self, answer: &Answer, path: &str) -> Result<(), BrokerError> {
        let rule = &ROOT;
        match self.api {
            Api::Interactive => http::check_login_url(
                answer,
                &format!("POST /interactive{path}"),
                rule,
                &self.cfg.root,
            ),
            Api::Market => http::check_login_endpoint(
                answer,
                &format!("POST {}{path}", self.cfg.market_prefix),
                &format!("{} or account.jainam.market_prefix", rule.key()),
                &format!("{}{}", self.cfg.root, self.cfg.market_prefix),
                &format!(
                    "{}, and a market_prefix this server has (/apibinarymarketdata, \
                     /apimarketdata or /marketdata)",
                    rule.expected()
                ),
            ),
        }
    }

    fn map_login(&self, result: &Value) -> Result<NewSession, BrokerError> {
        let token = result
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                BrokerError::Transient("login answered success without result.token".into())
            })?;
        let user_id = result
            .get("userID")
            .and_then(Value::as_str)
            .map(str::to_string);
        let now = self.clock.now();
        let expires_at = jwt::expiry(token).unwrap_or_else(|| {
            now + chrono::Duration::from_std(self.cfg.fallback_lifetime)
                .expect("fallback lifetime is validated to a sane range")
        });
        let mut fields = serde_json::Map::new();
        // XTSConnect(root=...) and both socket.io clients connect to the root
        // this session was made on (the simulator in tests).
        fields.insert(
            "api_root".into(),
            json!(self.cfg.root.trim_end_matches('/')),
        );
        fields.insert("user_id".into(), json!(user_id));
        let mut app_expiry = None;
        match self.api {
            Api::Interactive => {
                let investor = result
                    .get("isInvestorClient")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let codes: Vec<String> = result
                    .get("clientCodes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                // Dealers must send clientID on every call: the configured
                // code wins, else the first code the broker listed.
                let client_id = if investor {
                    None
                } else {
                    self.cfg
                        .client_id
                        .clone()
                        .or_else(|| codes.first().cloned())
                };
                fields.insert("is_investor_client".into(), json!(investor));
                fields.insert("client_codes".into(), json!(codes));
                if let Some(id) = client_id {
                    fields.insert("client_id".into(), json!(id));
                }
            }
            Api::Market => {
                app_expiry = result
                    .get("application_expiry_date")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                // The SDK hard-codes `/apimarketdata`; Jainam's servers differ,
                // so REST paths and the socket.io path need the real prefix.
                fields.insert("market_prefix".into(), json!(self.cfg.market_prefix));
                fields.insert("app_version".into(), json!(result.get("appVersion")));
                fields.insert("application_expiry_date".into(), json!(app_expiry));
            }
        }
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_string(), Secret::new(token));
        headers.insert("Content-Type".to_string(), Secret::new("application/json"));
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
                user_id,
                app_expiry,
            },
        })
    }

    fn with_client_id(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.client_id, self.api) {
            (Some(id), Api::Interactive) => req.query(&[("clientID", id)]),
            _ => req,
        }
    }

    /// The cheapest call that proves the token is alive.
    pub async fn validate(&self, token: &Secret) -> Result<(), BrokerError> {
        let path = match self.api {
            Api::Interactive => "/user/profile",
            Api::Market => "/config/clientConfig",
        };
        let req = self
            .http
            .get(self.url(path))
            .header("Authorization", token.expose());
        let answer = http::send(self.with_client_id(req)).await?;
        classify(&answer, false).map(|_| ())
    }

    /// Ends the session at the broker.
    pub async fn logout(&self, token: &Secret) -> Result<(), BrokerError> {
        let path = match self.api {
            Api::Interactive => "/user/session",
            Api::Market => "/auth/logout",
        };
        let req = self
            .http
            .delete(self.url(path))
            .header("Authorization", token.expose());
        let answer = http::send(self.with_client_id(req)).await?;
        classify(&answer, false).map(|_| ())
    }
}

/// Maps an XTS answer to its `result`, or to the error class the slot needs.
///
/// `Invalid Token` is matched in the body at any HTTP status: the SDK expects
/// 400, but 200 has been reported.
fn classify(answer: &Answer, is_login: bool) -> Result<&Value, BrokerError> {
    let status = answer.status;
    let Some(body) = answer.json.as_ref() else {
        let msg = format!(
            "XTS answered HTTP {status} with a non-JSON body ({})",
            answer.snippet()
        );
        return Err(if status == 404 {
            BrokerError::Config(format!("{msg}; check the account's root and market_prefix"))
        } else {
            BrokerError::Transient(msg)
        });
    };
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let code = body.get("code").and_then(Value::as_str).unwrap_or("");
    let rendered = if code.is_empty() {
        format!("{description} (HTTP {status})")
    } else {
        format!("[{code}] {description} (HTTP {status})")
    };
    if description.eq_ignore_ascii_case("invalid token") || code == "e-session-0007" {
        return Err(BrokerError::DeadSession(rendered));
    }
    if body.get("type").and_then(Value::as_str) == Some("success") && (200..300).contains(&status) {
        return Ok(body.get("result").unwrap_or(&Value::Null));
    }
    if status == 429 || status >= 500 {
        return Err(BrokerError::Transient(rendered));
    }
    if description.to_ascii_lowercase().contains("ctcl") {
        return Err(BrokerError::Config(format!(
            "{rendered}; this key answers only on another market-data prefix: check market_prefix"
        )));
    }
    if !is_login && status == 401 {
        return Err(BrokerError::DeadSession(rendered));
    }
    if is_login {
        Err(BrokerError::Rejected(format!(
            "login rejected: {rendered}; check the app key and secret key"
        )))
    } else {
        Err(BrokerError::Transient(rendered))
    }
}

#[cfg(test)]
mod tests;
