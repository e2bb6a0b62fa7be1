//! Kotak Neo settings: what `[account.kotak_neo]` becomes, and the rule of
//! its URL key.

use std::time::Duration;

use crate::brokers::url_rule::UrlRule;
use crate::secret::Secret;

/// `[account.kotak_neo]`: Kotak Neo Trade API settings and credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KotakNeoConfig {
    /// Host of the two login calls, without trailing slash (default
    /// `https://mis.kotaksecurities.com`). Later calls go to the `baseUrl`
    /// the login returns.
    pub login_host: String,
    /// The API access token from the Neo app's Trade API dashboard (the
    /// SDK's `consumer_key`), sent raw as `Authorization`.
    pub access_token: Secret,
    /// The registered mobile number, always `+91` and 10 digits.
    pub mobile: String,
    /// The client code (UCC): 1 to 10 ASCII letters and digits, uppercase.
    pub ucc: String,
    /// The 6-digit login MPIN (checked to be exactly 6 ASCII digits).
    pub mpin: Secret,
    /// The TOTP seed as written (base32, checked to decode to at least 10
    /// bytes); [`KotakNeoConfig::totp_key`] gives the decoded key.
    pub totp_seed: Secret,
    /// When fewer than this remain in the current 30 s TOTP window, wait
    /// for the next window before logging in. Below 25 s.
    pub totp_min_remaining: Duration,
    /// Warn when the local clock and the broker's `Date` header differ by
    /// more than this (TOTP codes depend on the clock). At least 1 s.
    pub clock_skew_warning: Duration,
    /// The `neo-fin-key` header value.
    pub neo_fin_key: String,
}

impl KotakNeoConfig {
    /// The TOTP key: `totp_seed` decoded from base32 (RFC 4648; case,
    /// whitespace and `=` padding ignored), the HMAC-SHA1 key of the codes.
    /// `None` only for a seed that did not come through validation.
    pub fn totp_key(&self) -> Option<Vec<u8>> {
        crate::brokers::totp_seed::decode_base32(self.totp_seed.expose())
    }
}

/// `[account.kotak_neo] login_host`: the host of the two login calls.
pub const LOGIN_HOST: UrlRule = UrlRule {
    table: "kotak_neo",
    name: "login_host",
    default: "https://mis.kotaksecurities.com",
    path: "",
    appends: "/login/1.0/tradeApiLogin and /login/1.0/tradeApiValidate",
    sdk: "the Neo SDK posts to https://mis.kotaksecurities.com/login/1.0/tradeApiLogin",
    carries: "the access token, MPIN, TOTP codes and session tokens",
    websocket: false,
};
