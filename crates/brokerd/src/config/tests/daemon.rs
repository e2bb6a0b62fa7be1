//! `[daemon]`: socket, modes, paths, key, store URL, limits.

use super::*;

#[test]
fn socket_mode_must_be_octal_and_not_for_others() {
    let p = problems(&format!("[daemon]\nsocket_mode = \"0666\"\n{ACCOUNT}"));
    let m = problem_on(&p, "daemon.socket_mode");
    assert!(m.message.contains("every user"), "{m}");
    assert!(m.fix.contains("0660"));

    let p = problems(&format!("[daemon]\nsocket_mode = \"abc\"\n{ACCOUNT}"));
    assert!(
        problem_on(&p, "daemon.socket_mode")
            .message
            .contains("not an octal mode")
    );

    let p = problems(&format!("[daemon]\nsocket_mode = \"0680\"\n{ACCOUNT}"));
    assert!(
        problem_on(&p, "daemon.socket_mode")
            .message
            .contains("not an octal mode")
    );

    let p = problems(&format!("[daemon]\nsocket_mode = 660\n{ACCOUNT}"));
    let m = problem_on(&p, "daemon.socket_mode");
    assert!(m.message.contains("number"), "{m}");
    assert!(m.fix.contains("\"0660\""));

    let p = problems(&format!("[daemon]\nsocket_mode = \"4660\"\n{ACCOUNT}"));
    assert!(
        problem_on(&p, "daemon.socket_mode")
            .message
            .contains("setuid")
    );

    for (text, mode) in [("660", 0o660), ("0o640", 0o640), ("0600", 0o600)] {
        let c = ok(&format!("[daemon]\nsocket_mode = \"{text}\"\n{ACCOUNT}"));
        assert_eq!(c.config.daemon.socket_mode, mode, "{text}");
    }
}

#[test]
fn bare_number_durations_need_a_unit() {
    let text = format!(
        "[daemon]\naudit_retention = 90\n[daemon.limits]\nidle_timeout = 300\n{}",
        account_with("refresh_margin = 600")
    );
    let p = problems(&text);
    for key in [
        "daemon.audit_retention",
        "daemon.limits.idle_timeout",
        "account[0].refresh_margin",
    ] {
        let d = problem_on(&p, key);
        assert!(d.message.contains("has no unit"), "{d}");
        assert!(
            d.fix.starts_with("write it with a unit, e.g. \"30s\""),
            "{d}"
        );
    }
    let p = problems(&format!(
        "[daemon.limits]\nmax_wait = \"2 fortnights\"\n{ACCOUNT}"
    ));
    let d = problem_on(&p, "daemon.limits.max_wait");
    assert!(d.message.contains("not a duration"), "{d}");
}

#[test]
fn literal_key_is_a_problem() {
    let p = problems(&format!(
        "[daemon]\nkey = \"c2VjcmV0LWtleS1ieXRlcw==\"\n{ACCOUNT}"
    ));
    assert_eq!(keys(&p), ["daemon.key"]);
    assert!(
        p[0].message.contains("keys never live in the config"),
        "{}",
        p[0]
    );
    assert!(p[0].fix.contains("cred:brokerd-key"));
    assert!(!p[0].to_string().contains("c2VjcmV0"));
}

/// Loading checks the key reference's shape only; whether the key exists
/// is the start's preflight (shared with `check-config`), which knows
/// `BROKERD_KEY` too. More in `src/preflight/tests.rs`.
#[test]
fn key_file_missing() {
    let dir = tempfile::tempdir().unwrap();
    let preflight = |text: &str| {
        let loaded = Config::from_toml_str(text, dir.path(), &env()).unwrap();
        let inputs = crate::preflight::Inputs {
            env_key: None,
            env: &env(),
            binds_socket: false,
        };
        (
            loaded.config.daemon.key.clone(),
            crate::preflight::check(&loaded.config.daemon, &inputs),
        )
    };
    let state = format!("state_dir = \"{}/state\"\n", dir.path().display());
    let text = format!("[daemon]\n{state}key = \"file:keys/brokerd.key\"\n{ACCOUNT}");
    let path = dir.path().join("keys/brokerd.key");
    let (key, p) = preflight(&text);
    assert_eq!(key, Some(SecretRef::File(path.clone())));
    let missing = problem_on(&p, "daemon.key");
    assert!(missing.message.contains("does not exist"), "{missing}");
    assert!(missing.message.contains(&path.display().to_string()));

    let text = text.replace("[daemon]\n", "[daemon]\ncreate_key_if_missing = true\n");
    let (_, p) = preflight(&text);
    assert_eq!(p, [], "the daemon will create it");
    assert!(!path.exists(), "checking created nothing");

    // Only a file: key can be created.
    let p = problems(&format!(
        "[daemon]\nkey = \"env:APP\"\ncreate_key_if_missing = true\n{ACCOUNT}"
    ));
    assert_eq!(keys(&p), ["daemon.create_key_if_missing"]);
    let (_, p) = preflight(&format!(
        "[daemon]\n{state}key = \"env:BROKERD_KEY_UNSET\"\n{ACCOUNT}"
    ));
    assert!(
        problem_on(&p, "daemon.key")
            .message
            .contains("BROKERD_KEY_UNSET")
    );
}

