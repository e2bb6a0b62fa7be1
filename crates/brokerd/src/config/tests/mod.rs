//! Tests of loading and validation: the example file, the defaults, and one
//! test per kind of mistake, each asserting the key the problem names.
//! Section-specific cases are in `daemon.rs` and `account.rs`.

mod account;
mod angel_one;
mod daemon;
mod interactive;
mod kotak_neo;
mod urls;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::secret::{SecretEnv, SecretRef};

pub(super) const APP_VALUE: &str = "app-value-0c9f";
pub(super) const SECRET_VALUE: &str = "secret-value-7d1e";
pub(super) const KOTAK_TOKEN_VALUE: &str = "kotak-token-5a2c";
pub(super) const KOTAK_MPIN_VALUE: &str = "482913";
/// 20 bytes in base32, lowercase and grouped as some apps show it.
pub(super) const KOTAK_SEED_VALUE: &str = "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp";

pub(super) const ANGEL_KEY_VALUE: &str = "angel-key-3f8e";
pub(super) const ANGEL_PIN_VALUE: &str = "7391";
pub(super) const ANGEL_SEED_VALUE: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

pub(super) const KITE_KEY_VALUE: &str = "kite-key-value";
pub(super) const KITE_SECRET_VALUE: &str = "kite-secret-value";

/// Vars the minimal account refers to, plus a second pair for tests that
/// need two accounts.
pub(super) fn env() -> SecretEnv {
    SecretEnv::fake(
        [
            ("APP", APP_VALUE),
            ("SECRET", SECRET_VALUE),
            ("APP2", "app-value-2"),
            ("SECRET2", "secret-value-2"),
            ("KOTAK_TOKEN", KOTAK_TOKEN_VALUE),
            ("KOTAK_MPIN", KOTAK_MPIN_VALUE),
            ("KOTAK_SEED", KOTAK_SEED_VALUE),
            ("KITE_KEY", KITE_KEY_VALUE),
            ("ANGEL_KEY", ANGEL_KEY_VALUE),
            ("ANGEL_PIN", ANGEL_PIN_VALUE),
            ("ANGEL_SEED", ANGEL_SEED_VALUE),
            ("KITE_SECRET", KITE_SECRET_VALUE),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
        None,
    )
}

pub(super) const ACCOUNT: &str = r#"
[[account]]
broker = "jainam"
name = "main"
[account.jainam.interactive]
app_key = "env:APP"
secret_key = "env:SECRET"
"#;

/// The smallest valid Kotak Neo account; its secrets are in [`env`].
pub(super) const KOTAK: &str = r#"
[[account]]
broker = "kotak_neo"
name = "main"
[account.kotak_neo]
access_token = "env:KOTAK_TOKEN"
mobile = "9876543210"
ucc = "ab12c"
mpin = "env:KOTAK_MPIN"
totp_seed = "env:KOTAK_SEED"
"#;

/// The smallest valid Angel One account; its secrets are in [`env`].
pub(super) const ANGEL: &str = r#"
[[account]]
broker = "angel_one"
name = "main"
[account.angel_one]
api_key = "env:ANGEL_KEY"
client_code = "d12345"
pin = "env:ANGEL_PIN"
totp_seed = "env:ANGEL_SEED"
"#;

/// [`ACCOUNT`] with `extra` lines on the account table itself (appending
/// them would put them in `[account.jainam.interactive]`).
pub(super) fn account_with(extra: &str) -> String {
    ACCOUNT.replace("name = \"main\"\n", &format!("name = \"main\"\n{extra}\n"))
}

pub(super) fn base() -> &'static Path {
    Path::new("/etc/brokerd")
}

pub(super) fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    Config::from_toml_str(text, base(), &env())
}

pub(super) fn ok(text: &str) -> Loaded {
    match parse(text) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

pub(super) fn problems(text: &str) -> Vec<ConfigProblem> {
    match parse(text) {
        Ok(_) => panic!("expected problems, the config was accepted:\n{text}"),
        Err(ConfigErrors(problems)) => {
            assert!(!problems.is_empty());
            problems
        }
    }
}

/// The one problem on `key`; fails listing all problems otherwise.
pub(super) fn problem_on<'a>(problems: &'a [ConfigProblem], key: &str) -> &'a ConfigProblem {
    let on: Vec<_> = problems.iter().filter(|p| p.key == key).collect();
    match on.as_slice() {
        [one] => one,
        _ => panic!(
            "expected one problem on {key}, got:\n{}",
            ConfigErrors(problems.to_vec())
        ),
    }
}

