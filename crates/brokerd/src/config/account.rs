//! Raw → public conversion of the `[[account]]` tables: identity, session
//! policy and the broker table, with the secrets resolved.

use std::collections::BTreeMap;
use std::time::Duration;

use humantime::format_duration;
use toml::Value;

use super::angel_one::angel_one;
use super::check::{Check, join};
use super::interactive_check::{breeze, zerodha};
use super::kotak_neo::kotak_neo;
use super::raw::{RawAccount, RawAppKeyPair, RawJainam};
use super::urls::{JAINAM_ROOT, broker_url};
use super::{AccountConfig, AppKeyPair, JainamConfig, SessionPolicy};
use crate::brokers::BrokerId;

const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(10 * 60);
const DEFAULT_REFRESH_JITTER: Duration = Duration::from_secs(60);
const DEFAULT_MIN_VALID: Duration = Duration::from_secs(30);
const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);
const DEFAULT_CONFLICT_WINDOW: Duration = Duration::from_secs(60);
const DEFAULT_CONFLICT_THRESHOLD: u64 = 3;
const DEFAULT_CONFLICT_COOLDOWN: Duration = Duration::from_secs(15 * 60);
const DEFAULT_LOGIN_AT_START: bool = true;
const DEFAULT_MIN_LOGIN_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_MAX_LOGINS_PER_HOUR: u64 = 20;

const DEFAULT_JAINAM_MARKET_PREFIX: &str = "/apibinarymarketdata";
const DEFAULT_JAINAM_SOURCE: &str = "WEBAPI";
const DEFAULT_JAINAM_FALLBACK_LIFETIME: Duration = Duration::from_secs(8 * 3600);
const DEFAULT_JAINAM_APP_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

const MAX_NAME_LEN: usize = 32;

