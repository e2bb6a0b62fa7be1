//! Jainam (XTS) settings: what `[account.jainam]` becomes, and the rule of
//! its URL key.

use std::time::Duration;

use crate::brokers::url_rule::UrlRule;
use crate::secret::Secret;

/// `[account.jainam]`: Jainam (Symphony XTS) settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JainamConfig {
    /// Server root without trailing slash, e.g. `https://jtrade.jainam.in:5000`.
    pub root: String,
    /// Path prefix of the market-data API, starting with `/`.
    pub market_prefix: String,
    /// `source` sent at login.
    pub source: String,
    /// App key pair of the interactive (trading) API.
    pub interactive: Option<AppKeyPair>,
    /// App key pair of the market-data API. At least one of the two is set.
    pub market: Option<AppKeyPair>,
    /// Dealer ("Pro") logins: the client code sent as `clientID`.
    pub client_id: Option<String>,
    /// Lifetime assumed for a token without an `exp` claim.
    pub fallback_lifetime: Duration,
    /// Warn when the app key's `application_expiry_date` is nearer than this.
    pub app_expiry_warning: Duration,
}

/// An app key and its secret, resolved. `Debug` masks both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppKeyPair {
    /// The app key.
    pub app_key: Secret,
    /// The secret key.
    pub secret_key: Secret,
}

/// `[account.jainam] root`: the XTS server; brokerd appends `/interactive`
/// and `market_prefix`.
pub const ROOT: UrlRule = UrlRule {
    table: "jainam",
    name: "root",
    default: "https://jtrade.jainam.in:5000",
    path: "",
    appends: "/interactive/... and market_prefix",
    sdk: "the XTS SDK's root (config.ini), https://jtrade.jainam.in:5000 for Jainam retail",
    carries: "app keys and tokens",
    websocket: false,
};
