//! Breeze's settings: what `[account.breeze]` becomes, and the rules of its
//! two URL keys.

use std::time::Duration;

use chrono::NaiveTime;

use crate::brokers::reminder::Reminder;
use crate::brokers::url_rule::UrlRule;
use crate::secret::Secret;

/// `[account.breeze]`: ICICI Breeze app and its session limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreezeConfig {
    /// REST v1 base without trailing slash (default
    /// `https://api.icicidirect.com/breezeapi/api/v1`).
    pub api_root: String,
    /// Browser login root without trailing slash (default
    /// `https://api.icicidirect.com/apiuser`); the login URL is
    /// `{login_root}/login?api_key=<URL-encoded app key>`.
    pub login_root: String,
    /// The app key (`X-AppKey`, `AppKey`).
    pub app_key: Secret,
    /// The app's secret key; only ever used inside `X-Checksum`.
    pub secret_key: Secret,
    /// The ICICI user id (`idirect_userid`) this account must log in as.
    /// `None`: not checked.
    pub user_id: Option<String>,
    /// Daily cut-off (Asia/Kolkata), default 00:00.
    pub cutoff: NaiveTime,
    /// Longest session life, default 24 h; the earlier of this and the
    /// cut-off ends a session.
    pub max_lifetime: Duration,
    /// Reminder and expiry notice.
    pub reminder: Reminder,
}

/// `[account.breeze] api_root`: Breeze's REST v1 base.
pub const API_ROOT: UrlRule = UrlRule {
    table: "breeze",
    name: "api_root",
    default: "https://api.icicidirect.com/breezeapi/api/v1",
    path: "/breezeapi/api/v1",
    appends: "/customerdetails and /funds",
    sdk: "breeze_connect's API_URL is https://api.icicidirect.com/breezeapi/api/v1/",
    carries: "the app key, session keys and session tokens",
    websocket: false,
};

/// `[account.breeze] login_root`: where the browser login page lives.
pub const LOGIN_ROOT: UrlRule = UrlRule {
    table: "breeze",
    name: "login_root",
    default: "https://api.icicidirect.com/apiuser",
    path: "/apiuser",
    appends: "/login?api_key=...",
    sdk: "the SDKs' login link is https://api.icicidirect.com/apiuser/login?api_key=...; \
          brokerd adds the /login part itself",
    carries: "the app key",
    websocket: false,
};
