//! Kite Connect's settings: what `[account.zerodha]` becomes, and the rules
//! of its three URL keys.

use chrono::NaiveTime;

use crate::brokers::reminder::Reminder;
use crate::brokers::url_rule::UrlRule;
use crate::secret::Secret;

/// `[account.zerodha]`: Kite Connect v3 app and its daily cut-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZerodhaConfig {
    /// REST root without trailing slash (default `https://api.kite.trade`).
    pub api_root: String,
    /// Browser login root without trailing slash (default
    /// `https://kite.zerodha.com`); the login URL is
    /// `{login_root}/connect/login?v=3&api_key=...`.
    pub login_root: String,
    /// KiteTicker's websocket root without trailing slash (default
    /// `wss://ws.kite.trade`). brokerd never connects to it: it goes into
    /// every session's `fields` as `ticker_root`, for the programs' tickers.
    pub ticker_root: String,
    /// The Kite Connect app's `api_key`.
    pub api_key: Secret,
    /// The app's `api_secret`; only ever used inside the checksum.
    pub api_secret: Secret,
    /// The Kite user id this account must log in as; a browser login as
    /// anyone else is refused. `None`: not checked.
    pub user_id: Option<String>,
    /// Daily cut-off (Asia/Kolkata) at which Kite sessions end (default 06:00).
    pub cutoff: NaiveTime,
    /// Reminder and expiry notice.
    pub reminder: Reminder,
}

/// `[account.zerodha] api_root`: Kite Connect's REST root.
pub const API_ROOT: UrlRule = UrlRule {
    table: "zerodha",
    name: "api_root",
    default: "https://api.kite.trade",
    path: "",
    appends: "/session/token and /user/profile",
    sdk: "pykiteconnect's _default_root_uri is https://api.kite.trade",
    carries: "the app key, request tokens and session tokens",
    websocket: false,
};

/// `[account.zerodha] login_root`: where the browser login page lives.
pub const LOGIN_ROOT: UrlRule = UrlRule {
    table: "zerodha",
    name: "login_root",
    default: "https://kite.zerodha.com",
    path: "",
    appends: "/connect/login",
    sdk: "pykiteconnect's _default_login_uri is https://kite.zerodha.com/connect/login; \
          brokerd adds the /connect/login part itself",
    carries: "the app key",
    websocket: false,
};

/// `[account.zerodha] ticker_root`: KiteTicker's websocket host, handed on
/// in the session's `fields` (brokerd itself never connects to it).
pub const TICKER_ROOT: UrlRule = UrlRule {
    table: "zerodha",
    name: "ticker_root",
    default: "wss://ws.kite.trade",
    path: "",
    appends: "nothing (the programs' KiteTicker adds ?api_key=..&access_token=..)",
    sdk: "pykiteconnect's KiteTicker ROOT_URI is wss://ws.kite.trade",
    carries: "the app key and the session token (in the programs' ticker URL)",
    websocket: true,
};
