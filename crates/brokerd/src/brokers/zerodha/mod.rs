//! Zerodha Kite Connect v3: the browser login URL, the exchange of the
//! request token it yields for an access token (a SHA-256 checksum proves
//! the app secret), the profile call that proves a session alive, and the
//! API logout. Errors are classified in `errors.rs`.
//! Facts: `shared/brokers/zerodha.md`. Pure HTTP and mapping.

mod errors;
#[cfg(test)]
mod tests;

mod config;
mod connector;
pub use config::{API_ROOT, LOGIN_ROOT, TICKER_ROOT, ZerodhaConfig};
pub use connector::ZerodhaConnector;

use std::collections::BTreeMap;
use std::time::Duration;

use brokerd_core::SharedClock;
use reqwest::Url;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::http::{self, Answer};
use super::{BrokerError, Material, NewSession, Report, SessionMeta, ist};

use crate::secret::{Secret, fingerprint};
use errors::KiteError;

/// The API version every request declares.
const KITE_VERSION: &str = "3";

/// One session's client: a brand-new HTTP client, the account's Kite
/// settings (whose secrets print masked) and the daemon's clock.
#[derive(Debug)]
pub struct ZerodhaClient {
    http: reqwest::Client,
    cfg: ZerodhaConfig,
    /// The daemon's clock: a session's `obtained_at` and the 06:00 IST
    /// cut-off it expires at are read from it.
    clock: SharedClock,
}

impl ZerodhaClient {
    /// A brand-new client (its own reqwest::Client via http::new_client) for
    /// one session, reading time from `clock`.
    pub fn new(
        cfg: &ZerodhaConfig,
        timeout: Duration,
        clock: SharedClock,
    ) -> Result<Self, BrokerError> {
        Ok(Self {
            http: http::new_client(timeout)?,
            cfg: cfg.clone(),
            clock,
        })
    }

    fn endpoint(&self, path: &str) -> Result<Url, BrokerError> {
        let root = self.cfg.api_root.trim_end_matches('/');
        Url::parse(&format!("{root}{path}")).map_err(|e| {
            BrokerError::Config(format!(
                "api_root {root:?} is not a URL ({e}); Kite's is https://api.kite.trade"
            ))
        })
    }

    /// POST {api_root}/session/token form api_key, request_token, checksum; header X-Kite-Version: 3.
    ///
    /// A login as another Kite user than the configured `user_id` is a
    /// `BadSubmission`, and its token is deliberately not logged out: Kite
    /// may have handed out the token of a session that is in use elsewhere.
    pub async fn exchange(&self, request_token: &Secret) -> Result<NewSession, BrokerError> {
        if request_token.expose().trim().is_empty() {
            return Err(BrokerError::BadSubmission(
                "the request token is empty: open the login URL again and let the redirect finish"
                    .into(),
            ));
        }
        let api_key = self.cfg.api_key.expose();
        let sum = checksum(
            api_key,
            request_token.expose(),
            self.cfg.api_secret.expose(),
        );
        let url = self.endpoint("/session/token")?;
        let req = self
            .http
            .post(url)
            .header("X-Kite-Version", KITE_VERSION)
            .form(&[
                ("api_key", api_key),
                ("request_token", request_token.expose()),
                ("checksum", &sum),
            ]);
        let secrets = [request_token.expose(), self.cfg.api_secret.expose(), &sum];
        let answer = http::send(req)
            .await
            .map_err(|e| scrub(e, &secrets, "request"))?;
        http::check_login_url(
            &answer,
            "POST /session/token",
            &API_ROOT,
            &self.cfg.api_root,
        )?;
        let Some(data) = success_data(&answer) else {
            let e = scrub(
                errors::exchange_failure(&KiteError::read(&answer)),
                &secrets,
                "request",
            );
            warn!(request_token = %request_token.fingerprint(), error = %e, "Kite request-token exchange failed");
            return Err(e);
        };
        self.map_session(data)
            .map_err(|e| scrub(e, &secrets, "request"))
    }

