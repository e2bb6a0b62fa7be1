//! A login's or renewal's `data` turned into a session: the jwtToken as the
//! token, the headers every SmartAPI call needs, the fields the official
//! SDKs take, and the expiry read from the jwtToken's `exp`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::config::AngelOneConfig;
use crate::brokers::{BrokerError, Material, NewSession, SessionMeta, jwt};
use crate::secret::Secret;

/// What a login or renewal produced: the session clients get, and the
/// refresh token, which only the daemon keeps (a client holding it could
/// renew and replace the daemon's tokens): it is also in the session's
/// [`Material::private`] under [`REFRESH_TOKEN`], so a restart can renew.
#[derive(Debug)]
pub struct AngelSession {
    /// The session served to clients.
    pub session: NewSession,
    /// `refreshToken`, for `generateTokens`; `None` when the answer had none.
    pub refresh_token: Option<Secret>,
}

/// The key of the refresh token in [`Material::private`].
pub const REFRESH_TOKEN: &str = "refresh_token";

/// `X-UserType`, as every SDK sends it.
pub const USER_TYPE: &str = "USER";
/// `X-SourceID`, as every SDK sends it.
pub const SOURCE_ID: &str = "WEB";

/// The headers of every SmartAPI call but the token: `(name, value)`,
/// the API key among them.
pub fn common_headers(cfg: &AngelOneConfig) -> [(&'static str, Secret); 8] {
    [
        ("X-PrivateKey", cfg.api_key.clone()),
        ("X-UserType", Secret::new(USER_TYPE)),
        ("X-SourceID", Secret::new(SOURCE_ID)),
        ("X-ClientLocalIP", Secret::new(cfg.local_ip.clone())),
        ("X-ClientPublicIP", Secret::new(cfg.public_ip.clone())),
        ("X-MACAddress", Secret::new(cfg.mac_address.clone())),
        ("Accept", Secret::new("application/json")),
        ("Content-Type", Secret::new("application/json")),
    ]
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default()
        .to_string()
}

/// Maps `data` (`jwtToken`, `refreshToken`, `feedToken`) obtained at `now`
/// from `api_root`. The jwtToken comes without `Bearer ` (a prefix is
/// dropped should one appear).
pub fn map(
    cfg: &AngelOneConfig,
    api_root: &str,
    data: &Value,
    now: DateTime<Utc>,
) -> Result<AngelSession, BrokerError> {
    let raw = text(data, "jwtToken");
    let jwt_token = raw
        .strip_prefix("Bearer ")
        .unwrap_or(&raw)
        .trim()
        .to_string();
    if jwt_token.is_empty() {
        return Err(BrokerError::Transient(
            "Angel One answered success without a jwtToken".into(),
        ));
    }
    let feed_token = text(data, "feedToken");
    let refresh = text(data, "refreshToken");
    let expires_at = jwt::expiry(&jwt_token).unwrap_or_else(|| {
        let fallback = chrono::Duration::from_std(cfg.lifetime_fallback)
            .unwrap_or(chrono::Duration::hours(24));
        tracing::warn!(
            client_code = %cfg.client_code,
            "the jwtToken has no readable exp; assuming it lives {}",
            humantime::format_duration(cfg.lifetime_fallback)
        );
        now + fallback
    });
    let mut headers: BTreeMap<String, Secret> = common_headers(cfg)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    headers.insert(
        "Authorization".into(),
        Secret::new(format!("Bearer {jwt_token}")),
    );
    let mut fields = serde_json::Map::new();
    fields.insert("api_root".into(), json!(api_root));
    fields.insert("client_code".into(), json!(cfg.client_code));
    // Public: it is in every publisher-login URL, and the SDKs and the
    // WebSockets need it (`SmartConnect(api_key=…)`, `x-api-key`).
    fields.insert("api_key".into(), json!(cfg.api_key.expose()));
    // The market-data WebSocket's `x-feed-token`; a session value, renewed
    // with the jwtToken, not a credential of the account.
    fields.insert("feed_token".into(), json!(feed_token));
    let refresh_token = Some(refresh).filter(|r| !r.is_empty()).map(Secret::new);
    let private = refresh_token
        .iter()
        .map(|r| (REFRESH_TOKEN.to_string(), r.clone()))
        .collect();
    Ok(AngelSession {
        session: NewSession {
            material: Material {
                token: Secret::new(jwt_token),
                headers,
                fields,
                private,
            },
            meta: SessionMeta {
                expires_at,
                obtained_at: now,
                user_id: Some(cfg.client_code.clone()),
                app_expiry: None,
            },
        },
        refresh_token,
    })
}
