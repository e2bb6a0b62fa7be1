//! Raw → public conversion of `[account.kotak_neo]`: the login host, the
//! credentials (resolved and checked for shape without ever showing them)
//! and the TOTP timing knobs.

use std::time::Duration;

use humantime::format_duration;
use toml::Value;

use super::KotakNeoConfig;
use super::check::{Check, join};
use super::raw::RawKotakNeo;
use super::urls::{KOTAK_LOGIN_HOST, broker_url};
use crate::secret::Secret;
// Re-exported for the tests of this module; TOTP brokers share the decoder.
pub(super) use crate::brokers::totp_seed::decode_base32;

const DEFAULT_TOTP_MIN_REMAINING: Duration = Duration::from_secs(5);
const DEFAULT_CLOCK_SKEW_WARNING: Duration = Duration::from_secs(2);
const DEFAULT_NEO_FIN_KEY: &str = "neotradeapi";

/// `totp_min_remaining` must stay below this: waiting for a window with at
/// least 25 of its 30 seconds left would leave almost no moment to log in.
const MAX_TOTP_MIN_REMAINING: Duration = Duration::from_secs(25);
/// The broker's `Date` header has whole seconds, so a finer threshold would
/// warn about rounding.
const MIN_CLOCK_SKEW_WARNING: Duration = Duration::from_secs(1);
const MAX_UCC_LEN: usize = 10;
const MPIN_LEN: usize = 6;
/// RFC 4226 requires at least 128 bits and recommends 160; 80 bits is the
/// floor that still catches a truncated copy or a pasted code.
const MIN_TOTP_KEY_BYTES: usize = 10;