    fn map_session(&self, data: &Value) -> Result<NewSession, BrokerError> {
        let text = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let (Some(access_token), Some(user_id)) = (text("access_token"), text("user_id")) else {
            return Err(BrokerError::Transient(
                "Kite answered the exchange with success but without access_token or user_id"
                    .into(),
            ));
        };
        if let Some(want) = &self.cfg.user_id
            && !want.eq_ignore_ascii_case(user_id)
        {
            // Never log this token out: Kite may have returned the token of
            // a session some other program (or account slot) is using.
            warn!(got = %user_id, want = %want, token = %fingerprint(access_token),
                "Kite login as the wrong user; the session is not used");
            return Err(BrokerError::BadSubmission(format!(
                "logged in as {user_id} in the browser, but this account is configured for \
                 user_id {want}; log in as {want}"
            )));
        }
        let api_key = self.cfg.api_key.expose();
        let mut headers = BTreeMap::new();
        headers.insert(
            "Authorization".to_string(),
            Secret::new(format!("token {api_key}:{access_token}")),
        );
        headers.insert("X-Kite-Version".to_string(), Secret::new(KITE_VERSION));
        let mut fields = serde_json::Map::new();
        // Where this session was made: KiteConnect(root=...) must send its
        // calls there (the simulator in tests, Kite in production).
        fields.insert(
            "api_root".into(),
            json!(self.cfg.api_root.trim_end_matches('/')),
        );
        // KiteTicker(root=...) likewise: Kite's in production, the
        // simulator's websocket in tests.
        fields.insert(
            "ticker_root".into(),
            json!(self.cfg.ticker_root.trim_end_matches('/')),
        );
        fields.insert("user_id".into(), json!(user_id));
        fields.insert("api_key".into(), json!(text("api_key").unwrap_or(api_key)));
        for key in ["public_token", "login_time"] {
            if let Some(v) = data.get(key).and_then(Value::as_str) {
                fields.insert(key.into(), json!(v));
            }
        }
        let now = self.clock.now();
        let expires_at = ist::next_at(now, self.cfg.cutoff);
        info!(user_id = %user_id, token = %fingerprint(access_token), %expires_at,
            "Kite session obtained");
        Ok(NewSession {
            material: Material {
                token: Secret::new(access_token),
                headers,
                fields,
                private: Default::default(),
            },
            meta: SessionMeta {
                expires_at,
                obtained_at: now,
                user_id: Some(user_id.to_string()),
                app_expiry: None,
            },
        })
    }

    /// The session's headers, with the version and `Authorization` added if
    /// a stored session lacks them.
    fn with_session(
        &self,
        mut req: reqwest::RequestBuilder,
        material: &Material,
    ) -> reqwest::RequestBuilder {
        for (name, value) in &material.headers {
            req = req.header(name.as_str(), value.expose());
        }
        let has = |n: &str| material.headers.keys().any(|k| k.eq_ignore_ascii_case(n));
        if !has("X-Kite-Version") {
            req = req.header("X-Kite-Version", KITE_VERSION);
        }
        if !has("Authorization") {
            let auth = format!(
                "token {}:{}",
                session_api_key(&self.cfg, material),
                material.token.expose()
            );
            req = req.header("Authorization", auth);
        }
        req
    }

    /// GET {api_root}/user/profile with the session's headers: Ok if alive.
    pub async fn validate(&self, material: &Material) -> Result<(), BrokerError> {
        let req = self.with_session(self.http.get(self.endpoint("/user/profile")?), material);
        let secrets = [material.token.expose()];
        let answer = http::send(req)
            .await
            .map_err(|e| scrub(e, &secrets, "token"))?;
        if success_data(&answer).is_some() {
            return Ok(());
        }
        let e = scrub(
            errors::validate_failure(&KiteError::read(&answer)),
            &secrets,
            "token",
        );
        info!(token = %material.token.fingerprint(), error = %e, "Kite profile check failed");
        Err(e)
    }

