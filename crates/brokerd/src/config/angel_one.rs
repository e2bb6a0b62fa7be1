//! Raw → public conversion of `[account.angel_one]`: the REST root, the
//! credentials (resolved and checked for shape without ever showing them),
//! the TOTP timing, and the settings of what the facts leave uncertain
//! (lifetime fallback, the client headers, the renewal checksum, whether a
//! login ends the previous session).

use std::net::IpAddr;
use std::time::Duration;

use humantime::format_duration;
use toml::Value;

use super::AngelOneConfig;
use super::check::{Check, join};
use super::raw::RawAngelOne;
use super::urls::{ANGEL_API_ROOT, broker_url};
use crate::brokers::angel_one::config as defaults;
use crate::brokers::totp_seed::decode_base32;
use crate::secret::Secret;

/// Waiting for a window with at least 25 of its 30 seconds left would
/// leave almost no moment to log in.
const MAX_TOTP_MIN_REMAINING: Duration = Duration::from_secs(25);
/// Angel's sessions are documented to last until midnight at least, and at
/// most 28 hours: a fallback outside this range is a typo.
const MIN_LIFETIME_FALLBACK: Duration = Duration::from_secs(3600);
const MAX_LIFETIME_FALLBACK: Duration = Duration::from_secs(28 * 3600);
const MAX_CLIENT_CODE_LEN: usize = 16;
const PIN_LEN: usize = 4;
/// RFC 4226's floor is 128 bits; 80 bits still catches a truncated copy.
const MIN_TOTP_KEY_BYTES: usize = 10;

/// `[account.angel_one]`; `None` when anything in it is wrong (every
/// problem is recorded).
pub(super) fn angel_one(c: &mut Check<'_>, value: Value, key: &str) -> Option<AngelOneConfig> {
    let raw: RawAngelOne = c.table(Some(value), key, "an [account.angel_one] section")?;
    let problems_before = c.problem_count();

    let api_root = broker_url(c, raw.api_root, &join(key, "api_root"), &ANGEL_API_ROOT);
    let api_key = c.secret(raw.api_key, &join(key, "api_key"));
    let client_code = client_code(c, raw.client_code, &join(key, "client_code"));
    let pin = pin(c, raw.pin, &join(key, "pin"));
    let totp_seed = totp_seed(c, raw.totp_seed, &join(key, "totp_seed"));

    let remaining_key = join(key, "totp_min_remaining");
    let totp_min_remaining = c.duration(
        raw.totp_min_remaining,
        &remaining_key,
        defaults::DEFAULT_TOTP_MIN_REMAINING,
    );
    if totp_min_remaining >= MAX_TOTP_MIN_REMAINING {
        c.problem(
            &remaining_key,
            format!(
                "{} is not shorter than {} of the 30s TOTP window, so a login would almost \
                 always wait for the next window",
                format_duration(totp_min_remaining),
                format_duration(MAX_TOTP_MIN_REMAINING)
            ),
            "use less than \"25s\", or remove the key for the default \"5s\"",
        );
    }

    let lifetime_key = join(key, "lifetime_fallback");
    let lifetime_fallback = c.duration(
        raw.lifetime_fallback,
        &lifetime_key,
        defaults::DEFAULT_LIFETIME_FALLBACK,
    );
    if !(MIN_LIFETIME_FALLBACK..=MAX_LIFETIME_FALLBACK).contains(&lifetime_fallback) {
        c.problem(
            &lifetime_key,
            format!(
                "{} is outside 1h to 28h, the range Angel One's sessions are documented to last",
                format_duration(lifetime_fallback)
            ),
            "use a duration such as \"20h\", or remove the key for the default \"24h\"",
        );
    }

    let local_ip = ip(
        c,
        raw.local_ip,
        &join(key, "local_ip"),
        defaults::DEFAULT_LOCAL_IP,
    );
    let public_ip = ip(
        c,
        raw.public_ip,
        &join(key, "public_ip"),
        defaults::DEFAULT_PUBLIC_IP,
    );
    let mac_address = mac(c, raw.mac_address, &join(key, "mac_address"));
    let renew_checksum = c.boolean(raw.renew_checksum, &join(key, "renew_checksum"), false);
    let login_ends_previous = c.boolean(
        raw.login_ends_previous,
        &join(key, "login_ends_previous"),
        false,
    );

    if c.problem_count() != problems_before {
        return None;
    }
    Some(AngelOneConfig {
        api_root,
        api_key: api_key?,
        client_code: client_code?,
        pin: pin?,
        totp_seed: totp_seed?,
        totp_min_remaining,
        lifetime_fallback,
        local_ip,
        public_ip,
        mac_address,
        renew_checksum,
        login_ends_previous,
    })
}