pub(super) fn keys(problems: &[ConfigProblem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// No secret value from [`env`] anywhere in what an operator gets to see.
pub(super) fn assert_no_secrets(text: &str) {
    for v in [
        APP_VALUE,
        SECRET_VALUE,
        "app-value-2",
        "secret-value-2",
        KOTAK_TOKEN_VALUE,
        KOTAK_MPIN_VALUE,
        KOTAK_SEED_VALUE,
        ANGEL_KEY_VALUE,
        ANGEL_PIN_VALUE,
        ANGEL_SEED_VALUE,
    ] {
        assert!(!text.contains(v), "secret value leaked into: {text}");
    }
}

pub(super) fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/brokerd.example.toml")
}

/// The example with every credential it names present in a temp folder.
pub(super) fn load_example() -> (Loaded, tempfile::TempDir) {
    let creds = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("brokerd-key", "k".repeat(64)),
        ("jainam-main-interactive-app-key", "ia-app".to_string()),
        (
            "jainam-main-interactive-secret-key",
            "ia-secret\n".to_string(),
        ),
        ("jainam-main-market-app-key", "md-app".to_string()),
        ("jainam-main-market-secret-key", "md-secret".to_string()),
        ("kotak-main-access-token", "kn-token\n".to_string()),
        ("kotak-main-mpin", "123456\n".to_string()),
        (
            "kotak-main-totp-seed",
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n".to_string(),
        ),
        ("zerodha-main-api-key", "kite-key".to_string()),
        ("zerodha-main-api-secret", "kite-secret".to_string()),
        ("breeze-main-app-key", "breeze+key=".to_string()),
        ("breeze-main-secret-key", "breeze-secret".to_string()),
        ("angel-main-api-key", "angel-key".to_string()),
        ("angel-main-pin", "7391\n".to_string()),
        (
            "angel-main-totp-seed",
            "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U\n".to_string(),
        ),
    ] {
        write_secret(&creds.path().join(name), &value);
    }
    let env = SecretEnv::fake([], Some(creds.path().to_path_buf()));
    match Config::load_in(&example_path(), &env) {
        Ok(loaded) => (loaded, creds),
        Err(e) => panic!("the example config does not load:\n{e}"),
    }
}

#[test]
fn example_config_loads_with_its_credentials() {
    let (loaded, _creds) = load_example();
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let c = &loaded.config;
    assert_eq!(c.source.as_deref(), Some(example_path().as_path()));
    assert_eq!(c.daemon.socket, Path::new("/run/brokerd/brokerd.sock"));
    assert_eq!(c.daemon.socket_mode, 0o660);
    assert_eq!(c.daemon.socket_group.as_deref(), Some("brokerd"));
    assert_eq!(c.daemon.state_dir, Path::new("/var/lib/brokerd"));
    assert_eq!(
        c.daemon.database_url,
        "sqlite:///var/lib/brokerd/brokerd.db"
    );
    assert_eq!(c.daemon.key, Some(SecretRef::Cred("brokerd-key".into())));
    assert!(!c.daemon.create_key_if_missing);
    assert_eq!(c.accounts.len(), 5);
    assert_eq!(
        c.daemon.notify.as_ref().map(|n| n.argv.clone()),
        Some(vec!["/usr/local/bin/brokerd-alert".to_string()])
    );
    let cb = c.callback.as_ref().unwrap();
    assert_eq!(
        cb.redirect_url(BrokerId::Zerodha, "main"),
        "http://127.0.0.1:8765/callback/zerodha/main"
    );
    let z = c.account(BrokerId::Zerodha, "main").unwrap();
    let z = z.zerodha.as_ref().unwrap();
    assert_eq!(
        (z.api_key.expose(), z.api_secret.expose()),
        ("kite-key", "kite-secret")
    );
    assert_eq!(z.user_id.as_deref(), Some("AB1234"));
    let b = c.account(BrokerId::Breeze, "main").unwrap();
    let b = b.breeze.as_ref().unwrap();
    assert_eq!(b.app_key.expose(), "breeze+key=");
    assert_eq!(b.user_id.as_deref(), Some("BZ1234"));
    let a = c.account(BrokerId::Jainam, "main").unwrap();
    let j = a.jainam.as_ref().unwrap();
    assert_eq!(j.root, "https://jtrade.jainam.in:5000");
    assert_eq!(j.market_prefix, "/apibinarymarketdata");
    assert_eq!(j.client_id, None);
    let interactive = j.interactive.as_ref().unwrap();
    assert_eq!(interactive.app_key.expose(), "ia-app");
    assert_eq!(interactive.secret_key.expose(), "ia-secret");
    let market = j.market.as_ref().unwrap();
    assert_eq!(market.app_key.expose(), "md-app");
    assert_eq!(market.secret_key.expose(), "md-secret");

    let a = c.account(BrokerId::KotakNeo, "main").unwrap();
    assert!(a.jainam.is_none());
    let k = a.kotak_neo.as_ref().unwrap();
    assert_eq!(k.login_host, "https://mis.kotaksecurities.com");
    assert_eq!(k.access_token.expose(), "kn-token");
    assert_eq!(k.mobile, "+919876543210");
    assert_eq!(k.ucc, "AB123");
    assert_eq!(k.mpin.expose(), "123456");
    assert_eq!(k.totp_key().map(|key| key.len()), Some(20));

    let a = c.account(BrokerId::AngelOne, "main").unwrap();
    let g = a.angel_one.as_ref().unwrap();
    assert_eq!(g.api_root, "https://apiconnect.angelone.in");
    assert_eq!(
        (g.api_key.expose(), g.pin.expose(), g.client_code.as_str()),
        ("angel-key", "7391", "D12345")
    );
    assert_eq!(g.totp_seed.expose(), "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U");
}

