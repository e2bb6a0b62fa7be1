//! Kotak Neo Trade API: the current two-step login (TOTP, then MPIN) with a
//! TOTP that cannot go stale, error shapes normalised in `errors.rs`, and a
//! clock check against the broker's `Date` header.
//! Facts: `shared/brokers/kotak_neo.md`. Pure HTTP and mapping.

pub mod errors;
#[cfg(test)]
mod ledger_tests;

mod config;
mod connector;
pub use config::{KotakNeoConfig, LOGIN_HOST};
pub use connector::KotakConnector;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::http::{self, Answer};
use super::{BrokerError, Material, NewSession, SessionMeta, clock, ist, jwt, totp_gate};

use crate::secret::Secret;
use errors::{CallClass, LoginFailure, Step};

/// The login host; overridable per account.
pub const DEFAULT_LOGIN_HOST: &str = LOGIN_HOST.default;

/// Values of the `tradeApiValidate` answer copied into the session's fields
/// when present (`hsServerId` even when empty): (answer key, field name).
/// Where a Kotak Neo customer copies the TOTP seed from.
const SEED_FROM: &str = "the Neo app";
const TRADE_PASSTHROUGH: [(&str, &str); 4] = [
    ("rid", "rid"),
    ("hsServerId", "hs_server_id"),
    ("feedUrl", "feed_url"),
    ("rtUrl", "rt_url"),
];

/// What all logins of one account share: the TOTP windows already used and
/// the last measured clock skew.
#[derive(Debug)]
pub struct KotakShared {
    /// Never the same TOTP window twice, across logins and crashes.
    pub totp: totp_gate::TotpGate,
    /// Broker clock minus ours, in seconds, from the last check.
    pub skew_secs: Mutex<Option<i64>>,
    /// The daemon's clock: TOTP windows, skew, a session's `obtained_at`.
    pub clock: brokerd_core::time::SharedClock,
}

impl KotakShared {
    /// The state of one account whose used TOTP windows go to `ledger`.
    pub fn new(ledger: std::sync::Arc<dyn totp_gate::WindowLedger>) -> Self {
        Self::with_clock(ledger, brokerd_core::time::SystemClock::shared())
    }

    /// [`KotakShared::new`] on `clock`.
    pub fn with_clock(
        ledger: std::sync::Arc<dyn totp_gate::WindowLedger>,
        clock: brokerd_core::time::SharedClock,
    ) -> Self {
        Self {
            totp: totp_gate::TotpGate::with_clock(ledger, std::sync::Arc::clone(&clock)),
            skew_secs: Mutex::new(None),
            clock,
        }
    }
}

/// One login's client: a brand-new HTTP client.
#[derive(Debug)]
pub struct KotakClient {
    http: reqwest::Client,
    cfg: KotakNeoConfig,
}

impl KotakClient {
    /// A fresh client (never reused across logins).
    pub fn new(cfg: &KotakNeoConfig, timeout: Duration) -> Result<Self, BrokerError> {
        Ok(Self {
            http: http::new_client(timeout)?,
            cfg: cfg.clone(),
        })
    }

    fn common(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("Authorization", self.cfg.access_token.expose())
            .header("neo-fin-key", &self.cfg.neo_fin_key)
            .header("Content-Type", "application/json")
    }

    /// Compares our clock with the broker's `Date` header; remembers and
    /// logs the skew. Failures are not errors: the login itself will tell.
    pub async fn check_clock(&self, shared: &KotakShared) -> Option<i64> {
        let resp = self
            .http
            .head(format!("{}/", self.cfg.login_host))
            .send()
            .await
            .ok()?;
        let date = resp.headers().get("date").and_then(|v| v.to_str().ok());
        let skew = clock::skew_secs(date, shared.clock.now())?;
        *shared.skew_secs.lock() = Some(skew);
        if skew.unsigned_abs() > self.cfg.clock_skew_warning.as_secs() {
            warn!(
                skew_secs = skew,
                "the local clock differs from Kotak's by {skew}s: TOTP codes may be rejected; enable NTP (timedatectl set-ntp true)"
            );
        }
        Some(skew)
    }

