//! Multi-account mode: every app key and secret key that follow a pattern
//! name an account of their own, made at its first login, so a benchmark
//! can run a thousand accounts without registering each one.

use brokerd_core::Api;

use super::XtsSimUser;

/// The credentials of one api's pattern accounts: app key
/// `{app_key_prefix}{id}` with secret key `{secret_key_prefix}{id}`, the
/// same `id` in both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPattern {
    /// What every app key of the api starts with.
    pub app_key_prefix: String,
    /// What every secret key of the api starts with.
    pub secret_key_prefix: String,
}

impl KeyPattern {
    fn new(app_key_prefix: &str, secret_key_prefix: &str) -> Self {
        Self {
            app_key_prefix: app_key_prefix.into(),
            secret_key_prefix: secret_key_prefix.into(),
        }
    }
}

/// Accounts by pattern. Account `id` (1 to [`MAX_ID_LEN`] ASCII letters,
/// digits, `-` or `_`) has the interactive keys of `interactive` and the
/// market keys of `market`, and logs in as user `{user_id_prefix}{id}`, an
/// investor client whose one client code is its user id. Each account has
/// its own sessions: a login kills the older token of that account and api
/// only. Configured users ([`super::XtsSimConfig::users`]) are matched
/// first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XtsSimPattern {
    /// `userID` of account `id`: this, followed by `id`.
    pub user_id_prefix: String,
    /// Interactive app keys and secret keys.
    pub interactive: KeyPattern,
    /// Market-data app keys and secret keys.
    pub market: KeyPattern,
}

/// The longest account id a pattern accepts.
pub const MAX_ID_LEN: usize = 64;

impl XtsSimPattern {
    /// Account `id` has interactive keys `scale-key-{id}` /
    /// `scale-secret-{id}`, market keys `scale-md-key-{id}` /
    /// `scale-md-secret-{id}`, and user id `SCALE{id}`.
    pub fn scale() -> Self {
        Self {
            user_id_prefix: "SCALE".into(),
            interactive: KeyPattern::new("scale-key-", "scale-secret-"),
            market: KeyPattern::new("scale-md-key-", "scale-md-secret-"),
        }
    }

    /// Account `id` as a user, with the keys a client logs in with (for
    /// writing a daemon's configuration). `None` when `id` is not a valid id.
    pub fn user(&self, id: &str) -> Option<XtsSimUser> {
        if !valid_id(id) {
            return None;
        }
        let user_id = format!("{}{id}", self.user_id_prefix);
        Some(XtsSimUser {
            interactive_app_key: format!("{}{id}", self.interactive.app_key_prefix),
            interactive_secret_key: format!("{}{id}", self.interactive.secret_key_prefix),
            market_app_key: format!("{}{id}", self.market.app_key_prefix),
            market_secret_key: format!("{}{id}", self.market.secret_key_prefix),
            is_investor_client: true,
            client_codes: vec![user_id.clone()],
            application_expiry_date: "2027-03-31".into(),
            user_id,
        })
    }

    /// The account id `app_key` names for `api`, when it follows the pattern.
    pub(super) fn id_of<'k>(&self, api: Api, app_key: &'k str) -> Option<&'k str> {
        let keys = match api {
            Api::Interactive => &self.interactive,
            Api::Market => &self.market,
        };
        app_key
            .strip_prefix(keys.app_key_prefix.as_str())
            .filter(|id| valid_id(id))
    }
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