/// The example documents the defaults: writing them out must change nothing.
#[test]
fn example_values_are_the_named_defaults() {
    let (example, _creds) = load_example();
    let minimal = ok(ACCOUNT).config;
    let (e, m) = (&example.config.daemon, &minimal.daemon);
    assert_eq!(e.limits, m.limits);
    assert_eq!(
        (e.socket_mode, &e.socket, &e.state_dir, &e.database_url),
        (m.socket_mode, &m.socket, &m.state_dir, &m.database_url)
    );
    assert_eq!(
        (e.log_format, e.audit_retention),
        (m.log_format, m.audit_retention)
    );
    assert_eq!(e.audit_max_rows, m.audit_max_rows);
    assert_eq!(e.create_key_if_missing, m.create_key_if_missing);
    let (ea, ma) = (&example.config.accounts[0], &minimal.accounts[0]);
    assert_eq!(ea.policy, ma.policy);
    let (ej, mj) = (ea.jainam.as_ref().unwrap(), ma.jainam.as_ref().unwrap());
    assert_eq!(
        (&ej.root, &ej.market_prefix, &ej.source),
        (&mj.root, &mj.market_prefix, &mj.source)
    );
    assert_eq!(
        (ej.fallback_lifetime, ej.app_expiry_warning),
        (mj.fallback_lifetime, mj.app_expiry_warning)
    );

    let minimal = ok(KOTAK).config;
    let (ea, ma) = (&example.config.accounts[1], &minimal.accounts[0]);
    assert_eq!(ea.policy, ma.policy);
    let (ek, mk) = (
        ea.kotak_neo.as_ref().unwrap(),
        ma.kotak_neo.as_ref().unwrap(),
    );
    assert_eq!(
        (&ek.login_host, &ek.neo_fin_key),
        (&mk.login_host, &mk.neo_fin_key)
    );
    assert_eq!(
        (ek.totp_min_remaining, ek.clock_skew_warning),
        (mk.totp_min_remaining, mk.clock_skew_warning)
    );
}