#[test]
fn socket_path_too_long() {
    let long = format!("/run/{}/brokerd.sock", "d".repeat(100));
    let p = problems(&format!("[daemon]\nsocket = {long:?}\n{ACCOUNT}"));
    let s = problem_on(&p, "daemon.socket");
    assert!(s.message.contains("shorter than 108"), "{s}");
    assert!(s.fix.contains("shorter"));
    // Relative: the length counts after resolution against the base folder.
    let base = PathBuf::from(format!("/{}", "b".repeat(90)));
    let r = Config::from_toml_str(
        &format!("[daemon]\nsocket = \"run/brokerd.sock\"\n{ACCOUNT}"),
        &base,
        &env(),
    );
    assert_eq!(keys(&r.unwrap_err().0), ["daemon.socket"]);
}

#[test]
fn relative_paths_resolve_against_the_base_folder() {
    let text = format!(
        r#"
[daemon]
socket = "run/../brokerd.sock"
state_dir = "./state"
{ACCOUNT}"#
    );
    let d = ok(&text).config.daemon;
    assert_eq!(d.socket, Path::new("/etc/brokerd/brokerd.sock"));
    assert_eq!(d.state_dir, Path::new("/etc/brokerd/state"));
    assert_eq!(d.database_url, "sqlite:///etc/brokerd/state/brokerd.db");

    let d = ok(&format!(
        "[daemon]\ndatabase_url = \"sqlite://db/../sessions.db\"\n{ACCOUNT}"
    ))
    .config
    .daemon;
    assert_eq!(d.database_url, "sqlite:///etc/brokerd/sessions.db");
    let d = ok(&format!(
        "[daemon]\ndatabase_url = \"sqlite:///abs/x.db\"\n{ACCOUNT}"
    ))
    .config
    .daemon;
    assert_eq!(d.database_url, "sqlite:///abs/x.db");

    let p = problems(&format!("[daemon]\nstate_dir = \"~/brokerd\"\n{ACCOUNT}"));
    assert!(problem_on(&p, "daemon.state_dir").message.contains("~"));
}

#[test]
fn load_resolves_against_the_files_folder() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("etc");
    std::fs::create_dir(&conf_dir).unwrap();
    super::write_secret(&conf_dir.join("secret"), "s3\n");
    let path = conf_dir.join("brokerd.toml");
    let text = format!(
        "[daemon]\nstate_dir = \"../state\"\nsocket = \"b.sock\"\n{}",
        ACCOUNT.replace("env:SECRET", "file:secret")
    );
    std::fs::write(&path, text).unwrap();
    let loaded = Config::load_in(&path, &env()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    assert_eq!(c.daemon.state_dir, dir.path().join("state"));
    assert_eq!(c.daemon.socket, conf_dir.join("b.sock"));
    let pair = c.accounts[0]
        .jainam
        .as_ref()
        .unwrap()
        .interactive
        .as_ref()
        .unwrap();
    assert_eq!(pair.secret_key.expose(), "s3");

    let missing = Config::load_in(&dir.path().join("nope.toml"), &env()).unwrap_err();
    assert_eq!(keys(&missing.0), [FILE_KEY]);
    assert!(missing.0[0].message.contains("nope.toml"));
}

#[test]
fn limits_and_policy_relations() {
    let p = problems(&format!(
        "[daemon.limits]\ndefault_wait = \"3m\"\nmax_wait = \"2m\"\n{ACCOUNT}"
    ));
    assert!(
        problem_on(&p, "daemon.limits.default_wait")
            .message
            .contains("max_wait")
    );
    let p = problems(&format!(
        "[daemon.limits]\nmax_line_bytes = 16777217\n{ACCOUNT}"
    ));
    assert!(
        problem_on(&p, "daemon.limits.max_line_bytes")
            .fix
            .contains("1024 to 16777216")
    );
    let p = problems(&format!(
        "[daemon.limits]\nlogin_timeout = \"0s\"\n{ACCOUNT}"
    ));
    assert!(
        problem_on(&p, "daemon.limits.login_timeout")
            .message
            .contains("zero")
    );
    let w = ok(&account_with("min_valid = \"20m\"")).warnings;
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("account[0].min_valid: "));
}