/// `client_code`: letters and digits, uppercased. An email address or a
/// mobile number is what Angel answers "LoginByPassword is not allowed" to.
fn client_code(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<String> {
    let text = c.required_string(value, key, "client_code = \"D12345\"")?;
    let ok = (1..=MAX_CLIENT_CODE_LEN).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        let why = if text.contains('@') {
            "is an email address, not the client code"
        } else {
            "must be the client code: letters and digits only"
        };
        c.problem(
            key,
            why,
            "write the client id you log in to Angel One with, e.g. client_code = \"D12345\" \
             (not an email or mobile number)",
        );
        return None;
    }
    Some(text.to_ascii_uppercase())
}

/// `pin`: a secret holding exactly 4 digits.
fn pin(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<Secret> {
    let secret = c.secret(value, key)?;
    let text = secret.expose();
    if text.len() != PIN_LEN || !text.bytes().all(|b| b.is_ascii_digit()) {
        c.problem(
            key,
            "is not exactly 4 digits (the value is not shown)",
            "point pin at the 4-digit PIN (MPIN) you log in to the Angel One app with; the \
             variable or file must hold only those digits",
        );
        return None;
    }
    Some(secret)
}

/// `totp_seed`: a secret holding base32 that decodes to at least 10 bytes.
fn totp_seed(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<Secret> {
    let secret = c.secret(value, key)?;
    let text = secret.expose().trim();
    let compact: String = text.chars().filter(|ch| !ch.is_whitespace()).collect();
    let fix = "store the base32 secret shown when TOTP was enabled at \
               smartapi.angelone.in/enable-totp (the text behind the QR code), not a code";
    let why = if text
        .get(..10)
        .is_some_and(|s| s.eq_ignore_ascii_case("otpauth://"))
    {
        Some("is an otpauth:// URI, not the seed; store only its secret= value")
    } else if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Some("looks like a 6-digit TOTP code, not the seed")
    } else {
        match decode_base32(text) {
            None => Some("is not base32 (letters A-Z, digits 2-7, spaces and '=' only)"),
            Some(k) if k.len() < MIN_TOTP_KEY_BYTES => {
                Some("decodes to fewer than 10 bytes, too short for a TOTP seed")
            }
            Some(_) => None,
        }
    };
    if let Some(why) = why {
        c.problem(key, format!("{why} (the value is not shown)"), fix);
        return None;
    }
    Some(secret)
}

/// An IP address header value (`local_ip`, `public_ip`).
fn ip(c: &mut Check<'_>, value: Option<Value>, key: &str, default: &str) -> String {
    let text = c.string(value, key).unwrap_or_else(|| default.to_string());
    if text.parse::<IpAddr>().is_err() {
        c.problem(
            key,
            format!("{text:?} is not an IP address"),
            format!("write an address such as \"203.0.113.7\", or remove the key for {default:?}"),
        );
    }
    text
}

/// `mac_address`: six hex pairs separated by `:` or `-`.
fn mac(c: &mut Check<'_>, value: Option<Value>, key: &str) -> String {
    let text = c
        .string(value, key)
        .unwrap_or_else(|| defaults::DEFAULT_MAC_ADDRESS.to_string());
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        c.problem(
            key,
            format!("{text:?} is not a MAC address"),
            format!(
                "write six hex pairs such as \"02:11:22:33:44:55\", or remove the key for {:?}",
                defaults::DEFAULT_MAC_ADDRESS
            ),
        );
    }
    text
}