#[test]
fn defaults() {
    let loaded = ok(ACCOUNT);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let d = &loaded.config.daemon;
    assert_eq!(d.socket, Path::new("/run/brokerd/brokerd.sock"));
    assert_eq!(d.socket_mode, 0o660);
    assert_eq!(d.socket_group, None);
    assert!(d.allowed_uids.is_empty() && d.allowed_gids.is_empty());
    assert_eq!(d.state_dir, Path::new("/var/lib/brokerd"));
    assert_eq!(d.database_url, "sqlite:///var/lib/brokerd/brokerd.db");
    assert_eq!(d.key, None);
    assert!(!d.create_key_if_missing);
    assert_eq!(d.log_format, LogFormat::Auto);
    assert_eq!(d.audit_retention, Duration::from_secs(90 * 86400));
    assert_eq!(d.audit_max_rows, 100_000);
    let l = &d.limits;
    assert_eq!(l.max_line_bytes, 65536);
    assert_eq!(l.max_connections, 1024);
    assert_eq!(l.max_connections_per_uid, 256);
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    assert_eq!(l.write_timeout, Duration::from_secs(5));
    assert_eq!(l.heartbeat, Duration::from_secs(30));
    assert_eq!(l.default_wait, Duration::from_secs(15));
    assert_eq!(l.max_wait, Duration::from_secs(120));
    assert_eq!(l.login_timeout, Duration::from_secs(30));
    assert_eq!(l.shutdown_grace, Duration::from_secs(20));
    assert_eq!(loaded.config.source, None);

    let a = &loaded.config.accounts[0];
    assert_eq!((a.broker, a.name.as_str()), (BrokerId::Jainam, "main"));
    assert!(a.allowed_uids.is_empty() && a.allowed_gids.is_empty());
    let p = &a.policy;
    assert_eq!(p.refresh_margin, Duration::from_secs(600));
    assert_eq!(p.refresh_jitter, Duration::from_secs(60));
    assert_eq!(p.min_valid, Duration::from_secs(30));
    assert_eq!(p.backoff_initial, Duration::from_secs(1));
    assert_eq!(p.backoff_max, Duration::from_secs(300));
    assert_eq!(p.conflict_window, Duration::from_secs(60));
    assert_eq!(p.conflict_threshold, 3);
    assert_eq!(p.conflict_cooldown, Duration::from_secs(900));
    assert!(p.login_at_start);
    let j = a.jainam.as_ref().unwrap();
    assert_eq!(j.root, "https://jtrade.jainam.in:5000");
    assert_eq!(j.market_prefix, "/apibinarymarketdata");
    assert_eq!(j.source, "WEBAPI");
    assert_eq!(j.market, None);
    assert_eq!(j.client_id, None);
    assert_eq!(j.fallback_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(j.app_expiry_warning, Duration::from_secs(14 * 86400));
    let pair = j.interactive.as_ref().unwrap();
    assert_eq!(pair.app_key.expose(), APP_VALUE);
    assert_eq!(pair.secret_key.expose(), SECRET_VALUE);
}

#[test]
fn values_are_read() {
    let text = format!(
        r#"
[daemon]
socket_mode = "0600"
socket_group = "1001"
allowed_uids = [1000, 1001]
allowed_gids = [200]
log_format = "json"
audit_retention = "30d"
audit_max_rows = 5000
[daemon.limits]
max_line_bytes = 1024
max_wait = "1m 30s"
{}
[account.jainam]
root = "http://127.0.0.1:7000"
market_prefix = "/apimarketdata/"
client_id = "DEALER1"
"#,
        account_with(
            "allowed_uids = [1002]\nrefresh_margin = \"20m\"\nconflict_threshold = 5\nlogin_at_start = false"
        )
    );
    let c = ok(&text).config;
    assert_eq!(c.daemon.socket_mode, 0o600);
    assert_eq!(c.daemon.socket_group.as_deref(), Some("1001"));
    assert_eq!(c.daemon.allowed_uids, [1000, 1001]);
    assert_eq!(c.daemon.allowed_gids, [200]);
    assert_eq!(c.daemon.log_format, LogFormat::Json);
    assert_eq!(c.daemon.audit_retention, Duration::from_secs(30 * 86400));
    assert_eq!(c.daemon.audit_max_rows, 5000);
    assert_eq!(c.daemon.limits.max_line_bytes, 1024);
    assert_eq!(c.daemon.limits.max_wait, Duration::from_secs(90));
    let a = &c.accounts[0];
    assert_eq!(a.allowed_uids, [1002]);
    assert_eq!(a.effective_uids(&c.daemon), [1002]);
    assert_eq!(a.effective_gids(&c.daemon), [200]);
    assert_eq!(a.policy.refresh_margin, Duration::from_secs(1200));
    assert_eq!(a.policy.conflict_threshold, 5);
    assert!(!a.policy.login_at_start);
    let j = a.jainam.as_ref().unwrap();
    assert_eq!(j.root, "http://127.0.0.1:7000");
    assert_eq!(j.market_prefix, "/apimarketdata");
    assert_eq!(j.client_id.as_deref(), Some("DEALER1"));
}

#[test]
fn unknown_keys_are_each_named_with_their_path() {
    let text = format!(
        r#"
colour = "blue"
[daemon]
sockett = "/run/x.sock"
[daemon.limits]
max_wiat = "10s"
{}
app_kye = "x"
"#,
        account_with("refresh_margn = \"5m\"")
    );
    let p = problems(&text);
    for key in [
        "colour",
        "daemon.sockett",
        "daemon.limits.max_wiat",
        "account[0].refresh_margn",
        "account[0].jainam.interactive.app_kye",
    ] {
        let problem = problem_on(&p, key);
        assert!(problem.message.contains("unknown"), "{problem}");
    }
    // A misspelt secret key in the interactive table: still the exact path,
    // and the key pair is then incomplete.
    let text = ACCOUNT.replace("secret_key", "secrett_key");
    let p = problems(&text);
    let unknown = problem_on(&p, "account[0].jainam.interactive.secrett_key");
    assert!(
        unknown.message.contains("unknown field `secrett_key`"),
        "{unknown}"
    );
    assert!(unknown.fix.contains("spelling"));
    let missing = problem_on(&p, "account[0].jainam.interactive.secret_key");
    assert_eq!(missing.message, "is required");
    assert_no_secrets(&ConfigErrors(p).to_string());
}

/// The classic TOML slip: a key written after a sub-table header lands in
/// that sub-table. The fix says where the key belongs.
#[test]
fn misplaced_key_gets_a_hint() {
    let p = problems(&format!("{ACCOUNT}refresh_margin = \"5m\"\n"));
    let m = problem_on(&p, "account[0].jainam.interactive.refresh_margin");
    assert!(
        m.fix.contains("refresh_margin belongs in [[account]]"),
        "{m}"
    );
    let p = problems(&format!("[daemon.limits]\nsocket = \"/run/x\"\n{ACCOUNT}"));
    let m = problem_on(&p, "daemon.limits.socket");
    assert!(m.fix.contains("socket belongs in [daemon]"), "{m}");
    let p = problems(&format!("{ACCOUNT}allowed_uids = [1000]\n"));
    let m = problem_on(&p, "account[0].jainam.interactive.allowed_uids");
    assert!(
        m.fix
            .contains("allowed_uids belongs in [daemon] or [[account]]"),
        "{m}"
    );
}

#[test]
fn every_problem_is_collected() {
    let text = r#"
[daemon]
socket_mode = "0777"
log_format = "xml"
allowed_uids = [1000, -1, "bob"]
[daemon.limits]
max_line_bytes = 10
max_connections = 0
default_wait = "5m"
[[account]]
broker = "jainam"
name = "Bad Name"
backoff_initial = "10s"
backoff_max = "1s"
conflict_threshold = 0
[account.jainam]
fallback_lifetime = "5m"
[account.jainam.interactive]
app_key = "env:APP"
[[account]]
name = "x"
"#;
    let p = problems(text);
    assert_eq!(
        keys(&p),
        [
            "daemon.socket_mode",
            "daemon.allowed_uids[1]",
            "daemon.allowed_uids[2]",
            "daemon.log_format",
            "daemon.limits.max_line_bytes",
            "daemon.limits.max_connections",
            "daemon.limits.default_wait",
            "account[0].name",
            "account[0].conflict_threshold",
            "account[0].backoff_max",
            "account[0].jainam.interactive.secret_key",
            "account[0].jainam.fallback_lifetime",
            "account[1].broker",
        ],
        "{}",
        ConfigErrors(p.clone())
    );
    let text = ConfigErrors(p.clone()).to_string();
    assert_eq!(text.lines().count(), p.len());
    assert!(text.lines().all(|l| l.contains(": ") && l.ends_with(')')));
}

#[test]
fn wrong_types_name_the_key_but_never_the_value() {
    let text = format!(
        "[daemon]\ncreate_key_if_missing = \"yes\"\nallowed_gids = 5\n{}",
        ACCOUNT.replace("\"env:SECRET\"", "987654321")
    );
    let p = problems(&text);
    let s = problem_on(&p, "account[0].jainam.interactive.secret_key");
    assert_eq!(s.message, "must be a string, not integer");
    assert!(!s.to_string().contains("987654321"));
    assert!(
        problem_on(&p, "daemon.create_key_if_missing")
            .fix
            .contains("true")
    );
    assert!(
        problem_on(&p, "daemon.allowed_gids")
            .message
            .contains("list")
    );

    let p = problems("[[account]]\nbroker = \"jainam\"\nname = \"m\"\njainam = \"oops-secret\"\n");
    let j = problem_on(&p, "account[0].jainam");
    assert_eq!(j.message, "must be a table, not string");

    let p = problems("[account]\nbroker = \"jainam\"\n");
    assert!(problem_on(&p, "account").fix.contains("[[account]]"));
}

#[test]
fn syntax_errors_point_at_the_line() {
    let p = problems("[daemon]\nsocket = \"/run/x.sock\"\nsocket_mode = 0660 0\n");
    assert_eq!(keys(&p), [FILE_KEY]);
    assert!(
        p[0].message
            .starts_with("TOML syntax error at line 3, column"),
        "{}",
        p[0]
    );
    assert!(!p[0].message.contains('\n'));

    let p = problems("[daemon]\nsocket = \"a\"\nsocket = \"b\"\n");
    assert_eq!(keys(&p), [FILE_KEY]);
    assert!(p[0].message.contains("line 3"), "{}", p[0]);
}

#[test]
fn debug_output_masks_secrets() {
    let loaded = ok(&ACCOUNT.replace("env:SECRET", "literal-secret-3b8a"));
    let debug = format!("{loaded:?}");
    assert!(!debug.contains("literal-secret-3b8a"), "{debug}");
    assert_no_secrets(&debug);
    assert!(debug.contains("Secret(***)"));
}

#[test]
fn an_empty_file_is_a_problem() {
    for text in ["", "# only a comment\n\n"] {
        let p = problems(text);
        assert_eq!(keys(&p), [FILE_KEY]);
        assert!(p[0].message.contains("empty"), "{}", p[0]);
        assert!(p[0].fix.contains("--config"), "{}", p[0]);
    }
}

#[test]
fn no_accounts_is_a_warning() {
    let l = ok("[daemon]\n");
    assert!(l.config.accounts.is_empty());
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].starts_with("account: no [[account]]"));
}