    /// The two-step login. A rejected TOTP gets exactly one retry, with the
    /// next window's code; any other rejection is final.
    pub async fn login(&self, shared: &KotakShared) -> Result<NewSession, BrokerError> {
        let skew = self.check_clock(shared).await;
        let mut retried = false;
        let view = loop {
            let (code, step) = shared
                .totp
                .next_code(&self.cfg.totp_seed, self.cfg.totp_min_remaining, SEED_FROM)
                .await?;
            let body = json!({"mobileNumber": self.cfg.mobile, "ucc": self.cfg.ucc, "totp": code});
            let req = self
                .common(
                    self.http
                        .post(format!("{}/login/1.0/tradeApiLogin", self.cfg.login_host)),
                )
                .json(&body);
            let answer = http::send(req).await?;
            http::check_login_url(&answer, "tradeApiLogin", &LOGIN_HOST, &self.cfg.login_host)?;
            match errors::classify_login(
                Step::Login,
                answer.status,
                answer.json.as_ref(),
                &answer.snippet(),
            ) {
                Ok(data) => break data.clone(),
                Err(LoginFailure::Totp(msg)) if !retried => {
                    retried = true;
                    warn!(step, hint = %skew_hint(skew, &self.cfg), "TOTP rejected ({msg}); one retry with the next window's code");
                }
                Err(LoginFailure::Totp(msg)) => {
                    return Err(BrokerError::CodeRejected(format!(
                        "the TOTP was rejected twice ({msg}); check totp_seed (the base32 secret registered for the Trade API) and the mobile number. {}",
                        skew_hint(skew, &self.cfg)
                    )));
                }
                Err(other) => return Err(from_failure(other)),
            }
        };
        let (view_token, view_sid) = (text(&view, "token"), text(&view, "sid"));
        if view_token.is_empty() || view_sid.is_empty() {
            return Err(BrokerError::Transient(
                "tradeApiLogin answered success without token or sid".into(),
            ));
        }
        let req = self
            .common(self.http.post(format!(
                "{}/login/1.0/tradeApiValidate",
                self.cfg.login_host
            )))
            .header("sid", &view_sid)
            .header("Auth", &view_token)
            .json(&json!({"mpin": self.cfg.mpin.expose()}));
        let answer = http::send(req).await?;
        http::check_login_url(
            &answer,
            "tradeApiValidate",
            &LOGIN_HOST,
            &self.cfg.login_host,
        )?;
        let trade = errors::classify_login(
            Step::Validate,
            answer.status,
            answer.json.as_ref(),
            &answer.snippet(),
        )
        .map_err(from_failure)?;
        self.map_session(trade, &view, shared.clock.now())
    }

