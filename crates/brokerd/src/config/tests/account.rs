//! `[[account]]`: identity, brokers, Jainam settings, secrets.

use super::*;

#[test]
fn duplicate_account_names_the_second_one() {
    let second = ACCOUNT
        .replace("env:APP", "env:APP2")
        .replace("env:SECRET", "env:SECRET2");
    let p = problems(&format!("{ACCOUNT}{second}"));
    assert_eq!(keys(&p), ["account[1].name"]);
    assert!(
        p[0].message
            .contains("jainam/main is already defined by account[0]"),
        "{}",
        p[0]
    );
}

#[test]
fn same_app_key_twice_is_refused() {
    let second = ACCOUNT.replace("\"main\"", "\"other\"");
    let p = problems(&format!("{ACCOUNT}{second}"));
    let dup = problem_on(&p, "account[1].jainam.interactive.app_key");
    assert!(
        dup.message
            .contains("account[0].jainam.interactive.app_key"),
        "{dup}"
    );
    assert_no_secrets(&dup.to_string());
}

#[test]
fn bad_account_names() {
    for bad in ["Main", "", "a b", "main.x", &"a".repeat(33)] {
        let p = problems(&ACCOUNT.replace("\"main\"", &format!("{bad:?}")));
        let n = problem_on(&p, "account[0].name");
        assert!(
            n.message.contains("not a valid account name"),
            "{bad:?}: {n}"
        );
        assert!(n.fix.contains("a-z, 0-9, _ and -"));
    }
    ok(&ACCOUNT.replace("\"main\"", &format!("{:?}", "a".repeat(32))));
    ok(&ACCOUNT.replace("\"main\"", "\"prop-2_x\""));
    let p = problems(&ACCOUNT.replace("name = \"main\"\n", ""));
    assert_eq!(problem_on(&p, "account[0].name").message, "is required");
}

#[test]
fn jainam_table_is_required_for_jainam() {
    let p = problems("[[account]]\nbroker = \"jainam\"\nname = \"main\"\n");
    assert_eq!(keys(&p), ["account[0].jainam"]);
    assert!(p[0].fix.contains("[account.jainam.interactive]"));

    // A table with neither key pair.
    let p = problems("[[account]]\nbroker = \"jainam\"\nname = \"main\"\n[account.jainam]\n");
    let j = problem_on(&p, "account[0].jainam");
    assert!(
        j.message.contains("neither an interactive nor a market"),
        "{j}"
    );

    // Market only is fine.
    let c = ok(&ACCOUNT.replace("jainam.interactive", "jainam.market")).config;
    let j = c.accounts[0].jainam.as_ref().unwrap();
    assert!(j.interactive.is_none() && j.market.is_some());
}

#[test]
fn unknown_brokers_and_misplaced_tables() {
    for b in ["zerodha", "breeze"] {
        let p = problems(&ACCOUNT.replace("\"jainam\"", &format!("\"{b}\"")));
        let table = problem_on(&p, &format!("account[0].{b}"));
        assert!(table.message.contains("needs an [account."), "{table}");
        // The account kept its [account.jainam] table: it is for another broker.
        let j = problem_on(&p, "account[0].jainam");
        assert!(j.message.contains("only for broker = \"jainam\""), "{j}");
    }
    let p = problems(&ACCOUNT.replace("\"jainam\"", "\"icici\""));
    assert_eq!(keys(&p), ["account[0].broker"]);
    assert!(p[0].message.contains("unknown broker \"icici\""));

    let p = problems(&format!("{ACCOUNT}[account.zerodha]\n"));
    let z = problem_on(&p, "account[0].zerodha");
    assert!(z.message.contains("only for broker = \"zerodha\""), "{z}");
}

#[test]
fn a_simulator_section_points_to_the_demo() {
    let text = format!("{ACCOUNT}[account.jainam]\nroot = \"simulator\"\n");
    let p = problems(&text);
    assert_eq!(keys(&p), ["account[0].jainam.root"]);
    let p = problems(&format!("[simulator]\n{ACCOUNT}"));
    assert_eq!(keys(&p), ["simulator"]);
    assert!(p[0].message.contains("brokerd-demo"), "{}", p[0]);
}