/// Reads every `[[account]]`; also checks what only shows across accounts
/// (duplicate names, an app key shared by two sessions, one Kotak client
/// code in two accounts).
pub(super) fn accounts(c: &mut Check<'_>, value: Option<Value>) -> Vec<AccountConfig> {
    let items = match value {
        None => {
            c.warn(
                "account",
                "no [[account]] tables: the daemon will start but serve no sessions",
            );
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(other) => {
            c.wrong_type(
                "account",
                "an array of tables",
                &other,
                "write each account as its own [[account]] section (double brackets)",
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    // (broker, name) → key of the account that claimed it first.
    let mut names: BTreeMap<(BrokerId, String), String> = BTreeMap::new();
    // app key → key of its first use. An XTS login with an app key ends the
    // previous session of that key, so two slots sharing one would log each
    // other out forever (exactly the storm the daemon exists to prevent).
    let mut app_keys: BTreeMap<String, String> = BTreeMap::new();
    // Kotak client code → key of its first use. Two slots logging into one
    // Kotak account is the conflict brokerd exists to prevent: each would
    // renew its own session, and TOTP/MPIN attempts would double.
    let mut uccs: BTreeMap<String, String> = BTreeMap::new();
    // Angel One client code → key of its first use, for the same reason
    // (and two TOTP gates on one seed would reuse each other's windows).
    let mut angel_codes: BTreeMap<String, String> = BTreeMap::new();
    for (i, item) in items.into_iter().enumerate() {
        let key = format!("account[{i}]");
        let Some(account) = account(c, item, &key) else {
            continue;
        };
        let name_key = (account.broker, account.name.clone());
        if let Some(first) = names.get(&name_key) {
            c.problem(
                format!("{key}.name"),
                format!(
                    "account {}/{} is already defined by {first}",
                    account.broker, account.name
                ),
                "give each [[account]] of a broker its own name, or delete the duplicate",
            );
        } else {
            names.insert(name_key, key.clone());
        }
        if let Some(j) = &account.jainam {
            let pairs = [("interactive", &j.interactive), ("market", &j.market)];
            for (api, pair) in pairs {
                let Some(pair) = pair else { continue };
                let here = format!("{key}.jainam.{api}.app_key");
                let value = pair.app_key.expose().to_string();
                if let Some(first) = app_keys.get(&value) {
                    c.problem(
                        here,
                        format!("the same app key is used by {first}"),
                        "every session needs its own app key: a login with a key ends the other \
                         session using it; remove the duplicate account or use the right key",
                    );
                } else {
                    app_keys.insert(value, here);
                }
            }
        }
        if let Some(k) = &account.kotak_neo {
            let here = format!("{key}.kotak_neo.ucc");
            if let Some(first) = uccs.get(&k.ucc) {
                c.problem(
                    here,
                    format!("the same client code (UCC) is used by {first}"),
                    "configure each Kotak login once: two accounts logging into one client code \
                     would fight over its sessions; remove the duplicate or correct the ucc",
                );
            } else {
                uccs.insert(k.ucc.clone(), here);
            }
        }
        if let Some(a) = &account.angel_one {
            let here = format!("{key}.angel_one.client_code");
            if let Some(first) = angel_codes.get(&a.client_code) {
                c.problem(
                    here,
                    format!("the same client code is used by {first}"),
                    "configure each Angel One login once: two accounts logging into one client \
                     code would fight over its sessions and TOTP windows; remove the duplicate \
                     or correct the client_code",
                );
            } else {
                angel_codes.insert(a.client_code.clone(), here);
            }
        }
        out.push(account);
    }
    out
}

/// One account; `None` when it cannot be built (its problems are recorded).
fn account(c: &mut Check<'_>, value: Value, key: &str) -> Option<AccountConfig> {
    let mut raw: RawAccount = c.table(Some(value), key, "an [[account]] section")?;

    // `named`: the broker the account names, if brokerd knows it.
    let broker_key = join(key, "broker");
    let named = c
        .required_string(raw.broker.take(), &broker_key, "broker = \"jainam\"")
        .and_then(|text| {
            let parsed = BrokerId::parse(&text);
            if parsed.is_none() {
                c.problem(
                    &broker_key,
                    format!("unknown broker {text:?}"),
                    "use one of \"jainam\", \"kotak_neo\", \"zerodha\", \"breeze\", \"angel_one\"",
                );
            }
            parsed
        });
    let broker = named;

    let name_key = join(key, "name");
    let name = c
        .required_string(raw.name.take(), &name_key, "name = \"main\"")
        .filter(|n| {
            let ok = valid_name(n);
            if !ok {
                c.problem(
                    &name_key,
                    format!("{n:?} is not a valid account name"),
                    format!(
                        "use 1 to {MAX_NAME_LEN} characters from a-z, 0-9, _ and -, e.g. \"main\""
                    ),
                );
            }
            ok
        });

    let allowed_uids = c.ids(raw.allowed_uids.take(), &join(key, "allowed_uids"));
    let allowed_gids = c.ids(raw.allowed_gids.take(), &join(key, "allowed_gids"));
    let policy = policy(c, &mut raw, key);

    // Broker tables: only the one of this account's broker. Nothing is said
    // about them when the broker itself is missing or unknown: that problem
    // is already recorded and follow-ups would only bury it.
    let tables = [
        (BrokerId::KotakNeo, raw.kotak_neo.is_some()),
        (BrokerId::Zerodha, raw.zerodha.is_some()),
        (BrokerId::Breeze, raw.breeze.is_some()),
        (BrokerId::Jainam, raw.jainam.is_some()),
        (BrokerId::AngelOne, raw.angel_one.is_some()),
    ];
    if let Some(named) = named {
        for (b, present) in tables {
            if present && b != named {
                c.problem(
                    join(key, b.as_str()),
                    format!(
                        "[account.{b}] is only for broker = \"{b}\", but this account's broker is {named}"
                    ),
                    format!("remove the table, or set broker = \"{b}\""),
                );
            }
        }
    }
    let jainam = match (broker, raw.jainam) {
        (Some(BrokerId::Jainam), Some(table)) => jainam(c, table, &join(key, "jainam"), &policy),
        (Some(BrokerId::Jainam), None) => {
            c.problem(
                join(key, "jainam"),
                "broker = \"jainam\" needs an [account.jainam] table",
                "add [account.jainam] with an [account.jainam.interactive] and/or \
                 [account.jainam.market] app key pair after this [[account]]",
            );
            None
        }
        _ => None,
    };
    let kotak_neo = match (broker, raw.kotak_neo) {
        (Some(BrokerId::KotakNeo), Some(table)) => kotak_neo(c, table, &join(key, "kotak_neo")),
        (Some(BrokerId::KotakNeo), None) => {
            c.problem(
                join(key, "kotak_neo"),
                "broker = \"kotak_neo\" needs an [account.kotak_neo] table",
                "add [account.kotak_neo] with access_token, mobile, ucc, mpin and totp_seed \
                 after this [[account]] (config/brokerd.example.toml shows one)",
            );
            None
        }
        _ => None,
    };

    let zerodha = match (broker, raw.zerodha) {
        (Some(BrokerId::Zerodha), Some(table)) => zerodha(c, table, &join(key, "zerodha")),
        (Some(BrokerId::Zerodha), None) => {
            c.problem(
                join(key, "zerodha"),
                "broker = \"zerodha\" needs an [account.zerodha] table",
                "add [account.zerodha] with api_key and api_secret after this [[account]] \
                 (config/brokerd.example.toml shows one)",
            );
            None
        }
        _ => None,
    };
    let breeze = match (broker, raw.breeze) {
        (Some(BrokerId::Breeze), Some(table)) => breeze(c, table, &join(key, "breeze")),
        (Some(BrokerId::Breeze), None) => {
            c.problem(
                join(key, "breeze"),
                "broker = \"breeze\" needs an [account.breeze] table",
                "add [account.breeze] with app_key and secret_key after this [[account]] \
                 (config/brokerd.example.toml shows one)",
            );
            None
        }
        _ => None,
    };

    let angel_one = match (broker, raw.angel_one) {
        (Some(BrokerId::AngelOne), Some(table)) => angel_one(c, table, &join(key, "angel_one")),
        (Some(BrokerId::AngelOne), None) => {
            c.problem(
                join(key, "angel_one"),
                "broker = \"angel_one\" needs an [account.angel_one] table",
                "add [account.angel_one] with api_key, client_code, pin and totp_seed after \
                 this [[account]] (config/brokerd.example.toml shows one)",
            );
            None
        }
        _ => None,
    };

    let broker = broker?;
    let has_table = match broker {
        BrokerId::Jainam => jainam.is_some(),
        BrokerId::KotakNeo => kotak_neo.is_some(),
        BrokerId::Zerodha => zerodha.is_some(),
        BrokerId::Breeze => breeze.is_some(),
        BrokerId::AngelOne => angel_one.is_some(),
    };
    if !has_table {
        return None;
    }
    Some(AccountConfig {
        broker,
        name: name?,
        allowed_uids,
        allowed_gids,
        policy,
        jainam,
        kotak_neo,
        zerodha,
        breeze,
        angel_one,
    })
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The flat session-policy keys of an `[[account]]`, taken out of `raw`.
fn policy(c: &mut Check<'_>, raw: &mut RawAccount, key: &str) -> SessionPolicy {
    let d = |c: &mut Check<'_>, v: &mut Option<Value>, name: &str, default: Duration| {
        c.duration(v.take(), &join(key, name), default)
    };
    let refresh_margin = d(
        c,
        &mut raw.refresh_margin,
        "refresh_margin",
        DEFAULT_REFRESH_MARGIN,
    );
    let refresh_jitter = d(
        c,
        &mut raw.refresh_jitter,
        "refresh_jitter",
        DEFAULT_REFRESH_JITTER,
    );
    let min_valid = d(c, &mut raw.min_valid, "min_valid", DEFAULT_MIN_VALID);
    let backoff_initial = d(
        c,
        &mut raw.backoff_initial,
        "backoff_initial",
        DEFAULT_BACKOFF_INITIAL,
    );
    let backoff_max = d(c, &mut raw.backoff_max, "backoff_max", DEFAULT_BACKOFF_MAX);
    let conflict_window = d(
        c,
        &mut raw.conflict_window,
        "conflict_window",
        DEFAULT_CONFLICT_WINDOW,
    );
    let conflict_cooldown = d(
        c,
        &mut raw.conflict_cooldown,
        "conflict_cooldown",
        DEFAULT_CONFLICT_COOLDOWN,
    );
    let conflict_threshold = c.uint(
        raw.conflict_threshold.take(),
        &join(key, "conflict_threshold"),
        DEFAULT_CONFLICT_THRESHOLD,
        1..=1000,
    );
    let min_login_interval = d(
        c,
        &mut raw.min_login_interval,
        "min_login_interval",
        DEFAULT_MIN_LOGIN_INTERVAL,
    );
    let max_logins_per_hour = c.uint(
        raw.max_logins_per_hour.take(),
        &join(key, "max_logins_per_hour"),
        DEFAULT_MAX_LOGINS_PER_HOUR,
        1..=3600,
    );
    let login_at_start = c.boolean(
        raw.login_at_start.take(),
        &join(key, "login_at_start"),
        DEFAULT_LOGIN_AT_START,
    );

    c.nonzero(backoff_initial, &join(key, "backoff_initial"), "\"1s\"");
    c.nonzero(conflict_window, &join(key, "conflict_window"), "\"60s\"");
    c.nonzero(
        conflict_cooldown,
        &join(key, "conflict_cooldown"),
        "\"15m\"",
    );
    if backoff_max < backoff_initial {
        c.problem(
            join(key, "backoff_max"),
            format!(
                "{} is shorter than backoff_initial ({})",
                format_duration(backoff_max),
                format_duration(backoff_initial)
            ),
            "make backoff_max at least backoff_initial",
        );
    }
    if min_valid > refresh_margin {
        c.warn(
            &join(key, "min_valid"),
            format_args!(
                "{} is longer than refresh_margin ({}): token requests near expiry will wait for \
                 a refresh instead of being served",
                format_duration(min_valid),
                format_duration(refresh_margin)
            ),
        );
    }
    SessionPolicy {
        refresh_margin,
        refresh_jitter,
        min_valid,
        backoff_initial,
        backoff_max,
        conflict_window,
        // Checked to be at most 1000 above.
        conflict_threshold: conflict_threshold as u32,
        conflict_cooldown,
        login_at_start,
        min_login_interval,
        // Checked to be at most 3600 above.
        max_logins_per_hour: max_logins_per_hour as u32,
    }
}

/// `[account.jainam]`.
fn jainam(
    c: &mut Check<'_>,
    value: Value,
    key: &str,
    policy: &SessionPolicy,
) -> Option<JainamConfig> {
    let raw: RawJainam = c.table(Some(value), key, "an [account.jainam] section")?;
    let problems_before = c.problem_count();

    let root = broker_url(c, raw.root, &join(key, "root"), &JAINAM_ROOT);

    let prefix_key = join(key, "market_prefix");
    let market_prefix = c
        .string(raw.market_prefix, &prefix_key)
        .unwrap_or_else(|| DEFAULT_JAINAM_MARKET_PREFIX.to_string());
    if !market_prefix.starts_with('/')
        || market_prefix.len() < 2
        || market_prefix.contains(|ch: char| ch.is_whitespace() || ch == '?' || ch == '#')
    {
        c.problem(
            &prefix_key,
            format!("{market_prefix:?} is not a path prefix"),
            "write a path starting with /, e.g. \"/apibinarymarketdata\" or \"/apimarketdata\"",
        );
    }
    // One trailing slash is forgiven, like on root, so "{root}{prefix}/auth"
    // never holds "//".
    let market_prefix = match market_prefix.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => market_prefix,
    };

    let source_key = join(key, "source");
    let source = c
        .string(raw.source, &source_key)
        .unwrap_or_else(|| DEFAULT_JAINAM_SOURCE.to_string());
    if source.trim().is_empty() {
        c.problem(
            &source_key,
            "is empty",
            "remove the key for the default \"WEBAPI\"",
        );
    }

    if raw.interactive.is_none() && raw.market.is_none() {
        c.problem(
            key,
            "has neither an interactive nor a market app key pair",
            "add [account.jainam.interactive] and/or [account.jainam.market], \
             each with app_key and secret_key",
        );
    }
    let interactive = key_pair(c, raw.interactive, &join(key, "interactive"));
    let market = key_pair(c, raw.market, &join(key, "market"));

    let client_key = join(key, "client_id");
    let client_id = c.string(raw.client_id, &client_key);
    if client_id.as_deref().is_some_and(|s| s.trim().is_empty()) {
        c.problem(
            &client_key,
            "is empty",
            "write the dealer's client code, or remove the key for investor logins",
        );
    }

    let lifetime_key = join(key, "fallback_lifetime");
    let fallback_lifetime = c.duration(
        raw.fallback_lifetime,
        &lifetime_key,
        DEFAULT_JAINAM_FALLBACK_LIFETIME,
    );
    // Otherwise a token without `exp` is due for refresh the moment it
    // arrives, and the account logs in over and over.
    if fallback_lifetime <= policy.refresh_margin + policy.refresh_jitter {
        c.problem(
            &lifetime_key,
            format!(
                "{} is not longer than the account's refresh_margin + refresh_jitter ({}), \
                 so a token without exp would be refreshed as soon as it arrives",
                format_duration(fallback_lifetime),
                format_duration(policy.refresh_margin + policy.refresh_jitter)
            ),
            "use a longer fallback_lifetime (default \"8h\") or a shorter refresh_margin",
        );
    }
    let app_expiry_warning = c.duration(
        raw.app_expiry_warning,
        &join(key, "app_expiry_warning"),
        DEFAULT_JAINAM_APP_EXPIRY_WARNING,
    );

    if c.problem_count() != problems_before {
        return None;
    }
    Some(JainamConfig {
        root,
        market_prefix,
        source,
        interactive,
        market,
        client_id,
        fallback_lifetime,
        app_expiry_warning,
    })
}

/// An app key pair, both halves resolved. `None` when absent or broken.
fn key_pair(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<AppKeyPair> {
    let raw: RawAppKeyPair = c.table(Some(value?), key, "a section with app_key and secret_key")?;
    let app_key = c.secret(raw.app_key, &join(key, "app_key"));
    let secret_key = c.secret(raw.secret_key, &join(key, "secret_key"));
    Some(AppKeyPair {
        app_key: app_key?,
        secret_key: secret_key?,
    })
}
