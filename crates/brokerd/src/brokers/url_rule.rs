//! How a broker URL key is checked: the rule type each broker's facts fill
//! in (see `config/urls.rs` for why each key has exactly one path shape).

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
    /// A websocket URL: `wss://` (or `ws://`) instead of `https://` (or
    /// `http://`). brokerd never connects to it; it only hands it on in
    /// the session's `fields`.
    pub websocket: bool,
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