/// Writes a secret file as an operator must: mode 0600 (brokerd refuses a
/// secret file its group or others can read).
pub(super) fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A `[daemon]` table whose state, socket and (created) key live in `dir`,
/// so the start's preflight, which `check-config` runs, passes.
pub(super) fn private_daemon(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[daemon]\nstate_dir = \"{d}/state\"\nsocket = \"{d}/run/brokerd.sock\"\n\
         key = \"file:{d}/key\"\ncreate_key_if_missing = true\n"
    )
}

#[test]
fn check_report_lists_problems_or_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brokerd.toml");
    let daemon = private_daemon(dir.path());
    std::fs::write(
        &path,
        daemon + &ACCOUNT.replace("env:SECRET", "literal-secret-3b8a"),
    )
    .unwrap();
    let (passed, text) = check_config_report_in(&path, &env());
    assert!(passed, "{text}");
    assert!(
        text.starts_with("ok: 1 account (jainam/main) in "),
        "{text}"
    );
    assert!(text.contains("\nwarning: account[0].jainam.interactive.secret_key: "));
    assert!(!text.contains("literal-secret-3b8a"));

    std::fs::write(
        &path,
        "[daemon]\nsocket_mode = \"0666\"\nlog_format = \"xml\"\n",
    )
    .unwrap();
    let (passed, text) = check_config_report_in(&path, &env());
    assert!(!passed);
    assert!(text.contains(": 2 problems"), "{text}");
    assert!(text.contains("\n  daemon.socket_mode: "));
    assert!(text.contains("\n  daemon.log_format: unknown log format \"xml\" (fix: "));

    // A valid file the start would refuse: the start's own problems.
    std::fs::write(
        &path,
        format!("[daemon]\nstate_dir = \"{}\"\n{ACCOUNT}", path.display()),
    )
    .unwrap();
    let (passed, text) = check_config_report_in(&path, &env());
    assert!(!passed, "{text}");
    assert!(text.contains("\n  daemon.state_dir: "), "{text}");
    assert!(
        text.contains("\n  daemon.key: no encryption key configured"),
        "{text}"
    );
}

