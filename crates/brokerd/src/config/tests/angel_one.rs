//! `[account.angel_one]`: defaults, every key with a good and a bad value,
//! credential shapes never shown, cross-account checks.

use super::*;

/// [`ANGEL`] with the line starting with `{key} =` in `[account.angel_one]`
/// replaced by `line` (or `line` added when the key is not there).
fn angel_with(key: &str, line: &str) -> String {
    let prefix = format!("{key} = ");
    let mut out = String::new();
    let mut replaced = false;
    for l in ANGEL.lines() {
        if l.starts_with(&prefix) {
            out.push_str(line);
            replaced = true;
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    if !replaced {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn angel(loaded: &Loaded) -> &AngelOneConfig {
    loaded.config.accounts[0].angel_one.as_ref().unwrap()
}

#[test]
fn defaults() {
    let loaded = ok(ANGEL);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let a = loaded.config.account(BrokerId::AngelOne, "main").unwrap();
    assert_eq!(a.broker, BrokerId::AngelOne);
    assert!(a.kotak_neo.is_none() && a.jainam.is_none());
    assert_eq!(a.policy, ok(ACCOUNT).config.accounts[0].policy);
    let g = angel(&loaded);
    assert_eq!(g.api_root, "https://apiconnect.angelone.in");
    assert_eq!(g.client_code, "D12345", "uppercased");
    assert_eq!(
        (g.api_key.expose(), g.pin.expose(), g.totp_seed.expose()),
        (ANGEL_KEY_VALUE, ANGEL_PIN_VALUE, ANGEL_SEED_VALUE)
    );
    assert_eq!(g.totp_min_remaining, Duration::from_secs(5));
    assert_eq!(g.lifetime_fallback, Duration::from_secs(24 * 3600));
    assert_eq!(
        (
            g.local_ip.as_str(),
            g.public_ip.as_str(),
            g.mac_address.as_str()
        ),
        ("127.0.0.1", "106.193.147.98", "02:00:00:00:00:00")
    );
    assert!(!g.renew_checksum && !g.login_ends_previous);
}

#[test]
fn every_key_can_be_set() {
    let text = format!(
        "{ANGEL}api_root = \"https://apiconnect.angelbroking.com/\"\n\
         totp_min_remaining = \"3s\"\nlifetime_fallback = \"20h\"\n\
         local_ip = \"10.0.0.5\"\npublic_ip = \"203.0.113.7\"\n\
         mac_address = \"02-11-22-33-44-55\"\nrenew_checksum = true\n\
         login_ends_previous = true\n"
    );
    let loaded = ok(&text);
    let g = angel(&loaded);
    assert_eq!(g.api_root, "https://apiconnect.angelbroking.com");
    assert_eq!(g.totp_min_remaining, Duration::from_secs(3));
    assert_eq!(g.lifetime_fallback, Duration::from_secs(20 * 3600));
    assert_eq!(
        (
            g.local_ip.as_str(),
            g.public_ip.as_str(),
            g.mac_address.as_str()
        ),
        ("10.0.0.5", "203.0.113.7", "02-11-22-33-44-55")
    );
    assert!(g.renew_checksum && g.login_ends_previous);
}

#[test]
fn each_bad_value_names_its_key_and_fix() {
    let cases = [
        ("client_code", "client_code = \"me@example.com\"", "email"),
        (
            "client_code",
            "client_code = \"D 12345\"",
            "letters and digits",
        ),
        ("pin", "pin = \"env:KOTAK_MPIN\"", "4 digits"),
        ("totp_seed", "totp_seed = \"482913\"", "6-digit TOTP code"),
        (
            "totp_seed",
            "totp_seed = \"otpauth://totp/x?secret=MFRGGZDFMZTWQ2LK\"",
            "otpauth",
        ),
        ("totp_seed", "totp_seed = \"not base32!\"", "not base32"),
        (
            "totp_seed",
            "totp_seed = \"MFRGGZDF\"",
            "fewer than 10 bytes",
        ),
        ("totp_min_remaining", "totp_min_remaining = \"25s\"", "25s"),
        ("lifetime_fallback", "lifetime_fallback = \"30h\"", "28h"),
        ("lifetime_fallback", "lifetime_fallback = \"10m\"", "1h"),
        ("public_ip", "public_ip = \"my-ip\"", "not an IP address"),
        ("local_ip", "local_ip = \"1.2.3\"", "not an IP address"),
        (
            "mac_address",
            "mac_address = \"02:11:22\"",
            "not a MAC address",
        ),
        (
            "api_root",
            "api_root = \"https://apiconnect.angelone.in/rest\"",
            "host only",
        ),
        ("renew_checksum", "renew_checksum = \"yes\"", ""),
    ];
    for (key, line, says) in cases {
        let text = angel_with(key, line);
        let p = problems(&text);
        let problem = problem_on(&p, &format!("account[0].angel_one.{key}"));
        let shown = problem.to_string();
        assert!(shown.contains(says), "{line}: {shown}");
        assert!(!problem.fix.is_empty(), "{line}: no fix");
        assert_no_secrets(&ConfigErrors(p.clone()).to_string());
    }
}

#[test]
fn missing_and_unknown_keys() {
    let text = ANGEL.replace("pin = \"env:ANGEL_PIN\"\n", "");
    let p = problems(&text);
    problem_on(&p, "account[0].angel_one.pin");
    let text = format!("{ANGEL}mpin = \"env:ANGEL_PIN\"\n");
    let shown = ConfigErrors(problems(&text)).to_string();
    assert!(shown.contains("mpin"), "{shown}");
    let text = "[[account]]\nbroker = \"angel_one\"\nname = \"main\"\n";
    let p = problems(text);
    assert!(
        problem_on(&p, "account[0].angel_one")
            .fix
            .contains("api_key, client_code, pin and totp_seed")
    );
    // Another broker's table next to angel_one.
    let text = format!("{ANGEL}[account.kotak_neo]\nucc = \"X\"\n");
    let p = problems(&text);
    problem_on(&p, "account[0].kotak_neo");
}

#[test]
fn one_client_code_is_configured_once() {
    let second = ANGEL.replace("name = \"main\"", "name = \"other\"");
    let p = problems(&format!("{ANGEL}{second}"));
    let problem = problem_on(&p, "account[1].angel_one.client_code");
    assert!(problem.message.contains("account[0]"), "{problem}");
}
