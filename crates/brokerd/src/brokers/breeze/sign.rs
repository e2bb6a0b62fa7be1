//! Breeze request signing: `X-Checksum` and `X-Timestamp`, and the login URL.
//! The rule (from the official SDKs): `X-Checksum: token <hex(SHA-256(
//! timestamp + body + secret_key))>`, the body byte for byte as sent.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::BreezeConfig;

/// `{login_root}/login?api_key=<URL-encoded app key>`. App keys contain
/// `+ = ^ # %`, so the key is always form-encoded (by `reqwest::Url`).
pub fn login_url(cfg: &BreezeConfig) -> String {
    // Encode through a throwaway URL so the root itself (which may not
    // parse, or carry its own path) is used verbatim.
    let query = reqwest::Url::parse_with_params(
        "http://encode.invalid/",
        [("api_key", cfg.app_key.expose())],
    )
    .ok()
    .and_then(|u| u.query().map(str::to_string))
    .unwrap_or_default();
    format!("{}/login?{query}", cfg.login_root.trim_end_matches('/'))
}

/// UTC, seconds precision, millis forced to zero: `2026-11-24T09:15:07.000Z`.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
}

/// `"token " + lowercase hex SHA-256 of timestamp + body + secret_key`.
fn checksum(timestamp: &str, body: &str, secret_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(timestamp.as_bytes());
    h.update(body.as_bytes());
    h.update(secret_key.as_bytes());
    format!("token {}", hex::encode(h.finalize()))
}

/// The headers of one signed request, in this order: `X-Checksum`,
/// `X-Timestamp`, `X-AppKey`, `X-SessionToken`, `Content-Type`. `body` must
/// be exactly the bytes sent (`{}` for a call without parameters).
pub fn sign(
    app_key: &str,
    secret_key: &str,
    session_token: &str,
    body: &str,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let ts = timestamp(now);
    vec![
        ("X-Checksum", checksum(&ts, body, secret_key)),
        ("X-Timestamp", ts),
        ("X-AppKey", app_key.to_string()),
        ("X-SessionToken", session_token.to_string()),
        ("Content-Type", "application/json".to_string()),
    ]
}