/// A Jainam account `d{i:03}` with literal keys (each warned about), and
/// its market pair when `market`.
fn desk_account(i: usize, market: bool) -> String {
    let market = if market {
        format!(
            "[account.jainam.market]\napp_key = \"md-app-{i}\"\nsecret_key = \"md-secret-{i}\"\n"
        )
    } else {
        String::new()
    };
    format!(
        "\n[[account]]\nbroker = \"jainam\"\nname = \"d{i:03}\"\n[account.jainam.interactive]\n\
         app_key = \"ia-app-{i}\"\nsecret_key = \"ia-secret-{i}\"\n{market}"
    )
}

#[test]
fn check_report_counts_instead_of_naming_a_big_desk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("brokerd.toml");
    let at_limit: String = (0..NAMES_UP_TO).map(|i| desk_account(i, true)).collect();

    // Up to NAMES_UP_TO accounts: every name, every warning on its line.
    std::fs::write(&path, private_daemon(dir.path()) + &at_limit).unwrap();
    let (passed, text) = check_config_report_in(&path, &env());
    assert!(passed, "{text}");
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("ok: 20 accounts (jainam/d000, jainam/d001, "),
        "{first}"
    );
    assert!(first.ends_with(&format!("jainam/d019) in {}", path.display())));
    let warnings = text.lines().filter(|l| l.starts_with("warning: ")).count();
    assert_eq!(warnings, 4 * NAMES_UP_TO, "{text}");

    // One more: counts by broker and set of sessions, one line per warning.
    let desk = private_daemon(dir.path()) + &at_limit + &desk_account(20, false) + KOTAK;
    std::fs::write(&path, desk).unwrap();
    let (passed, text) = check_config_report_in(&path, &env());
    assert!(passed, "{text}");
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "ok: 22 accounts, 42 sessions: jainam 21 (20 interactive+market, 1 interactive), \
             kotak_neo 1 (interactive) in {}",
            path.display()
        )
    );
    let warning = lines.next().unwrap();
    assert!(
        warning.starts_with(
            "warning: account[0].jainam.interactive.app_key, \
             account[0].jainam.interactive.secret_key, account[0].jainam.market.app_key \
             and 79 more (82 keys): secret written literally in the config file"
        ),
        "{text}"
    );
    assert_eq!(lines.next(), None, "{text}");
    assert!(
        !text.contains("d000") && !text.contains("ia-secret-"),
        "{text}"
    );

    // A message only one key has keeps its own line.
    let one = vec![
        "daemon.x: once".to_string(),
        "a.b: twice".into(),
        "c.d: twice".into(),
    ];
    assert_eq!(
        warning_lines(&one, NAMES_UP_TO + 1),
        ["daemon.x: once", "a.b, c.d (2 keys): twice"]
    );
    assert_eq!(warning_lines(&one, NAMES_UP_TO), one);
}

