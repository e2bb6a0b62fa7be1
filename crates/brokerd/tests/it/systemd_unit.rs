//! The systemd integration files in `systemd/`: the sandbox scores at most
//! 1.2 in `systemd-analyze security`, `systemd-analyze verify` has nothing
//! to say about the units, the sysusers file makes a system user, and the
//! units agree with the daemon's defaults and the example config.
//!
//! Needs `systemd-analyze` and `systemd-sysusers` (Debian package `systemd`,
//! version 252 or later); the tests fail with that advice when they are
//! missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const SERVICE: &str = include_str!("../../../../systemd/brokerd.service");
const SOCKET: &str = include_str!("../../../../systemd/brokerd.socket");
const SYSUSERS: &str = include_str!("../../../../systemd/brokerd.sysusers");
const TMPFILES: &str = include_str!("../../../../systemd/brokerd.tmpfiles");
const EXAMPLE_CONFIG: &str = include_str!("../../../../config/brokerd.example.toml");

/// The highest `systemd-analyze security` exposure the service may have.
/// (1.2 since `ProtectProc=invisible`: kept at the best reached so far, so a
/// loosened setting fails here rather than passing unnoticed.)
const MAX_EXPOSURE: f64 = 1.2;

/// `name` on `PATH`, or a failure that says what to install.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not on PATH. These tests check the systemd unit files with it: \
                 install the systemd package (apt-get install systemd)"
            )
        })
}

fn run(cmd: &mut Command) -> (Output, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// The values of `key=` in a unit or config text, in order; comments skipped.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// The single value of `key=`.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    match values(text, key).as_slice() {
        [v] => v,
        other => panic!("expected exactly one {key}= line, found {other:?}"),
    }
}

#[test]
fn service_exposure_is_at_most_1_2() {
    let analyze = tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("brokerd.service");
    fs::write(&unit, SERVICE).unwrap();
    let (out, text) = run(Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit));
    assert!(
        out.status.success(),
        "systemd-analyze security failed:\n{text}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no \"Overall exposure level\" line in:\n{text}"));
    let score: f64 = line
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure from {line:?}"));
    let exposed: Vec<&str> = text.lines().filter(|l| l.starts_with('✗')).collect();
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} is above {MAX_EXPOSURE}; what is still exposed:\n{}",
        exposed.join("\n")
    );
}

#[test]
fn verify_has_nothing_to_say_about_the_units() {
    let analyze = tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart= and ExecReload= name executables: point
    // ExecStart= at the binary cargo just built. ExecReload= uses /bin/kill,
    // which Debian has; elsewhere use the kill on PATH.
    let exec_start = "ExecStart=/usr/local/bin/brokerd ";
    assert!(SERVICE.contains(exec_start), "ExecStart= has moved");
    let mut service = SERVICE.replace(
        exec_start,
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_brokerd")),
    );
    if !Path::new("/bin/kill").exists() {
        let kill = tool("kill");
        service = service.replace("/bin/kill ", &format!("{} ", kill.display()));
    }
    let service_path = dir.path().join("brokerd.service");
    let socket_path = dir.path().join("brokerd.socket");
    fs::write(&service_path, service).unwrap();
    fs::write(&socket_path, SOCKET).unwrap();
    let (out, text) = run(Command::new(analyze)
        .args(["verify", "--man=no", "--generators=no"])
        .arg(&service_path)
        .arg(&socket_path));
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("brokerd") || l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify complains about our units:\n{}",
        ours.join("\n")
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
}

#[test]
fn sysusers_makes_a_system_user_without_a_shell() {
    let sysusers = tool("systemd-sysusers");
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("etc")).unwrap();
    let conf = root.path().join("brokerd.conf");
    fs::write(&conf, SYSUSERS).unwrap();
    let (out, text) = run(Command::new(sysusers)
        .arg("--root")
        .arg(root.path())
        .arg(&conf));
    assert!(out.status.success(), "systemd-sysusers failed:\n{text}");
    let passwd = fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let user: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("brokerd:"))
        .unwrap_or_else(|| panic!("no brokerd user in:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system uid: {user:?}");
    assert_eq!(user[5], "/var/lib/brokerd", "home");
    assert!(user[6].ends_with("/nologin"), "shell: {user:?}");
    let group = fs::read_to_string(root.path().join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("brokerd:")),
        "no brokerd group in:\n{group}"
    );
}