#[test]
fn connection_limits() {
    // The per-uid cap follows max_connections unless set, and is never 0.
    let l = ok(&format!("[daemon.limits]\nmax_connections = 10\n{ACCOUNT}"))
        .config
        .daemon
        .limits;
    assert_eq!(l.max_connections_per_uid, 2);
    let l = ok(&format!("[daemon.limits]\nmax_connections = 3\n{ACCOUNT}"))
        .config
        .daemon
        .limits;
    assert_eq!(l.max_connections_per_uid, 1);
    let l = ok(&format!(
        "[daemon.limits]\nmax_connections = 10\nmax_connections_per_uid = 10\n\
         write_timeout = \"250ms\"\nheartbeat = \"1m\"\nidle_timeout = \"5m\"\n{ACCOUNT}"
    ))
    .config
    .daemon
    .limits;
    assert_eq!(l.max_connections_per_uid, 10);
    assert_eq!(l.write_timeout, Duration::from_millis(250));
    assert_eq!(l.heartbeat, Duration::from_secs(60));
    assert_eq!(l.idle_timeout, Duration::from_secs(300));

    let p = problems(&format!(
        "[daemon.limits]\nmax_connections = 10\nmax_connections_per_uid = 11\n{ACCOUNT}"
    ));
    let m = problem_on(&p, "daemon.limits.max_connections_per_uid");
    assert!(m.message.contains("more than max_connections (10)"), "{m}");
    assert!(m.fix.contains("at most 10"), "{m}");
    let p = problems(&format!(
        "[daemon.limits]\nmax_connections_per_uid = 0\n{ACCOUNT}"
    ));
    assert!(
        problem_on(&p, "daemon.limits.max_connections_per_uid")
            .fix
            .contains("1 to 1000000")
    );
    let p = problems(&format!(
        "[daemon.limits]\nwrite_timeout = \"0s\"\nheartbeat = \"0s\"\n{ACCOUNT}"
    ));
    assert_eq!(
        keys(&p),
        ["daemon.limits.write_timeout", "daemon.limits.heartbeat"]
    );
    assert!(p.iter().all(|m| m.message.contains("zero")), "{p:?}");
    let p = problems(&format!("[daemon.limits]\nwrite_timeout = 5\n{ACCOUNT}"));
    assert!(
        problem_on(&p, "daemon.limits.write_timeout")
            .message
            .contains("has no unit")
    );
}

#[test]
fn database_urls() {
    // The store's rule (`store::parse_url`), reported on the real key.
    // PostgreSQL URLs are accepted as written (not made absolute, password
    // kept for the store) ...
    for url in [
        "postgres://brokerd:pgpass-9f@db/brokerd",
        "postgresql://brokerd@db:5433/brokerd?sslmode=require",
        "postgres://brokerd@localhost/brokerd?host=/run/postgresql",
    ] {
        let l = ok(&format!("[daemon]\ndatabase_url = \"{url}\"\n{ACCOUNT}"));
        assert_eq!(l.config.daemon.database_url, url);
        // ... and never shown with their password.
        assert!(!format!("{:?}", l.config.daemon).contains("pgpass-9f"));
    }
    // ... when they parse and name a database.
    for (url, expect) in [
        (
            "postgres://brokerd:pgpass-9f@db:notaport/brokerd",
            "does not parse",
        ),
        ("postgres://brokerd:pgpass-9f@db", "names no database"),
    ] {
        let p = problems(&format!("[daemon]\ndatabase_url = \"{url}\"\n{ACCOUNT}"));
        let d = problem_on(&p, "daemon.database_url");
        assert!(d.message.contains(expect), "{url}: {d}");
        assert!(!d.to_string().contains("pgpass-9f"), "{d}");
    }

    let p = problems(&format!(
        "[daemon]\ndatabase_url = \"mysql://u:pw-77@h/db\"\n{ACCOUNT}"
    ));
    let d = problem_on(&p, "daemon.database_url");
    assert!(d.message.contains("\"mysql\""));
    assert!(!d.to_string().contains("pw-77"));

    for (url, expect) in [
        ("sqlite::memory:", "database file"),
        ("sqlite://x.db?mode=ro", "query parameters"),
        ("sqlite://", "database file"),
    ] {
        let p = problems(&format!("[daemon]\ndatabase_url = \"{url}\"\n{ACCOUNT}"));
        let d = problem_on(&p, "daemon.database_url");
        assert!(d.message.contains(expect), "{url}: {d}");
    }
    let l = ok(&format!(
        "[daemon]\ndatabase_url = \"sqlite:db/b.db\"\n{ACCOUNT}"
    ));
    assert!(l.config.daemon.database_url.starts_with("sqlite:///"));
    assert!(l.config.daemon.database_url.ends_with("/db/b.db"));
}