    /// DELETE {api_root}/session/token?api_key=..&access_token=.. ; an already-dead token (TokenException) is Ok.
    pub async fn logout(&self, material: &Material) -> Result<(), BrokerError> {
        let mut url = self.endpoint("/session/token")?;
        url.query_pairs_mut()
            .append_pair("api_key", session_api_key(&self.cfg, material))
            .append_pair("access_token", material.token.expose());
        let req = self.with_session(self.http.delete(url), material);
        let secrets = [material.token.expose()];
        let answer = http::send(req)
            .await
            .map_err(|e| scrub(e, &secrets, "token"))?;
        if success_data(&answer).is_some() {
            info!(token = %material.token.fingerprint(), "Kite session logged out");
            return Ok(());
        }
        errors::logout_failure(&KiteError::read(&answer)).map_err(|e| scrub(e, &secrets, "token"))
    }
}

/// The api_key a session was made with: the one Kite returned, else ours.
fn session_api_key<'a>(cfg: &'a ZerodhaConfig, material: &'a Material) -> &'a str {
    material
        .fields
        .get("api_key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .unwrap_or(cfg.api_key.expose())
}

/// `data` of a `{"status":"success","data":..}` answer with a 2xx status.
fn success_data(answer: &Answer) -> Option<&Value> {
    let body = answer.json.as_ref()?;
    let ok = (200..300).contains(&answer.status)
        && body.get("status").and_then(Value::as_str) == Some("success");
    ok.then(|| body.get("data")).flatten()
}

/// The error with every secret value masked, whatever Kite echoed back.
fn scrub(e: BrokerError, secrets: &[&str], what: &str) -> BrokerError {
    let clean = |m: &str| {
        secrets
            .iter()
            .filter(|s| !s.is_empty())
            .fold(m.to_string(), |m, s| m.replace(s, &format!("<{what}>")))
    };
    match e {
        BrokerError::Transient(m) => BrokerError::Transient(clean(&m)),
        BrokerError::RateLimited(m) => BrokerError::RateLimited(clean(&m)),
        BrokerError::Rejected(m) => BrokerError::Rejected(clean(&m)),
        BrokerError::CodeRejected(m) => BrokerError::CodeRejected(clean(&m)),
        BrokerError::DeadSession(m) => BrokerError::DeadSession(clean(&m)),
        BrokerError::Config(m) => BrokerError::Config(clean(&m)),
        BrokerError::BadSubmission(m) => BrokerError::BadSubmission(clean(&m)),
    }
}

/// `pairs` form-encoded (`a=1&b=x+y`), by `Url`'s own encoder.
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut scratch = Url::parse("http://localhost/").expect("a constant, valid URL");
    scratch.query_pairs_mut().extend_pairs(pairs);
    scratch.query().unwrap_or_default().to_string()
}

/// {login_root}/connect/login?v=3&api_key=<enc>&redirect_params=<url-encoded "state=<state>">
///
/// `state` is encoded inside `redirect_params` too, so Kite's redirect
/// carries `&state=<encoded state>` back verbatim.
pub fn login_url(cfg: &ZerodhaConfig, state: &str) -> String {
    let redirect_params = form_encode(&[("state", state)]);
    let query = form_encode(&[
        ("v", KITE_VERSION),
        ("api_key", cfg.api_key.expose()),
        ("redirect_params", &redirect_params),
    ]);
    let root = cfg.login_root.trim_end_matches('/');
    match Url::parse(&format!("{root}/connect/login")) {
        Ok(mut url) => {
            url.set_query(Some(&query));
            url.into()
        }
        Err(_) => format!("{root}/connect/login?{query}"),
    }
}

/// lowercase hex SHA-256 of api_key + request_token + api_secret.
pub fn checksum(api_key: &str, request_token: &str, api_secret: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(api_key.as_bytes());
    hash.update(request_token.as_bytes());
    hash.update(api_secret.as_bytes());
    hex::encode(hash.finalize())
}

/// What a client's report of a rejected call means (status = HTTP status it saw, reason = body or message).
///
/// 401 / 403, a `TokenException` or ``Incorrect `api_key` or `access_token` ``
/// is a dead session; anything else (429, 5xx, an HTML page, order or input
/// errors ...) is transient: the session is not what failed.
pub fn classify_report(status: Option<u16>, reason: &str) -> Report {
    errors::report(status, reason)
}