#[test]
fn normalize_is_lexical() {
    use super::check::normalize;
    assert_eq!(normalize(Path::new("/a/./b/../c")), Path::new("/a/c"));
    assert_eq!(normalize(Path::new("/../a")), Path::new("/a"));
    assert_eq!(normalize(Path::new("a/../../b")), Path::new("../b"));
    assert_eq!(normalize(Path::new("./")), Path::new("."));
}

#[test]
fn redacts_url_passwords() {
    use super::validate::redact_url_password;
    assert_eq!(
        redact_url_password("postgres://u:p@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(
        redact_url_password("postgres://u@h/db"),
        "postgres://u@h/db"
    );
    assert_eq!(
        redact_url_password("postgres://h/db?x=a:b@c"),
        "postgres://h/db?x=a:b@c"
    );
    assert_eq!(redact_url_password("sqlite:///a.db"), "sqlite:///a.db");
}

/// toml's own rendering quotes the offending line; a secret written without
/// quotes must not come back that way.
#[test]
fn syntax_errors_do_not_echo_the_line() {
    for bad in [
        "secret_key = abc123secretvalue\n",
        "secret_key = \"abc123secretvalue\n",
        "secret_key = 'abc123secretvalue' x\n",
    ] {
        let text = format!("[[account]]\n{bad}");
        let p = problems(&text);
        assert_eq!(keys(&p), [FILE_KEY]);
        assert!(!p[0].to_string().contains("abc123secretvalue"), "{}", p[0]);
    }
}