#[test]
fn pacing_tables_replace_a_brokers_default_and_name_their_mistakes() {
    use crate::brokers::BrokerId;
    use crate::brokers::pace::Pace;
    let c = ok(&format!(
        "[daemon.pacing.jainam]\nconcurrency = 3\nper_second = 2.5\n\
         [daemon.pacing.kotak_neo]\nper_second = 1\n{ACCOUNT}"
    ));
    let pacing = &c.config.daemon.pacing;
    assert_eq!(pacing[&BrokerId::Jainam], Pace::new(3, 2.5));
    // A key left out keeps the broker's default.
    assert_eq!(
        pacing[&BrokerId::KotakNeo].concurrency,
        Pace::default_for(BrokerId::KotakNeo).concurrency
    );
    assert_eq!(pacing[&BrokerId::KotakNeo].per_second, 1.0);
    assert!(
        !pacing.contains_key(&BrokerId::Zerodha),
        "only the brokers named"
    );

    let p = problems(&format!(
        "[daemon.pacing.jainam]\nconcurrency = 0\nper_second = 5000\n\
         [daemon.pacing.upstox]\nper_second = 1\n\
         [daemon.pacing.zerodha]\nper_second = \"fast\"\nburst = 3\n{ACCOUNT}"
    ));
    assert!(
        problem_on(&p, "daemon.pacing.jainam.concurrency")
            .message
            .contains("out of range")
    );
    let rate = problem_on(&p, "daemon.pacing.jainam.per_second");
    assert!(rate.fix.contains("0.01 to 1000"), "{rate}");
    assert!(
        problem_on(&p, "daemon.pacing.upstox")
            .fix
            .contains("kotak_neo")
    );
    assert!(
        problem_on(&p, "daemon.pacing.zerodha.per_second")
            .message
            .contains("a number")
    );
    assert!(
        problem_on(&p, "daemon.pacing.zerodha.burst")
            .message
            .contains("unknown key")
    );
}

#[test]
fn ha_needs_postgres_and_names_its_mistakes() {
    use crate::brokers::BrokerId;
    let pg = "[daemon]\ndatabase_url = \"postgres://brokerd@db.example/brokerd\"\n";
    let c = ok(&format!("{pg}[daemon.ha]\nhost = \"vps-a\"\n{ACCOUNT}"));
    let ha = c.config.daemon.ha.expect("the section is read");
    assert_eq!(ha.host, "vps-a");
    assert_eq!(ha.takeover_within, Duration::from_secs(5));
    assert_eq!(ha.check_every, Duration::from_secs(5));
    // The broker facts: only Kotak Neo binds a session to its address.
    assert_eq!(ha.address_bound, vec![BrokerId::KotakNeo]);
    let c = ok(&format!(
        "{pg}[daemon.ha]\nhost = \"b\"\ntakeover_within = \"2s\"\naddress_bound = []\n{ACCOUNT}"
    ));
    let ha = c.config.daemon.ha.unwrap();
    assert!(ha.address_bound.is_empty());
    assert_eq!(ha.takeover_within, Duration::from_secs(2));
    // Without the section, a daemon leads alone.
    assert!(ok(&format!("{pg}{ACCOUNT}")).config.daemon.ha.is_none());

    let p = problems(&format!("[daemon.ha]\nhost = \"vps-a\"\n{ACCOUNT}"));
    let on_sqlite = problem_on(&p, "daemon.ha");
    assert!(on_sqlite.message.contains("PostgreSQL"), "{on_sqlite}");
    assert!(on_sqlite.fix.contains("postgres://"), "{on_sqlite}");
    let p = problems(&format!(
        "{pg}[daemon.ha]\nhost = \"a/b\"\ntakeover_within = \"10m\"\n\
         address_bound = [\"upstox\"]\nleader = true\n{ACCOUNT}"
    ));
    assert!(problem_on(&p, "daemon.ha.host").fix.contains("unique"));
    assert!(
        problem_on(&p, "daemon.ha.takeover_within")
            .fix
            .contains("1s to 5m")
    );
    assert!(
        problem_on(&p, "daemon.ha.address_bound")
            .message
            .contains("upstox")
    );
    assert!(
        problem_on(&p, "daemon.ha.leader")
            .message
            .contains("unknown key")
    );
}