    fn map_session(
        &self,
        trade: &Value,
        view: &Value,
        now: chrono::DateTime<Utc>,
    ) -> Result<NewSession, BrokerError> {
        let token = text(trade, "token");
        let sid = text(trade, "sid");
        if token.is_empty() || sid.is_empty() {
            return Err(BrokerError::Transient(
                "tradeApiValidate answered success without token or sid".into(),
            ));
        }
        let base_url = Some(text(trade, "baseUrl"))
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.cfg.login_host.clone());
        let data_center = Some(text(trade, "dataCenter"))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| text(view, "dataCenter"));
        let expires_at = jwt::expiry(&token)
            // Kotak's trade tokens end at 00:00 IST when `exp` is missing.
            .unwrap_or_else(|| ist::next_at(now, chrono::NaiveTime::MIN));
        let mut headers = BTreeMap::new();
        headers.insert("Auth".to_string(), Secret::new(token.clone()));
        headers.insert("Sid".to_string(), Secret::new(sid.clone()));
        headers.insert(
            "neo-fin-key".to_string(),
            Secret::new(self.cfg.neo_fin_key.clone()),
        );
        headers.insert("Authorization".to_string(), self.cfg.access_token.clone());
        let base_url = base_url.trim_end_matches('/');
        let mut fields = serde_json::Map::new();
        // `api_root` is the key every broker's session has; `base_url` is
        // Kotak's own name for it, kept for the clients that read it.
        fields.insert("api_root".into(), json!(base_url));
        fields.insert("base_url".into(), json!(base_url));
        fields.insert("sid".into(), json!(sid));
        fields.insert("ucc".into(), json!(self.cfg.ucc));
        fields.insert("data_center".into(), json!(data_center));
        // What the Neo SDKs keep from the validate answer besides the token
        // (`edit_rid`, the older SDK's `serverId` sent as `sId`, the feed
        // and order-feed URLs), passed through only when Kotak sent them:
        // none is a credential on its own.
        for (answer_key, field) in TRADE_PASSTHROUGH {
            if let Some(v) = trade.get(answer_key).and_then(Value::as_str) {
                fields.insert(field.into(), json!(v));
            }
        }
        info!(ucc = %self.cfg.ucc, data_center = %data_center, "Kotak trade session obtained");
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
                user_id: Some(self.cfg.ucc.clone()),
                app_expiry: None,
            },
        })
    }

    /// A cheap call proving the session alive (the limits report).
    pub async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        let base = material
            .fields
            .get("base_url")
            .and_then(Value::as_str)
            .unwrap_or(&self.cfg.login_host);
        let header = |name: &str| {
            material
                .headers
                .get(name)
                .map(|s| s.expose().to_string())
                .unwrap_or_default()
        };
        let req = self
            .http
            .post(format!("{}/quick/user/limits", base.trim_end_matches('/')))
            .header("Auth", header("Auth"))
            .header("Sid", header("Sid"))
            .header("neo-fin-key", &self.cfg.neo_fin_key)
            .form(&[("jData", r#"{"seg":"ALL","exch":"ALL","prod":"ALL"}"#)]);
        let answer = http::send(req).await?;
        match classify_answer(&answer) {
            (CallClass::DeadSession, n) => Err(BrokerError::DeadSession(n)),
            (CallClass::Transient, n) => Err(BrokerError::Transient(n)),
            // IP rules concern orders, not the session's validity.
            (CallClass::IpNotAllowed | CallClass::SessionIpMismatch | CallClass::Other, _) => {
                Ok(())
            }
        }
    }
}

/// A broker answer as the slot needs it: class and `[code] message`.
fn classify_answer(answer: &Answer) -> (CallClass, String) {
    let n = errors::normalize(answer.status, answer.json.as_ref(), &answer.snippet());
    let class = errors::classify_call(&n, answer.json.is_some());
    (class, n.to_string())
}

/// Classifies what a client reports from a post-login call: `status` (0 when
/// unknown) and the broker's body (JSON text) or message.
pub fn classify_report(status: u16, body: &str) -> (CallClass, String) {
    let json: Option<Value> = serde_json::from_str(body).ok().filter(Value::is_object);
    let n = match &json {
        Some(v) => errors::normalize(status, Some(v), body),
        None => errors::Normalized {
            status,
            code: None,
            message: body.trim().to_string(),
        },
    };
    // A plain-text report is the client's own words, not a non-JSON answer.
    (errors::classify_call(&n, true), n.to_string())
}

fn from_failure(f: LoginFailure) -> BrokerError {
    match f {
        LoginFailure::Transient(m) => BrokerError::Transient(m),
        LoginFailure::Totp(m) | LoginFailure::Rejected(m) => BrokerError::Rejected(m),
        LoginFailure::Config(m) => BrokerError::Config(m),
    }
}

fn skew_hint(skew: Option<i64>, cfg: &KotakNeoConfig) -> String {
    match skew {
        Some(s) if s.unsigned_abs() > cfg.clock_skew_warning.as_secs() => format!(
            "The local clock is {}s {} Kotak's: that is the likely cause; enable NTP (timedatectl set-ntp true).",
            s.abs(),
            if s > 0 { "behind" } else { "ahead of" }
        ),
        Some(s) => format!("The local clock agrees with Kotak's (skew {s}s)."),
        None => "Kotak's clock could not be checked.".into(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_classify_from_json_or_text() {
        let (c, m) = classify_report(
            200,
            r#"{"code":"900901","message":"Invalid Credentials","description":"Invalid JWT token"}"#,
        );
        assert_eq!(
            (c, m.as_str()),
            (CallClass::DeadSession, "[900901] Invalid Credentials")
        );
        let (c, _) = classify_report(
            0,
            r#"{"fault":{"code":900901,"message":"Invalid Credentials"}}"#,
        );
        assert_eq!(c, CallClass::DeadSession);
        assert_eq!(
            classify_report(200, r#"{"stCode":1037,"errMsg":"session ip doesnt match"}"#).0,
            CallClass::SessionIpMismatch
        );
        assert_eq!(
            classify_report(0, "Invalid JWT token").0,
            CallClass::DeadSession
        );
        assert_eq!(classify_report(503, "").0, CallClass::Transient);
    }
}
