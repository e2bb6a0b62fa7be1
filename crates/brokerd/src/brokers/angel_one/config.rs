//! The runtime settings of one Angel One account, secrets resolved: what
//! `[account.angel_one]` becomes once parsed, and the defaults of every key
//! the facts file leaves uncertain.

use std::time::Duration;

use crate::brokers::url_rule::UrlRule;
use crate::secret::Secret;

/// The REST root brokerd uses unless told otherwise (the SDKs' current one).
pub const DEFAULT_API_ROOT: &str = "https://apiconnect.angelone.in";
/// The older REST root the Go SDK and forum posts still use.
pub const LEGACY_API_ROOT: &str = "https://apiconnect.angelbroking.com";
/// Used when the jwtToken carries no readable `exp`: the sources disagree
/// (till midnight, 24–28 h after login), and the short end of the forum's
/// announcement is the one that does not serve a dead session for hours.
pub const DEFAULT_LIFETIME_FALLBACK: Duration = Duration::from_secs(24 * 3600);
/// Wait for the next TOTP window when fewer seconds than this are left.
pub const DEFAULT_TOTP_MIN_REMAINING: Duration = Duration::from_secs(5);
/// `X-ClientLocalIP` unless configured: the Python SDK's fallback.
pub const DEFAULT_LOCAL_IP: &str = "127.0.0.1";
/// `X-ClientPublicIP` unless configured: the Python SDK's placeholder,
/// accepted as observed. Whether Angel compares it with the registered
/// static IP is undocumented, so operators should set the real egress IP.
pub const DEFAULT_PUBLIC_IP: &str = "106.193.147.98";
/// `X-MACAddress` unless configured: a locally administered placeholder
/// (the SDKs send the host's own, which a daemon has no reason to expose).
pub const DEFAULT_MAC_ADDRESS: &str = "02:00:00:00:00:00";

/// `[account.angel_one] api_root`: the SmartAPI REST root.
pub const API_ROOT: UrlRule = UrlRule {
    table: "angel_one",
    name: "api_root",
    default: DEFAULT_API_ROOT,
    path: "",
    appends: "/rest/auth/angelbroking/user/v1/loginByPassword and the other SmartAPI paths",
    sdk: "the SDKs' root is https://apiconnect.angelone.in (the Go SDK's is \
          https://apiconnect.angelbroking.com)",
    carries: "the API key, PIN, TOTP codes and session tokens",
    websocket: false,
};

/// One Angel One SmartAPI account, secrets resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AngelOneConfig {
    /// The REST root, without trailing slash: [`DEFAULT_API_ROOT`] or
    /// [`LEGACY_API_ROOT`] (which host is current is uncertain).
    pub api_root: String,
    /// The SmartAPI app's API key, sent as `X-PrivateKey` on every call.
    pub api_key: Secret,
    /// The client code (the login id), e.g. `D12345`.
    pub client_code: String,
    /// The 4-digit PIN (MPIN), sent as `password` by `loginByPassword`.
    pub pin: Secret,
    /// The TOTP seed (base32, from the enable-TOTP QR code).
    pub totp_seed: Secret,
    /// When fewer than this remain in the current 30 s window, the code of
    /// the next window is used instead.
    pub totp_min_remaining: Duration,
    /// How long a session lives when its jwtToken has no readable `exp`.
    pub lifetime_fallback: Duration,
    /// `X-ClientLocalIP`.
    pub local_ip: String,
    /// `X-ClientPublicIP`: the machine's egress IP (the registered static IP).
    pub public_ip: String,
    /// `X-MACAddress`.
    pub mac_address: String,
    /// Whether `generateTokens` also sends the Java SDK's `checksum`
    /// (hex SHA-256 of api key + refresh token + jwt), which the docs do
    /// not mention.
    pub renew_checksum: bool,
    /// Whether a new login ends the sessions before it (undocumented).
    pub login_ends_previous: bool,
}

impl AngelOneConfig {
    /// Settings with every default, for the given credentials.
    pub fn new(
        api_key: Secret,
        client_code: impl Into<String>,
        pin: Secret,
        totp_seed: Secret,
    ) -> Self {
        Self {
            api_root: DEFAULT_API_ROOT.into(),
            api_key,
            client_code: client_code.into(),
            pin,
            totp_seed,
            totp_min_remaining: DEFAULT_TOTP_MIN_REMAINING,
            lifetime_fallback: DEFAULT_LIFETIME_FALLBACK,
            local_ip: DEFAULT_LOCAL_IP.into(),
            public_ip: DEFAULT_PUBLIC_IP.into(),
            mac_address: DEFAULT_MAC_ADDRESS.into(),
            renew_checksum: false,
            login_ends_previous: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_secret() {
        let cfg = AngelOneConfig::new(
            Secret::new("the-api-key"),
            "D12345",
            Secret::new("4321"),
            Secret::new("MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U"),
        );
        let text = format!("{cfg:?}");
        assert!(text.contains("D12345"), "{text}");
        for secret in ["the-api-key", "4321", "MFRGGZDF"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
