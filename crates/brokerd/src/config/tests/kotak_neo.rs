//! `[account.kotak_neo]`: defaults, credential shapes, cross-account checks.

use super::*;

/// [`KOTAK`] with the line starting with `{key} =` in `[account.kotak_neo]`
/// replaced by `line` (or `line` added when the key is not there).
fn kotak_with(key: &str, line: &str) -> String {
    let prefix = format!("{key} = ");
    let mut out = String::new();
    let mut replaced = false;
    for l in KOTAK.lines() {
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

fn kotak(loaded: &Loaded) -> &KotakNeoConfig {
    loaded.config.accounts[0].kotak_neo.as_ref().unwrap()
}

#[test]
fn defaults() {
    let loaded = ok(KOTAK);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let a = loaded.config.account(BrokerId::KotakNeo, "main").unwrap();
    assert_eq!(a.broker, BrokerId::KotakNeo);
    assert!(a.jainam.is_none());
    // The session policy is the same as for any other broker.
    assert_eq!(a.policy, ok(ACCOUNT).config.accounts[0].policy);
    let k = kotak(&loaded);
    assert_eq!(k.login_host, "https://mis.kotaksecurities.com");
    assert_eq!(k.access_token.expose(), KOTAK_TOKEN_VALUE);
    assert_eq!(k.mobile, "+919876543210");
    assert_eq!(k.ucc, "AB12C");
    assert_eq!(k.mpin.expose(), KOTAK_MPIN_VALUE);
    assert_eq!(k.totp_seed.expose(), KOTAK_SEED_VALUE);
    let hello = b"Hello!\xde\xad\xbe\xef";
    assert_eq!(k.totp_key(), Some([&hello[..], &hello[..]].concat()));
    assert_eq!(k.totp_min_remaining, Duration::from_secs(5));
    assert_eq!(k.clock_skew_warning, Duration::from_secs(2));
    assert_eq!(k.neo_fin_key, "neotradeapi");
}

#[test]
fn values_are_read_and_policy_keys_work() {
    let text = format!(
        "{}login_host = \"https://neo.example.in/\"\ntotp_min_remaining = \"0s\"\n\
         clock_skew_warning = \"5s\"\nneo_fin_key = \"otherkey\"\n",
        KOTAK.replace(
            "name = \"main\"\n",
            "name = \"main\"\nrefresh_margin = \"20m\"\nallowed_uids = [1005]\n"
        )
    );
    let loaded = ok(&text);
    let a = &loaded.config.accounts[0];
    assert_eq!(a.policy.refresh_margin, Duration::from_secs(1200));
    assert_eq!(a.allowed_uids, [1005]);
    let k = kotak(&loaded);
    assert_eq!(k.login_host, "https://neo.example.in");
    assert_eq!(k.totp_min_remaining, Duration::ZERO);
    assert_eq!(k.clock_skew_warning, Duration::from_secs(5));
    assert_eq!(k.neo_fin_key, "otherkey");
}

#[test]
fn jainam_and_kotak_accounts_side_by_side() {
    let loaded = ok(&format!("{ACCOUNT}{KOTAK}"));
    let c = &loaded.config;
    assert_eq!(c.accounts.len(), 2);
    assert!(
        c.account(BrokerId::Jainam, "main")
            .unwrap()
            .jainam
            .is_some()
    );
    assert!(
        c.account(BrokerId::KotakNeo, "main")
            .unwrap()
            .kotak_neo
            .is_some()
    );
    assert!(c.account(BrokerId::KotakNeo, "other").is_none());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brokerd.toml");
    let daemon = super::private_daemon(dir.path());
    std::fs::write(&path, format!("{daemon}{ACCOUNT}{KOTAK}")).unwrap();
    let (passed, text) = check_config_report_in(&path, &env());
    assert!(passed, "{text}");
    assert!(
        text.starts_with("ok: 2 accounts (jainam/main, kotak_neo/main) in "),
        "{text}"
    );
}

#[test]
fn mobile_forms_are_normalised() {
    for good in [
        "9876543210",
        "+919876543210",
        "919876543210",
        "+91 98765 43210",
        "+91-98765-43210",
        "98765-43210",
        " 91 9876 543 210 ",
    ] {
        let loaded = ok(&kotak_with("mobile", &format!("mobile = {good:?}")));
        assert_eq!(kotak(&loaded).mobile, "+919876543210", "{good:?}");
    }
    // Digits unlike the example in the fix, so an echo would show.
    for bad in [
        "",
        "701234567",
        "70123456789",
        "+917012345",
        "+1 7012345678",
        "07012345678",
        "0917012345678",
        "+91 5012345678",
        "1234567890",
        "70123x5678",
        "+91+7012345678",
        "(+91) 7012345678",
    ] {
        let p = problems(&kotak_with("mobile", &format!("mobile = {bad:?}")));
        let m = problem_on(&p, "account[0].kotak_neo.mobile");
        assert_eq!(
            m.message, "must be a 10-digit Indian mobile number, with or without +91",
            "{bad:?}"
        );
        assert!(m.fix.contains("+919876543210"), "{m}");
        if bad.len() > 4 {
            assert!(!m.to_string().contains(bad), "{bad:?} echoed: {m}");
        }
    }
    let p = problems(&kotak_with("mobile", "mobile = 9876543210"));
    let m = problem_on(&p, "account[0].kotak_neo.mobile");
    assert_eq!(m.message, "must be a string, not integer");
    let p = problems(&kotak_with("mobile", ""));
    assert_eq!(
        problem_on(&p, "account[0].kotak_neo.mobile").message,
        "is required"
    );
}

#[test]
fn normalize_mobile_directly() {
    use super::super::kotak_neo::normalize_mobile;
    assert_eq!(
        normalize_mobile("6000000000").as_deref(),
        Some("+916000000000")
    );
    // Ten digits starting with 91 are a number, not a country code.
    assert_eq!(
        normalize_mobile("9198765432").as_deref(),
        Some("+919198765432")
    );
    assert_eq!(normalize_mobile("+91"), None);
    assert_eq!(normalize_mobile("91"), None);
}

#[test]
fn ucc_is_uppercased_and_checked() {
    for (written, stored) in [("ab12c", "AB12C"), ("X", "X"), ("abcde12345", "ABCDE12345")] {
        let loaded = ok(&kotak_with("ucc", &format!("ucc = {written:?}")));
        assert_eq!(kotak(&loaded).ucc, stored);
    }
    for bad in ["", "AB 12", "AB-12", "ABCDEFGHIJK", "ÄB12", "AB12\n"] {
        let p = problems(&kotak_with("ucc", &format!("ucc = {bad:?}")));
        let u = problem_on(&p, "account[0].kotak_neo.ucc");
        assert!(u.message.contains("1 to 10 letters and digits"), "{u}");
        assert!(u.fix.contains("profile"), "{u}");
    }
    let p = problems(&kotak_with("ucc", "ucc = 12345"));
    assert_eq!(
        problem_on(&p, "account[0].kotak_neo.ucc").message,
        "must be a string, not integer"
    );
    let p = problems(&kotak_with("ucc", ""));
    assert_eq!(
        problem_on(&p, "account[0].kotak_neo.ucc").message,
        "is required"
    );
}

#[test]
fn mpin_must_be_six_digits_and_is_never_shown() {
    for bad in ["12345", "1234567", "12a456", " 123456", "１２３４５６"] {
        let env = SecretEnv::fake(
            [
                ("KOTAK_TOKEN", KOTAK_TOKEN_VALUE),
                ("KOTAK_MPIN", bad),
                ("KOTAK_SEED", KOTAK_SEED_VALUE),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
            None,
        );
        let p = match Config::from_toml_str(KOTAK, base(), &env) {
            Err(ConfigErrors(p)) => p,
            Ok(_) => panic!("mpin {bad:?} was accepted"),
        };
        assert_eq!(keys(&p), ["account[0].kotak_neo.mpin"], "{bad:?}");
        assert!(p[0].message.contains("not exactly 6 digits"), "{}", p[0]);
        assert!(!p[0].to_string().contains(bad.trim()), "{}", p[0]);
    }
    let p = problems(&kotak_with("mpin", ""));
    let m = problem_on(&p, "account[0].kotak_neo.mpin");
    assert_eq!(m.message, "is required");
    assert!(m.fix.contains("cred:NAME"));
}

#[test]
fn totp_seed_must_be_base32_of_ten_bytes() {
    for (bad, says) in [
        ("JBSWY3DPEHPK3PX1", "is not base32"),
        ("JBSWY3DPEHPK3PXPJ", "is not base32"),
        ("JBSWY3DP-EHPK3PXP", "is not base32"),
        ("JBSWY3DPEHPK3PX=", "fewer than 10 bytes"),
        ("JBSWY3DP", "fewer than 10 bytes"),
        ("839 201", "6-digit TOTP code"),
        (
            "otpauth://totp/Kotak:AB12C?secret=JBSWY3DPEHPK3PXP&issuer=Kotak",
            "otpauth:// URI",
        ),
    ] {
        let text = kotak_with("totp_seed", &format!("totp_seed = {bad:?}"));
        let p = problems(&text);
        let s = problem_on(&p, "account[0].kotak_neo.totp_seed");
        assert!(s.message.contains(says), "{bad:?}: {s}");
        assert!(s.message.contains("not shown"), "{s}");
        assert!(!s.to_string().contains(bad), "{bad:?} echoed: {s}");
        assert!(!s.to_string().contains("JBSWY3DP"), "{s}");
    }
    for good in [
        "JBSWY3DPEHPK3PXP",
        "jbswy3dpehpk3pxp",
        "JBSW Y3DP EHPK 3PXP",
        "JBSWY3DPEHPK3PXPJBSWY3DPEH======",
        "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
    ] {
        let loaded = ok(&kotak_with("totp_seed", &format!("totp_seed = {good:?}")));
        assert!(kotak(&loaded).totp_key().is_some_and(|k| k.len() >= 10));
    }
}

#[test]
fn base32_decodes_the_rfc_4648_vectors() {
    use super::super::kotak_neo::decode_base32;
    for (text, bytes) in [
        ("", ""),
        ("MY======", "f"),
        ("MZXQ====", "fo"),
        ("MZXW6===", "foo"),
        ("MZXW6YQ=", "foob"),
        ("MZXW6YTB", "fooba"),
        ("MZXW6YTBOI======", "foobar"),
        ("mzxw 6ytb oi", "foobar"),
    ] {
        assert_eq!(
            decode_base32(text),
            Some(bytes.as_bytes().to_vec()),
            "{text}"
        );
    }
    for bad in ["M", "MZX", "MZXW6Y", "MZXW6YT0", "MZXW6YT8", "MZXW6YT!"] {
        assert_eq!(decode_base32(bad), None, "{bad}");
    }
}

#[test]
fn totp_and_clock_limits() {
    for bad in ["25s", "30s", "1m"] {
        let p = problems(&format!("{KOTAK}totp_min_remaining = {bad:?}\n"));
        let t = problem_on(&p, "account[0].kotak_neo.totp_min_remaining");
        assert!(t.fix.contains("less than \"25s\""), "{t}");
    }
    let loaded = ok(&format!("{KOTAK}totp_min_remaining = \"24s 999ms\"\n"));
    assert_eq!(
        kotak(&loaded).totp_min_remaining,
        Duration::from_millis(24_999)
    );
    let p = problems(&format!("{KOTAK}totp_min_remaining = 5\n"));
    assert!(
        problem_on(&p, "account[0].kotak_neo.totp_min_remaining")
            .message
            .contains("no unit")
    );

    for bad in ["0s", "999ms"] {
        let p = problems(&format!("{KOTAK}clock_skew_warning = {bad:?}\n"));
        let s = problem_on(&p, "account[0].kotak_neo.clock_skew_warning");
        assert!(s.fix.contains("at least \"1s\""), "{s}");
    }
    ok(&format!("{KOTAK}clock_skew_warning = \"1s\"\n"));

    for bad in ["", "neo trade", "neo\ttrade"] {
        let p = problems(&format!("{KOTAK}neo_fin_key = {bad:?}\n"));
        problem_on(&p, "account[0].kotak_neo.neo_fin_key");
    }
}

#[test]
fn login_host_is_a_url_or_the_simulator() {
    for bad in [
        "mis.kotaksecurities.com",
        "https://",
        "ftp://h",
        "https://h:x",
    ] {
        let p = problems(&format!("{KOTAK}login_host = {bad:?}\n"));
        let h = problem_on(&p, "account[0].kotak_neo.login_host");
        assert!(h.fix.contains("https://mis.kotaksecurities.com"), "{h}");
    }
    let plain = ok(&format!("{KOTAK}login_host = \"http://10.0.0.5:8080\"\n"));
    assert_eq!(plain.warnings.len(), 1);
    assert!(
        plain.warnings[0]
            .starts_with("account[0].kotak_neo.login_host: http://10.0.0.5:8080 is plain http"),
        "{}",
        plain.warnings[0]
    );
    let local = ok(&format!("{KOTAK}login_host = \"http://127.0.0.1:8080/\"\n"));
    assert!(local.warnings.is_empty());
    assert_eq!(kotak(&local).login_host, "http://127.0.0.1:8080");

    let text = format!("{KOTAK}login_host = \"simulator\"\n");
    let p = problems(&text);
    assert_eq!(keys(&p), ["account[0].kotak_neo.login_host"]);
    // Not a URL: brokerd has no bundled simulator (brokerd-demo rewrites
    // this value before brokerd reads the file).
    assert!(p[0].message.contains("\"simulator\""), "{}", p[0]);
}

#[test]
fn kotak_table_is_required_for_kotak_and_only_for_it() {
    let p = problems("[[account]]\nbroker = \"kotak_neo\"\nname = \"main\"\n");
    assert_eq!(keys(&p), ["account[0].kotak_neo"]);
    assert!(p[0].message.contains("needs an [account.kotak_neo] table"));
    assert!(p[0].fix.contains("totp_seed"), "{}", p[0]);

    // Every required key is named at once.
    let p = problems("[[account]]\nbroker = \"kotak_neo\"\nname = \"main\"\n[account.kotak_neo]\n");
    assert_eq!(
        keys(&p),
        [
            "account[0].kotak_neo.access_token",
            "account[0].kotak_neo.mobile",
            "account[0].kotak_neo.ucc",
            "account[0].kotak_neo.mpin",
            "account[0].kotak_neo.totp_seed",
        ]
    );
    assert!(p.iter().all(|p| p.message == "is required"));

    // A Kotak table on a Jainam account, and the other way round.
    let p = problems(&format!("{ACCOUNT}[account.kotak_neo]\nucc = \"AB1\"\n"));
    let k = problem_on(&p, "account[0].kotak_neo");
    assert!(k.message.contains("only for broker = \"kotak_neo\""), "{k}");
    assert!(k.message.contains("broker is jainam"), "{k}");
    let p = problems(&format!(
        "{KOTAK}[account.jainam.interactive]\napp_key = \"x\"\n"
    ));
    let j = problem_on(&p, "account[0].jainam");
    assert!(j.message.contains("only for broker = \"jainam\""), "{j}");

    let p =
        problems("[[account]]\nbroker = \"kotak_neo\"\nname = \"main\"\nkotak_neo = \"token\"\n");
    assert_eq!(
        problem_on(&p, "account[0].kotak_neo").message,
        "must be a table, not string"
    );
}

#[test]
fn unknown_and_misplaced_keys() {
    let p = problems(&format!("{KOTAK}totp_sed = \"x\"\n"));
    let u = problem_on(&p, "account[0].kotak_neo.totp_sed");
    assert!(u.message.contains("unknown field `totp_sed`"), "{u}");
    let p = problems(&format!("{KOTAK}refresh_margin = \"5m\"\n"));
    let m = problem_on(&p, "account[0].kotak_neo.refresh_margin");
    assert!(
        m.fix.contains("refresh_margin belongs in [[account]]"),
        "{m}"
    );
    let p = problems(&KOTAK.replace("name = \"main\"\n", "name = \"main\"\nucc = \"AB1\"\n"));
    let m = problem_on(&p, "account[0].ucc");
    assert!(m.fix.contains("ucc belongs in [account.kotak_neo]"), "{m}");
}

#[test]
fn one_client_code_in_two_accounts_is_refused() {
    let second = KOTAK
        .replace("\"main\"", "\"second\"")
        .replace("\"ab12c\"", "\"AB12C\"");
    let p = problems(&format!("{KOTAK}{second}"));
    assert_eq!(keys(&p), ["account[1].kotak_neo.ucc"]);
    assert!(
        p[0].message.contains("used by account[0].kotak_neo.ucc"),
        "{}",
        p[0]
    );
    assert!(p[0].fix.contains("fight"), "{}", p[0]);

    // Different client codes are two accounts; the same name is not.
    let other = second.replace("\"AB12C\"", "\"CD34E\"");
    assert_eq!(ok(&format!("{KOTAK}{other}")).config.accounts.len(), 2);
    let p = problems(&format!(
        "{KOTAK}{}",
        other.replace("\"second\"", "\"main\"")
    ));
    assert_eq!(keys(&p), ["account[1].name"]);
    assert!(p[0].message.contains("kotak_neo/main is already defined"));

    // A Jainam client_id equal to a Kotak UCC is a different broker's code.
    ok(&format!(
        "{ACCOUNT}[account.jainam]\nclient_id = \"AB12C\"\n{KOTAK}"
    ));
}

#[test]
fn literal_secrets_are_accepted_with_warnings() {
    let text = KOTAK
        .replace("env:KOTAK_TOKEN", "literal-token-91fe")
        .replace("env:KOTAK_MPIN", "654321")
        .replace("env:KOTAK_SEED", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    let loaded = ok(&text);
    let keys: Vec<&str> = loaded
        .warnings
        .iter()
        .map(|w| w.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "account[0].kotak_neo.access_token",
            "account[0].kotak_neo.mpin",
            "account[0].kotak_neo.totp_seed",
        ]
    );
    for w in &loaded.warnings {
        assert!(w.contains("secret written literally"), "{w}");
        for secret in ["literal-token-91fe", "654321", "GEZDGNBV"] {
            assert!(!w.contains(secret), "{w}");
        }
    }
    let k = kotak(&loaded);
    assert_eq!(k.mpin.expose(), "654321");
    assert_eq!(k.totp_key().as_deref(), Some(&b"12345678901234567890"[..]));
}

#[test]
fn missing_secret_reference_names_the_variable() {
    let p = problems(&KOTAK.replace("env:KOTAK_TOKEN", "env:KOTAK_TOKEN_UNSET"));
    assert_eq!(keys(&p), ["account[0].kotak_neo.access_token"]);
    assert!(p[0].message.contains("KOTAK_TOKEN_UNSET"));
}

#[test]
fn debug_output_masks_kotak_secrets() {
    let debug = format!("{:?}", ok(KOTAK));
    assert_no_secrets(&debug);
    assert!(debug.contains("access_token: Secret(***)"), "{debug}");
}

/// Everything wrong at once is reported at once, in file order.
#[test]
fn every_kotak_problem_is_collected() {
    let text = r#"
[[account]]
broker = "kotak_neo"
name = "main"
[account.kotak_neo]
login_host = "simulator"
access_token = "env:UNSET_TOKEN"
mobile = "12345"
ucc = "a b"
mpin = "12"
totp_seed = "0000"
totp_min_remaining = "26s"
clock_skew_warning = "0s"
"#;
    let p = problems(text);
    assert_eq!(
        keys(&p),
        [
            "account[0].kotak_neo.login_host",
            "account[0].kotak_neo.access_token",
            "account[0].kotak_neo.mobile",
            "account[0].kotak_neo.ucc",
            "account[0].kotak_neo.mpin",
            "account[0].kotak_neo.totp_seed",
            "account[0].kotak_neo.totp_min_remaining",
            "account[0].kotak_neo.clock_skew_warning",
        ],
        "{}",
        ConfigErrors(p.clone())
    );
}