#[test]
fn service_has_the_settings_the_daemon_relies_on() {
    for (key, want) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("WatchdogSec", "30s"),
        ("Restart", "on-failure"),
        ("User", "brokerd"),
        ("Group", "brokerd"),
        ("UMask", "0077"),
        ("RuntimeDirectory", "brokerd"),
        ("RuntimeDirectoryMode", "0750"),
        ("RuntimeDirectoryPreserve", "yes"),
        ("StateDirectory", "brokerd"),
        ("StateDirectoryMode", "0700"),
        ("ConfigurationDirectory", "brokerd"),
        ("Requires", "brokerd.socket"),
        // SO_PEERCRED in a user namespace reports other users as nobody.
        ("PrivateUsers", "no"),
        // No core dumps from the first instruction (docs/deploy.md).
        ("LimitCORE", "0"),
    ] {
        assert_eq!(value(SERVICE, key), want, "{key}=");
    }
    assert_eq!(
        value(SERVICE, "ExecStart"),
        format!(
            "/usr/local/bin/brokerd --config {}",
            brokerd::client::DEFAULT_CONFIG
        )
    );

    // The daemon stops within its shutdown grace; systemd must wait longer.
    let stop = humantime::parse_duration(value(SERVICE, "TimeoutStopSec")).unwrap();
    let grace = value(EXAMPLE_CONFIG, "shutdown_grace ")
        .trim()
        .trim_matches('"');
    let grace = humantime::parse_duration(grace).unwrap();
    assert!(
        stop >= grace + Duration::from_secs(5),
        "TimeoutStopSec {stop:?} vs grace {grace:?}"
    );

    // Every cred: name of the example config has a LoadCredential= line,
    // the encryption key first among them.
    let creds = values(SERVICE, "LoadCredential");
    assert_eq!(
        creds.first(),
        Some(&"brokerd-key:/etc/credstore/brokerd-key")
    );
    let config: toml::Value = EXAMPLE_CONFIG.parse().unwrap();
    let mut names = Vec::new();
    cred_names(&config, &mut names);
    assert!(names.contains(&"brokerd-key".to_string()), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("jainam-")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("kotak-")), "{names:?}");
    for name in &names {
        let line = format!("{name}:/etc/credstore/{name}");
        assert!(
            creds.contains(&line.as_str()),
            "config/brokerd.example.toml uses cred:{name}, but the unit lacks LoadCredential={line}"
        );
    }
    assert_eq!(
        creds.len(),
        names.len(),
        "a LoadCredential= no config uses: {creds:?}"
    );
}

/// Every `cred:NAME` string value in `v`.
fn cred_names(v: &toml::Value, out: &mut Vec<String>) {
    match v {
        toml::Value::String(s) => {
            if let Some(name) = s.strip_prefix("cred:") {
                out.push(name.to_string());
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|i| cred_names(i, out)),
        toml::Value::Table(t) => t.values().for_each(|i| cred_names(i, out)),
        _ => {}
    }
}

#[test]
fn socket_and_runtime_folder_agree() {
    let socket = brokerd::client::DEFAULT_SOCKET;
    assert_eq!(value(SOCKET, "ListenStream"), socket);
    assert_eq!(
        value(EXAMPLE_CONFIG, "socket ").trim().trim_matches('"'),
        socket
    );
    for (key, want) in [
        ("SocketMode", "0660"),
        ("SocketUser", "brokerd"),
        ("SocketGroup", "brokerd"),
        ("DirectoryMode", "0750"),
        ("Service", "brokerd.service"),
        ("WantedBy", "sockets.target"),
    ] {
        assert_eq!(value(SOCKET, key), want, "{key}=");
    }
    // The socket's folder is the service's RuntimeDirectory=, and tmpfiles
    // creates it with the same owner and mode before the socket starts.
    let folder = Path::new(socket).parent().unwrap();
    assert_eq!(
        Path::new("/run").join(value(SERVICE, "RuntimeDirectory")),
        folder
    );
    let entry: Vec<&str> = TMPFILES
        .lines()
        .find(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .expect("a tmpfiles line")
        .split_whitespace()
        .collect();
    assert_eq!(
        entry[..5],
        [
            "d",
            folder.to_str().unwrap(),
            value(SERVICE, "RuntimeDirectoryMode"),
            value(SERVICE, "User"),
            value(SOCKET, "SocketGroup"),
        ]
    );
    // Members of the socket's group can enter the folder whoever made it:
    // systemd gives RuntimeDirectory= the service's Group=, which is the
    // socket's group and the config's socket_group (the group the daemon
    // checks the folder against at start).
    let group = value(SOCKET, "SocketGroup");
    assert_eq!(value(SERVICE, "Group"), group);
    assert_eq!(
        value(EXAMPLE_CONFIG, "socket_group ")
            .trim()
            .trim_matches('"'),
        group
    );
    let mode = u32::from_str_radix(value(SERVICE, "RuntimeDirectoryMode"), 8).unwrap();
    assert_eq!(mode & 0o010, 0o010, "the group may enter the folder");
}
