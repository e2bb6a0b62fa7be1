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

/// One broker URL key and the path its value must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlRule {
    /// The broker table, e.g. `kotak_neo`.
    pub table: &'static str,
    /// The key in that table, e.g. `login_host`.
    pub name: &'static str,
    /// brokerd's default value (no trailing slash).
    pub default: &'static str,
    /// The path the value must have: `""` for a bare host (and port).
    /// A trailing slash is always allowed and dropped.
    pub path: &'static str,
    /// What brokerd appends to the value itself, for messages.
    pub appends: &'static str,
    /// The official SDK's own setting for this URL, for messages.
    pub sdk: &'static str,
    /// What would cross the network unencrypted over plain http.
    pub carries: &'static str,
}

impl UrlRule {
    /// The key's path as written in a file, without the account index:
    /// `account.kotak_neo.login_host`.
    pub fn key(&self) -> String {
        format!("account.{}.{}", self.table, self.name)
    }

    /// The form a value must take, e.g. `a host only, like
    /// "https://api.kite.trade"`.
    pub fn expected(&self) -> String {
        if self.path.is_empty() {
            format!("a host only (no path), like \"{}\"", self.default)
        } else {
            format!(
                "a host followed by {}, like \"{}\"",
                self.path, self.default
            )
        }
    }
}

/// `[account.jainam] root`: the XTS server; brokerd appends `/interactive`
/// and `market_prefix`.
pub const JAINAM_ROOT: UrlRule = UrlRule {
    table: "jainam",
    name: "root",
    default: "https://jtrade.jainam.in:5000",
    path: "",
    appends: "/interactive/... and market_prefix",
    sdk: "the XTS SDK's root (config.ini), https://jtrade.jainam.in:5000 for Jainam retail",
    carries: "app keys and tokens",
};

/// `[account.kotak_neo] login_host`: the host of the two login calls.
pub const KOTAK_LOGIN_HOST: UrlRule = UrlRule {
    table: "kotak_neo",
    name: "login_host",
    default: "https://mis.kotaksecurities.com",
    path: "",
    appends: "/login/1.0/tradeApiLogin and /login/1.0/tradeApiValidate",
    sdk: "the Neo SDK posts to https://mis.kotaksecurities.com/login/1.0/tradeApiLogin",
    carries: "the access token, MPIN, TOTP codes and session tokens",
};

/// `[account.zerodha] api_root`: Kite Connect's REST root.
pub const ZERODHA_API_ROOT: UrlRule = UrlRule {
    table: "zerodha",
    name: "api_root",
    default: "https://api.kite.trade",
    path: "",
    appends: "/session/token and /user/profile",
    sdk: "pykiteconnect's _default_root_uri is https://api.kite.trade",
    carries: "the app key, request tokens and session tokens",
};

/// `[account.zerodha] login_root`: where the browser login page lives.
pub const ZERODHA_LOGIN_ROOT: UrlRule = UrlRule {
    table: "zerodha",
    name: "login_root",
    default: "https://kite.zerodha.com",
    path: "",
    appends: "/connect/login",
    sdk: "pykiteconnect's _default_login_uri is https://kite.zerodha.com/connect/login; \
          brokerd adds the /connect/login part itself",
    carries: "the app key",
};

/// `[account.breeze] api_root`: Breeze's REST v1 base.
pub const BREEZE_API_ROOT: UrlRule = UrlRule {
    table: "breeze",
    name: "api_root",
    default: "https://api.icicidirect.com/breezeapi/api/v1",
    path: "/breezeapi/api/v1",
    appends: "/customerdetails and /funds",
    sdk: "breeze_connect's API_URL is https://api.icicidirect.com/breezeapi/api/v1/",
    carries: "the app key, session keys and session tokens",
};

/// `[account.breeze] login_root`: where the browser login page lives.
pub const BREEZE_LOGIN_ROOT: UrlRule = UrlRule {
    table: "breeze",
    name: "login_root",
    default: "https://api.icicidirect.com/apiuser",
    path: "/apiuser",
    appends: "/login?api_key=...",
    sdk: "the SDKs' login link is https://api.icicidirect.com/apiuser/login?api_key=...; \
          brokerd adds the /login part itself",
    carries: "the app key",
};

/// Every rule, for tests and documentation checks.
pub const ALL: [UrlRule; 6] = [
    JAINAM_ROOT,
    KOTAK_LOGIN_HOST,
    ZERODHA_API_ROOT,
    ZERODHA_LOGIN_ROOT,
    BREEZE_API_ROOT,
    BREEZE_LOGIN_ROOT,
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
    let clean = match check_root(&url) {
        Ok((clean, plain_http)) => {
            if plain_http {
                c.warn(
                    key,
                    format_args!(
                        "{clean} is plain http: {} cross the network unencrypted",
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

/// Checks the path of a URL that passed [`check_root`] (so it has a scheme
/// and no trailing slash) against `rule`; the error is (message, fix).
pub fn check_path(rule: &UrlRule, clean: &str) -> Result<(), (String, String)> {
    let (scheme, rest) = clean.split_once("://").unwrap_or(("https", clean));
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if path == rule.path {
        return Ok(());
    }
    let name = rule.name;
    let want = format!("{scheme}://{authority}{}", rule.path);
    let message = match (rule.path.is_empty(), path.is_empty()) {
        (true, _) => format!(
            "{clean:?} has the path {path}, but {name} is a host only: brokerd appends {} \
             itself, so this path would be sent twice or in the wrong place",
            rule.appends
        ),
        (false, true) => format!(
            "{clean:?} has no path, but {name} must end in {}: brokerd appends {} to it",
            rule.path, rule.appends
        ),
        (false, false) => format!(
            "{clean:?} has the path {path}, but {name}'s path must be exactly {} \
             (brokerd appends {} itself)",
            rule.path, rule.appends
        ),
    };
    let fix = format!(
        "write {want:?} ({}); a trailing slash is fine. Remove the key for the default {:?}",
        rule.sdk, rule.default
    );
    Err((message, fix))
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
