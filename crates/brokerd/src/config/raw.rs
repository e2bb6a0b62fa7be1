//! The file's shape as serde sees it: which keys exist in which table.
//!
//! Every leaf is a `toml::Value` and every sub-table is read separately, so
//! serde only enforces the key names (`deny_unknown_fields`) and validation
//! does the typing. That lets one run report every problem with its exact
//! key path, instead of stopping at the first type error, and keeps secret
//! values out of serde's "invalid type: string \"...\"" messages.
//!
//! No `Debug` here on purpose: these structs hold literal secrets verbatim.

use serde::Deserialize;
use toml::Value;

/// The whole file.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    /// `[daemon]`, read as [`RawDaemon`].
    pub daemon: Option<Value>,
    /// `[simulator]`: refused with a pointer to brokerd-demo, which reads it.
    pub simulator: Option<Value>,
    /// `[[account]]`, each read as [`RawAccount`].
    pub account: Option<Value>,
    /// `[callback]`, read as [`RawCallback`].
    pub callback: Option<Value>,
    /// `[http]`, read as [`RawHttp`].
    pub http: Option<Value>,
}

/// `[http]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub listen: Option<Value>,
}

/// `[callback]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCallback {
    pub listen: Option<Value>,
    pub public_url: Option<Value>,
}

/// `[daemon]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDaemon {
    pub socket: Option<Value>,
    pub socket_mode: Option<Value>,
    pub socket_group: Option<Value>,
    pub allowed_uids: Option<Value>,
    pub allowed_gids: Option<Value>,
    pub state_dir: Option<Value>,
    pub database_url: Option<Value>,
    pub key: Option<Value>,
    pub create_key_if_missing: Option<Value>,
    pub log_format: Option<Value>,
    pub audit_retention: Option<Value>,
    pub audit_max_rows: Option<Value>,
    pub notify_command: Option<Value>,
    pub notify_timeout: Option<Value>,
    /// `[daemon.limits]`, read as [`RawLimits`].
    pub limits: Option<Value>,
    /// `[daemon.pacing.<broker>]`, read by `pacing.rs`.
    pub pacing: Option<Value>,
    /// `[daemon.ha]`, read by `ha.rs`.
    pub ha: Option<Value>,
}

/// `[daemon.limits]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_line_bytes: Option<Value>,
    pub max_connections: Option<Value>,
    pub max_connections_per_uid: Option<Value>,
    pub idle_timeout: Option<Value>,
    pub write_timeout: Option<Value>,
    pub heartbeat: Option<Value>,
    pub default_wait: Option<Value>,
    pub max_wait: Option<Value>,
    pub login_timeout: Option<Value>,
    pub shutdown_grace: Option<Value>,
}

/// One `[[account]]`. The session-policy keys sit flat on the account table;
/// they are not a `#[serde(flatten)]` struct because flatten and
/// `deny_unknown_fields` do not work together.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub broker: Option<Value>,
    pub name: Option<Value>,
    pub allowed_uids: Option<Value>,
    pub allowed_gids: Option<Value>,
    pub refresh_margin: Option<Value>,
    pub refresh_jitter: Option<Value>,
    pub min_valid: Option<Value>,
    pub backoff_initial: Option<Value>,
    pub backoff_max: Option<Value>,
    pub conflict_window: Option<Value>,
    pub conflict_threshold: Option<Value>,
    pub conflict_cooldown: Option<Value>,
    pub login_at_start: Option<Value>,
    pub min_login_interval: Option<Value>,
    pub max_logins_per_hour: Option<Value>,
    /// `[account.jainam]`, read as [`RawJainam`].
    pub jainam: Option<Value>,
    /// `[account.kotak_neo]`, read as [`RawKotakNeo`].
    pub kotak_neo: Option<Value>,
    /// `[account.zerodha]`, read as [`RawZerodha`].
    pub zerodha: Option<Value>,
    /// `[account.breeze]`, read as [`RawBreeze`].
    pub breeze: Option<Value>,
    /// `[account.angel_one]`, read as [`RawAngelOne`].
    pub angel_one: Option<Value>,
}

/// `[account.jainam]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJainam {
    pub root: Option<Value>,
    pub market_prefix: Option<Value>,
    pub source: Option<Value>,
    /// `[account.jainam.interactive]`, read as [`RawAppKeyPair`].
    pub interactive: Option<Value>,
    /// `[account.jainam.market]`, read as [`RawAppKeyPair`].
    pub market: Option<Value>,
    pub client_id: Option<Value>,
    pub fallback_lifetime: Option<Value>,
    pub app_expiry_warning: Option<Value>,
}

/// `[account.jainam.interactive]` or `[account.jainam.market]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAppKeyPair {
    pub app_key: Option<Value>,
    pub secret_key: Option<Value>,
}

/// `[account.kotak_neo]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKotakNeo {
    pub login_host: Option<Value>,
    pub access_token: Option<Value>,
    pub mobile: Option<Value>,
    pub ucc: Option<Value>,
    pub mpin: Option<Value>,
    pub totp_seed: Option<Value>,
    pub totp_min_remaining: Option<Value>,
    pub clock_skew_warning: Option<Value>,
    pub neo_fin_key: Option<Value>,
}

/// `[account.angel_one]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAngelOne {
    pub api_root: Option<Value>,
    pub api_key: Option<Value>,
    pub client_code: Option<Value>,
    pub pin: Option<Value>,
    pub totp_seed: Option<Value>,
    pub totp_min_remaining: Option<Value>,
    pub lifetime_fallback: Option<Value>,
    pub local_ip: Option<Value>,
    pub public_ip: Option<Value>,
    pub mac_address: Option<Value>,
    pub renew_checksum: Option<Value>,
    pub login_ends_previous: Option<Value>,
}

/// `[account.zerodha]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZerodha {
    pub api_root: Option<Value>,
    pub login_root: Option<Value>,
    pub ticker_root: Option<Value>,
    pub api_key: Option<Value>,
    pub api_secret: Option<Value>,
    pub user_id: Option<Value>,
    pub cutoff: Option<Value>,
    pub remind_at: Option<Value>,
    pub expiring_notice: Option<Value>,
}

/// `[account.breeze]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBreeze {
    pub api_root: Option<Value>,
    pub login_root: Option<Value>,
    pub app_key: Option<Value>,
    pub secret_key: Option<Value>,
    pub user_id: Option<Value>,
    pub cutoff: Option<Value>,
    pub max_lifetime: Option<Value>,
    pub remind_at: Option<Value>,
    pub expiring_notice: Option<Value>,
}