#[test]
fn jainam_root_and_prefix() {
    let with = |root: &str| format!("{ACCOUNT}[account.jainam]\nroot = {root:?}\n");
    let c = ok(&with("https://smpa.jainam.in:6543/")).config;
    assert_eq!(
        c.accounts[0].jainam.as_ref().unwrap().root,
        "https://smpa.jainam.in:6543"
    );
    for bad in [
        "jtrade.jainam.in",
        "https://",
        "https://h:x",
        "https://h/a b",
        "ftp://h",
    ] {
        let p = problems(&with(bad));
        assert!(
            problem_on(&p, "account[0].jainam.root")
                .fix
                .contains("https://"),
            "{bad}"
        );
    }
    let plain = ok(&with("http://10.0.0.5:5000"));
    assert_eq!(plain.warnings.len(), 1);
    assert!(plain.warnings[0].starts_with("account[0].jainam.root: "));
    assert!(ok(&with("http://127.0.0.1:5000")).warnings.is_empty());

    let p = problems(&format!(
        "{ACCOUNT}[account.jainam]\nmarket_prefix = \"apimarketdata\"\n"
    ));
    assert!(
        problem_on(&p, "account[0].jainam.market_prefix")
            .fix
            .contains("starting with /")
    );
}

#[test]
fn missing_env_secret_names_the_variable_not_a_value() {
    let p = problems(&ACCOUNT.replace("env:SECRET", "env:JAINAM_SECRET_UNSET"));
    assert_eq!(keys(&p), ["account[0].jainam.interactive.secret_key"]);
    assert!(p[0].message.contains("JAINAM_SECRET_UNSET"), "{}", p[0]);
    assert!(p[0].fix.contains("JAINAM_SECRET_UNSET"));
    assert_no_secrets(&ConfigErrors(p).to_string());

    let p = problems(&ACCOUNT.replace("env:SECRET", "env:NOT A NAME"));
    let bad = problem_on(&p, "account[0].jainam.interactive.secret_key");
    assert!(
        bad.message
            .contains("does not name an environment variable")
    );
}

#[test]
fn file_and_cred_secrets() {
    let dir = tempfile::tempdir().unwrap();
    super::write_secret(&dir.path().join("secret"), "from-file\n");
    let text = ACCOUNT
        .replace("env:SECRET", "file:./secret")
        .replace("env:APP", "cred:app");
    // cred: without $CREDENTIALS_DIRECTORY: a problem that says how to get one.
    let p = match Config::from_toml_str(&text, dir.path(), &env()) {
        Err(ConfigErrors(p)) => p,
        Ok(_) => panic!("cred: resolved without a credentials folder"),
    };
    let cred = problem_on(&p, "account[0].jainam.interactive.app_key");
    assert!(cred.message.contains("CREDENTIALS_DIRECTORY"), "{cred}");
    assert!(cred.fix.contains("LoadCredential=app"), "{cred}");

    super::write_secret(&dir.path().join("app"), "from-cred");
    let creds = SecretEnv::fake([], Some(dir.path().to_path_buf()));
    let c = Config::from_toml_str(&text, dir.path(), &creds)
        .unwrap()
        .config;
    let pair = c.accounts[0]
        .jainam
        .as_ref()
        .unwrap()
        .interactive
        .clone()
        .unwrap();
    assert_eq!(pair.app_key.expose(), "from-cred");
    assert_eq!(pair.secret_key.expose(), "from-file");

    // An unreadable file names the resolved path.
    let text = ACCOUNT.replace("env:SECRET", "file:missing/secret");
    let p = match Config::from_toml_str(&text, dir.path(), &env()) {
        Err(ConfigErrors(p)) => p,
        Ok(_) => panic!("a missing file resolved"),
    };
    let f = problem_on(&p, "account[0].jainam.interactive.secret_key");
    let expected = dir.path().join("missing/secret");
    assert!(f.message.contains(&expected.display().to_string()), "{f}");
}

#[test]
fn literal_secret_is_accepted_with_a_warning() {
    let loaded = ok(&ACCOUNT.replace("env:SECRET", "literal-secret-3b8a"));
    assert_eq!(loaded.warnings.len(), 1);
    let w = &loaded.warnings[0];
    assert!(
        w.starts_with("account[0].jainam.interactive.secret_key: secret written literally"),
        "{w}"
    );
    assert!(w.contains("env:NAME") && w.contains("cred:NAME"));
    assert!(!w.contains("literal-secret-3b8a"));
    let pair = loaded.config.accounts[0]
        .jainam
        .as_ref()
        .unwrap()
        .interactive
        .clone()
        .unwrap();
    assert_eq!(pair.secret_key.expose(), "literal-secret-3b8a");
}
