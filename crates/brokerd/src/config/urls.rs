//! Broker URL keys: one rule per key, in one place.
//!
//! Each key's value is joined with a fixed tail by the broker module (Kotak
//! appends `/login/1.0/tradeApiLogin`, Kite `/connect/login`, Breeze
//! `/customerdetails`, ...). A value whose path is wrong for that join
//! sends the first login to a page that does not exist, so the rule of
//! each key says which path it must have: none (a host, maybe with a port),
//! or exactly one (Breeze's). The check runs with the rest of the config,
//! so `check-config` and daemon start refuse a wrong path before any login
//! is spent. Each rule also carries the official SDK's own setting for
//! that URL, quoted in problems and in `config/brokerd.example.toml`,
//! because copying the SDK's value is how these keys usually go wrong
//! (Kite's SDK login URL already ends in `/connect/login`).
//!
//! The broker modules read [`UrlRule::key`] and [`UrlRule::default`] when a
//! login endpoint answers as if it did not exist (see
//! `brokers::http::check_login_endpoint`).

use toml::Value;

use super::check::Check;
// The rules themselves are facts of each broker, kept in its folder.
pub use crate::brokers::angel_one::API_ROOT as ANGEL_API_ROOT;
pub use crate::brokers::breeze::{API_ROOT as BREEZE_API_ROOT, LOGIN_ROOT as BREEZE_LOGIN_ROOT};
pub use crate::brokers::jainam::ROOT as JAINAM_ROOT;
pub use crate::brokers::kotak_neo::LOGIN_HOST as KOTAK_LOGIN_HOST;
pub use crate::brokers::url_rule::{UrlRule, check_path};
pub use crate::brokers::zerodha::{
    API_ROOT as ZERODHA_API_ROOT, LOGIN_ROOT as ZERODHA_LOGIN_ROOT,
    TICKER_ROOT as ZERODHA_TICKER_ROOT,
};

/// Every rule, for tests and documentation checks.
pub const ALL: [UrlRule; 8] = [
    JAINAM_ROOT,
    KOTAK_LOGIN_HOST,
    ZERODHA_API_ROOT,
    ZERODHA_LOGIN_ROOT,
    ZERODHA_TICKER_ROOT,
    BREEZE_API_ROOT,
    BREEZE_LOGIN_ROOT,
    ANGEL_API_ROOT,
];

/// Reads a broker URL key at `key`: the rule's default when absent,
/// otherwise checked by [`check_root`] and [`check_path`]. Returns the value without a trailing slash.
pub(super) fn broker_url(
    c: &mut Check<'_>,
    value: Option<Value>,
    key: &str,
    rule: &UrlRule,
) -> String {
    let url = c
        .string(value, key)
        .unwrap_or_else(|| rule.default.to_string());
    let checked = if rule.websocket {
        check_ws_root(&url)
    } else {
        check_root(&url)
    };
    let clean = match checked {
        Ok((clean, plain)) => {
            if plain {
                let scheme = if rule.websocket { "ws" } else { "http" };
                c.warn(
                    key,
                    format_args!(
                        "{clean} is plain {scheme}: {} cross the network unencrypted",
                        rule.carries
                    ),
                );
            }
            clean
        }
        Err(why) => {
            c.problem(
                key,
                format!("{url:?} {why}"),
                format!(
                    "write {}, or remove the key for that default ({})",
                    rule.expected(),
                    rule.sdk
                ),
            );
            return url;
        }
    };
    if let Err((message, fix)) = check_path(rule, &clean) {
        c.problem(key, message, fix);
    }
    clean
}

/// [`check_root`] for a websocket base URL: `wss://` (or `ws://`, which is
/// reported as plain when the host is not this machine).
pub(super) fn check_ws_root(url: &str) -> Result<(String, bool), &'static str> {
    let as_http = if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        return Err("must start with wss:// (or ws://)");
    };
    let (clean, plain) = check_root(&as_http)?;
    let back = match clean.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", clean.strip_prefix("http://").unwrap_or(&clean)),
    };
    Ok((back, plain))
}

/// Checks an http(s) base URL; returns it without one trailing slash, and
/// whether it is plain http to a host other than this machine. The error
/// completes the sentence "<url> ...".
pub(super) fn check_root(url: &str) -> Result<(String, bool), &'static str> {
    let (plain, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (true, rest)
    } else {
        return Err("must start with https:// (or http://)");
    };
    if url.contains(|ch: char| ch.is_whitespace() || ch == '?' || ch == '#') {
        return Err("must not contain spaces, a query or a fragment");
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let host_port = rest.split('/').next().unwrap_or(rest);
    let host = match host_port.rsplit_once(':') {
        // "[::1]:5000" and "host:5000"; a bare "[::1]" has no port colon
        // after its closing bracket.
        Some((h, port)) if !port.contains(']') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err("has a port that is not a number");
            }
            h
        }
        _ => host_port,
    };
    if host.is_empty() || host.contains('@') {
        return Err("has no host (or has user info, which is not supported)");
    }
    if rest.contains("//") {
        return Err("has an empty path segment (\"//\")");
    }
    let local = matches!(host, "localhost" | "[::1]") || host.starts_with("127.");
    let clean = url.strip_suffix('/').unwrap_or(url);
    Ok((clean.to_string(), plain && !local))
}