/// `[account.kotak_neo]`; `None` when anything in it is wrong (every problem
/// is recorded).
pub(super) fn kotak_neo(c: &mut Check<'_>, value: Value, key: &str) -> Option<KotakNeoConfig> {
    let raw: RawKotakNeo = c.table(Some(value), key, "an [account.kotak_neo] section")?;
    let problems_before = c.problem_count();

    let login_host = broker_url(
        c,
        raw.login_host,
        &join(key, "login_host"),
        &KOTAK_LOGIN_HOST,
    );
    let access_token = c.secret(raw.access_token, &join(key, "access_token"));
    let mobile = mobile(c, raw.mobile, &join(key, "mobile"));
    let ucc = ucc(c, raw.ucc, &join(key, "ucc"));
    let mpin = mpin(c, raw.mpin, &join(key, "mpin"));
    let totp_seed = totp_seed(c, raw.totp_seed, &join(key, "totp_seed"));

    let remaining_key = join(key, "totp_min_remaining");
    let totp_min_remaining = c.duration(
        raw.totp_min_remaining,
        &remaining_key,
        DEFAULT_TOTP_MIN_REMAINING,
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

    let skew_key = join(key, "clock_skew_warning");
    let clock_skew_warning = c.duration(
        raw.clock_skew_warning,
        &skew_key,
        DEFAULT_CLOCK_SKEW_WARNING,
    );
    if clock_skew_warning < MIN_CLOCK_SKEW_WARNING {
        c.problem(
            &skew_key,
            format!(
                "{} is shorter than 1s; the broker's Date header only has whole seconds",
                format_duration(clock_skew_warning)
            ),
            "use at least \"1s\", or remove the key for the default \"2s\"",
        );
    }

    let fin_key = join(key, "neo_fin_key");
    let neo_fin_key = c
        .string(raw.neo_fin_key, &fin_key)
        .unwrap_or_else(|| DEFAULT_NEO_FIN_KEY.to_string());
    if neo_fin_key.is_empty() || !neo_fin_key.bytes().all(|b| b.is_ascii_graphic()) {
        c.problem(
            &fin_key,
            "must be printable ASCII without spaces (it is sent as the neo-fin-key header)",
            "remove the key for the default \"neotradeapi\"",
        );
    }

    if c.problem_count() != problems_before {
        return None;
    }
    Some(KotakNeoConfig {
        login_host,
        access_token: access_token?,
        mobile: mobile?,
        ucc: ucc?,
        mpin: mpin?,
        totp_seed: totp_seed?,
        totp_min_remaining,
        clock_skew_warning,
        neo_fin_key,
    })
}

/// `mobile`, normalised to `+91` and 10 digits. Never echoed in a problem.
fn mobile(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<String> {
    let text = c.required_string(value, key, "mobile = \"+919876543210\"")?;
    let normal = normalize_mobile(&text);
    if normal.is_none() {
        c.problem(
            key,
            "must be a 10-digit Indian mobile number, with or without +91",
            "write the mobile number registered with Kotak, e.g. \"+919876543210\" or \
             \"9876543210\" (spaces and dashes are fine; Indian mobile numbers start with 6-9)",
        );
    }
    normal
}

/// `+91` and the 10 digits of an Indian mobile number written as
/// `9876543210`, `+919876543210` or `919876543210`, with any spaces and
/// dashes; `None` for anything else.
pub(super) fn normalize_mobile(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|ch| !ch.is_whitespace() && *ch != '-')
        .collect();
    let digits = if let Some(rest) = compact.strip_prefix("+91") {
        rest
    } else if compact.len() == 12 {
        compact.strip_prefix("91")?
    } else {
        &compact
    };
    let ok = digits.len() == 10
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(digits.as_bytes().first(), Some(b'6'..=b'9'));
    ok.then(|| format!("+91{digits}"))
}

/// `ucc`: 1 to 10 ASCII letters and digits, uppercased.
fn ucc(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<String> {
    let text = c.required_string(value, key, "ucc = \"AB123\"")?;
    let ok =
        (1..=MAX_UCC_LEN).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric());
    if !ok {
        c.problem(
            key,
            format!("must be the client code: 1 to {MAX_UCC_LEN} letters and digits"),
            "copy the client code (UCC) shown in the profile of the Neo app, e.g. ucc = \"AB123\"",
        );
        return None;
    }
    Some(text.to_ascii_uppercase())
}

/// `mpin`: a secret holding exactly 6 digits.
fn mpin(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<Secret> {
    let secret = c.secret(value, key)?;
    let text = secret.expose();
    if text.len() != MPIN_LEN || !text.bytes().all(|b| b.is_ascii_digit()) {
        c.problem(
            key,
            "is not exactly 6 digits (the value is not shown)",
            "point mpin at the 6-digit MPIN you log in to the Neo app with; the variable or file \
             must hold only those digits",
        );
        return None;
    }
    Some(secret)
}

/// `totp_seed`: a secret holding base32 that decodes to at least 10 bytes.
fn totp_seed(c: &mut Check<'_>, value: Option<Value>, key: &str) -> Option<Secret> {
    let secret = c.secret(value, key)?;
    if let Err((message, fix)) = check_totp_seed(secret.expose()) {
        c.problem(key, format!("{message} (the value is not shown)"), fix);
        return None;
    }
    Some(secret)
}

const SEED_FIX: &str = "store the base32 secret shown when TOTP was registered for the Trade API \
                        (the text behind the QR code, usually 16 or 32 characters), not a code";

/// What is wrong with a TOTP seed, as (message, fix); never quotes it.
fn check_totp_seed(text: &str) -> Result<(), (&'static str, &'static str)> {
    let trimmed = text.trim();
    if trimmed
        .get(..10)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("otpauth://"))
    {
        return Err((
            "is an otpauth:// URI, not the seed",
            "store only the value of the URI's secret= parameter",
        ));
    }
    let compact: String = trimmed.chars().filter(|ch| !ch.is_whitespace()).collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        return Err(("looks like a 6-digit TOTP code, not the seed", SEED_FIX));
    }
    let Some(key) = decode_base32(text) else {
        return Err((
            "is not base32: only letters A-Z, digits 2-7, spaces and '=' padding may appear, \
             and the length must be a whole number of bytes",
            SEED_FIX,
        ));
    };
    if key.len() < MIN_TOTP_KEY_BYTES {
        return Err((
            "decodes to fewer than 10 bytes, too short for a TOTP seed",
            "check that the whole secret was copied (usually 16 or 32 characters)",
        ));
    }
    Ok(())
}
