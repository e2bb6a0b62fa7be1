//! Raw → public conversion of `[account.zerodha]` and `[account.breeze]`:
//! hosts, the app credentials (resolved, never shown), the user id to
//! insist on, the daily cut-off and the reminder.

use std::time::Duration;

use chrono::NaiveTime;
use toml::Value;

use super::check::{Check, join};
use super::raw::{RawBreeze, RawZerodha};
use super::urls::{
    BREEZE_API_ROOT, BREEZE_LOGIN_ROOT, ZERODHA_API_ROOT, ZERODHA_LOGIN_ROOT, ZERODHA_TICKER_ROOT,
    broker_url,
};
use super::{BreezeConfig, Reminder, ZerodhaConfig};

/// Kite's documented daily expiry.
const ZERODHA_CUTOFF: (u32, u32) = (6, 0);
/// Breeze sessions end at midnight IST or after 24 h, whichever is first.
const BREEZE_CUTOFF: (u32, u32) = (0, 0);
const BREEZE_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Before the market opens at 09:15 IST.
const DEFAULT_REMIND_AT: (u32, u32) = (8, 30);
const DEFAULT_EXPIRING_NOTICE: Duration = Duration::from_secs(30 * 60);

/// `[account.zerodha]`; `None` when anything in it is wrong.
pub(super) fn zerodha(c: &mut Check<'_>, value: Value, key: &str) -> Option<ZerodhaConfig> {
    let raw: RawZerodha = c.table(Some(value), key, "an [account.zerodha] section")?;
    let before = c.problem_count();
    let api_root = broker_url(c, raw.api_root, &join(key, "api_root"), &ZERODHA_API_ROOT);
    let login_root = broker_url(
        c,
        raw.login_root,
        &join(key, "login_root"),
        &ZERODHA_LOGIN_ROOT,
    );
    let ticker_root = broker_url(
        c,
        raw.ticker_root,
        &join(key, "ticker_root"),
        &ZERODHA_TICKER_ROOT,
    );
    let api_key = c.secret(raw.api_key, &join(key, "api_key"));
    let api_secret = c.secret(raw.api_secret, &join(key, "api_secret"));
    let user_id = user_id(c, raw.user_id, &join(key, "user_id"));
    let cutoff = time_of_day(c, raw.cutoff, &join(key, "cutoff"), Some(ZERODHA_CUTOFF));
    let reminder = reminder(c, raw.remind_at, raw.expiring_notice, key);
    (c.problem_count() == before).then_some(())?;
    Some(ZerodhaConfig {
        api_root,
        login_root,
        ticker_root,
        api_key: api_key?,
        api_secret: api_secret?,
        user_id,
        cutoff: cutoff?,
        reminder,
    })
}

/// `[account.breeze]`; `None` when anything in it is wrong.
pub(super) fn breeze(c: &mut Check<'_>, value: Value, key: &str) -> Option<BreezeConfig> {
    let raw: RawBreeze = c.table(Some(value), key, "an [account.breeze] section")?;
    let before = c.problem_count();
    let api_root = broker_url(c, raw.api_root, &join(key, "api_root"), &BREEZE_API_ROOT);
    let login_root = broker_url(
        c,
        raw.login_root,
        &join(key, "login_root"),
        &BREEZE_LOGIN_ROOT,
    );
    let app_key = c.secret(raw.app_key, &join(key, "app_key"));
    let secret_key = c.secret(raw.secret_key, &join(key, "secret_key"));
    let user_id = user_id(c, raw.user_id, &join(key, "user_id"));
    let cutoff = time_of_day(c, raw.cutoff, &join(key, "cutoff"), Some(BREEZE_CUTOFF));
    let lifetime_key = join(key, "max_lifetime");
    let max_lifetime = c.duration(raw.max_lifetime, &lifetime_key, BREEZE_MAX_LIFETIME);
    c.nonzero(max_lifetime, &lifetime_key, "\"24h\"");
    let reminder = reminder(c, raw.remind_at, raw.expiring_notice, key);
    (c.problem_count() == before).then_some(())?;
    Some(BreezeConfig {
        api_root,
        login_root,
        app_key: app_key?,
        secret_key: secret_key?,
        user_id,
        cutoff: cutoff?,
        max_lifetime,
        reminder,
    })
}

fn reminder(
    c: &mut Check<'_>,
    remind_at: Option<Value>,
    notice: Option<Value>,
    key: &str,
) -> Reminder {
    // `remind_at = ""` switches the reminder off.
    let remind_key = join(key, "remind_at");
    let remind_at = match &remind_at {
        Some(Value::String(s)) if s.is_empty() => None,
        _ => time_of_day(c, remind_at, &remind_key, Some(DEFAULT_REMIND_AT)),
    };
    let expiring_notice = c.duration(
        notice,
        &join(key, "expiring_notice"),
        DEFAULT_EXPIRING_NOTICE,
    );
    Reminder {
        remind_at,
        expiring_notice,
    }
}

/// A wall-clock time in Asia/Kolkata, "HH:MM" or "HH:MM:SS".
fn time_of_day(
    c: &mut Check<'_>,
    value: Option<Value>,
    key: &str,
    default: Option<(u32, u32)>,
) -> Option<NaiveTime> {
    let Some(text) = c.string(value, key) else {
        return default.and_then(|(h, m)| NaiveTime::from_hms_opt(h, m, 0));
    };
    let parsed = NaiveTime::parse_from_str(&text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(&text, "%H:%M"));
    match parsed {
        Ok(t) => Some(t),
        Err(_) => {
            c.problem(
                key,
                format!("{text:?} is not a time of day"),
                "write a 24-hour Asia/Kolkata time such as \"06:00\" or \"08:30:00\"",
            );
            None
        }
    }
}

fn user_id(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<String> {
    let id = c.string(value, key)?;
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        c.problem(
            key,
            format!("{id:?} is not a broker user id"),
            "write the user id the broker shows after login (letters and digits), or remove the key",
        );
        return None;
    }
    Some(id)
}
