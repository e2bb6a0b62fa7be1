//! The settings of the two brokers that need a person to log in in a browser
//! every day: Zerodha Kite and ICICI Breeze.

use std::time::Duration;

use chrono::NaiveTime;

use crate::secret::Secret;

/// When to remind the operator of an interactive account's daily login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reminder {
    /// Time of day (Asia/Kolkata) at which an account still waiting for its
    /// browser login is announced again (`auth_required` event and
    /// `notify_command`), e.g. before the market opens. `None`: no reminder.
    pub remind_at: Option<NaiveTime>,
    /// How long before a session's cut-off the `expiring` event is sent.
    pub expiring_notice: Duration,
}

/// `[account.zerodha]`: Kite Connect v3 app and its daily cut-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZerodhaConfig {
    /// REST root without trailing slash (default `https://api.kite.trade`),
    /// or `"simulator"` for the bundled Kite simulator.
    pub api_root: String,
    /// Browser login root without trailing slash (default
    /// `https://kite.zerodha.com`); the login URL is
    /// `{login_root}/connect/login?v=3&api_key=...`. `"simulator"` too.
    pub login_root: String,
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

/// `[account.breeze]`: ICICI Breeze app and its session limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreezeConfig {
    /// REST v1 base without trailing slash (default
    /// `https://api.icicidirect.com/breezeapi/api/v1`), or `"simulator"`.
    pub api_root: String,
    /// Browser login root without trailing slash (default
    /// `https://api.icicidirect.com/apiuser`); the login URL is
    /// `{login_root}/login?api_key=<URL-encoded app key>`. `"simulator"` too.
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
