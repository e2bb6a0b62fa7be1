//! `check-config` says what the daemon will say: for each thing the start
//! refuses, the real `brokerd check-config` fails too, naming the key and
//! the fix, and the real `brokerd` refuses with the very same problem lines
//! (both come from `preflight::check` or the config check). Checking
//! creates nothing; a good config passes both.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = "PARITY-SECRET-SENTINEL-51c3";

/// A config in `dir` with `daemon` extra lines and `app_key` as the
/// account's app key reference.
fn config(dir: &Path, daemon: &str, app_key: &str) -> PathBuf {
    let d = dir.display();
    let text = format!(
        r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
log_format = "human"
{daemon}

[[account]]
broker = "jainam"
name = "main"
login_at_start = false
[account.jainam]
# Never contacted: no login at start.
root = "http://127.0.0.1:9"
[account.jainam.interactive]
app_key = "{app_key}"
secret_key = "env:PARITY_SECRET"
"#
    );
    let path = dir.join("brokerd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// How to run the binaries: as whom, with which `BROKERD_KEY`.
#[derive(Clone, Default)]
struct Run {
    as_nobody: bool,
    env_key: Option<String>,
}

impl Run {
    fn command(&self) -> Command {
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_brokerd"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_brokerd"))
        };
        cmd.env("PARITY_SECRET", SECRET)
            .env("PARITY_APP", "parity-app-key")
            .env_remove("BROKERD_KEY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("LISTEN_FDS");
        if let Some(k) = &self.env_key {
            cmd.env("BROKERD_KEY", k);
        }
        cmd
    }

    fn check_config(&self, config: &Path) -> Output {
        self.command()
            .args(["check-config", "--config"])
            .arg(config)
            .output()
            .unwrap()
    }

    fn start(&self, config: &Path) -> Child {
        self.command()
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Waits for the daemon to exit by itself; kills it after `limit`.
fn exit_within(mut child: Child, limit: Duration) -> Option<Output> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The problem lines of a report: `  key: message (fix: ...)`.
fn problem_lines(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" (fix: "))
        .collect()
}

/// Both refuse `config`: check-config names `key` with `expect` in the
/// problem and `fix` in the fix, and the daemon's refusal holds every
/// problem line check-config printed, word for word.
fn both_refuse(run: &Run, config: &Path, key: &str, expect: &str, fix: &str) {
    let check = run.check_config(config);
    let report = text(&check);
    assert!(!check.status.success(), "check-config passed: {report}");
    let lines = problem_lines(&report);
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("  {key}: ")))
        .unwrap_or_else(|| panic!("check-config names {key}: {report}"));
    let (problem, fixed) = line.split_once(" (fix: ").unwrap();
    assert!(problem.contains(expect), "{key}: {expect:?} in {line}");
    assert!(fixed.contains(fix), "{key}: fix {fix:?} in {line}");

    let daemon = exit_within(run.start(config), Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the daemon started despite: {report}"));
    let said = text(&daemon);
    assert!(!daemon.status.success(), "{said}");
    for line in &lines {
        assert!(
            said.contains(line),
            "the daemon says what check-config said:\n{line}\ndaemon:\n{said}"
        );
    }
    for out in [&report, &said] {
        assert!(!out.contains(SECRET), "no secret in {out}");
    }
}

fn key_file(path: &Path, mode: u32) {
    brokerd::store::write_key_file(path, &brokerd::store::EncryptionKey::generate()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn file_key(dir: &Path) -> String {
    format!("key = \"file:{}/key\"", dir.display())
}

#[test]
fn a_key_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o644);
    let c = config(d, &file_key(d), "env:PARITY_APP");
    let fix = format!("chmod 600 {}/key", d.display());
    both_refuse(&Run::default(), &c, "daemon.key", "mode 0644", &fix);
}

#[test]
fn a_key_file_that_is_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let c = config(d, "key = \"file:/dev/zero\"", "env:PARITY_APP");
    both_refuse(
        &Run::default(),
        &c,
        "daemon.key",
        "not a regular file",
        "brokerctl keygen",
    );
    std::fs::write(d.join("key"), "not a key at all\n").unwrap();
    std::fs::set_permissions(d.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = config(d, &file_key(d), "env:PARITY_APP");
    both_refuse(
        &Run::default(),
        &c,
        "daemon.key",
        "is not valid base64",
        "brokerctl keygen",
    );
    // BROKERD_KEY overrides daemon.key, in both.
    let short = Run {
        env_key: Some("c2hvcnQ=".into()),
        ..Run::default()
    };
    both_refuse(
        &short,
        &c,
        "BROKERD_KEY",
        "5 bytes long",
        "brokerctl keygen",
    );
}

#[test]
fn a_state_dir_under_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    std::fs::write(d.join("state"), "").unwrap();
    let daemon = format!(
        "{}\ndatabase_url = \"sqlite://{}/db/b.db\"",
        file_key(d),
        d.display()
    );
    let c = config(d, &daemon, "env:PARITY_APP");
    both_refuse(
        &Run::default(),
        &c,
        "daemon.state_dir",
        "is not a folder",
        "point daemon.state_dir at a folder",
    );
}

#[test]
fn a_state_dir_the_daemons_user_cannot_write() {
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: needs root to run the binaries as nobody");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Nobody may pass through, read the config, and nothing more.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(d.join("state")).unwrap();
    std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let c = config(d, "", "env:PARITY_APP");
    std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = Run {
        as_nobody: true,
        env_key: Some(
            brokerd::store::EncryptionKey::generate()
                .to_base64()
                .expose()
                .to_string(),
        ),
    };
    let state = d.join("state").display().to_string();
    both_refuse(
        &run,
        &c,
        "daemon.state_dir",
        &format!("(uid 65534) cannot write to {state}"),
        &format!("install -d -m 0700 -o USER {state}"),
    );
}

#[test]
fn a_state_dir_others_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    std::fs::create_dir(d.join("state")).unwrap();
    std::fs::set_permissions(d.join("state"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let c = config(d, &file_key(d), "env:PARITY_APP");
    let fix = format!("chmod go-w {}/state", d.display());
    both_refuse(&Run::default(), &c, "daemon.state_dir", "mode 0777", &fix);
}

#[test]
fn an_empty_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("brokerd.toml");
    std::fs::write(&c, "").unwrap();
    both_refuse(&Run::default(), &c, "(file)", "is empty", "--config");
}

#[test]
fn a_socket_whose_folder_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    std::fs::write(d.join("run"), "").unwrap();
    let c = config(d, &file_key(d), "env:PARITY_APP");
    both_refuse(
        &Run::default(),
        &c,
        "daemon.socket",
        &format!("{}/run is not a folder", d.display()),
        "point daemon.socket into a folder",
    );
    assert!(
        !d.join("state").exists(),
        "refused before anything was made"
    );
}

#[test]
fn a_socket_group_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    let daemon = format!("{}\nsocket_group = \"no-such-group-parity\"", file_key(d));
    let c = config(d, &daemon, "env:PARITY_APP");
    both_refuse(
        &Run::default(),
        &c,
        "daemon.socket_group",
        "no group named \"no-such-group-parity\"",
        "groupadd no-such-group-parity",
    );
}

#[test]
fn a_postgres_url_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    let daemon = format!(
        "{}\ndatabase_url = \"postgres://brokerd:{SECRET}@db:notaport/brokerd\"",
        file_key(d)
    );
    let c = config(d, &daemon, "env:PARITY_APP");
    both_refuse(
        &Run::default(),
        &c,
        "daemon.database_url",
        "the PostgreSQL URL does not parse",
        "postgres://USER:PASSWORD@HOST:5432/DATABASE",
    );
}

/// A PostgreSQL URL of the right shape passes `check-config` (it checks the
/// shape, not the server); the daemon then cannot connect and refuses to
/// start within seconds, naming the database, never the password.
#[test]
fn a_postgres_server_that_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    // A socket folder with no server in it: refused at once, no network.
    let daemon = format!(
        "{}\ndatabase_url = \"postgres://brokerd:{SECRET}@localhost/brokerd_parity?host={}\"",
        file_key(d),
        d.display()
    );
    let c = config(d, &daemon, "env:PARITY_APP");
    let run = Run::default();
    let check = run.check_config(&c);
    let report = text(&check);
    assert!(check.status.success(), "{report}");
    let daemon = exit_within(run.start(&c), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the daemon started without its database"));
    let said = text(&daemon);
    assert!(!daemon.status.success(), "{said}");
    assert!(
        said.contains("opening the store PostgreSQL database brokerd_parity as brokerd"),
        "{said}"
    );
    for out in [&report, &said] {
        assert!(!out.contains(SECRET), "no secret in {out}");
    }
}

#[test]
fn a_secret_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    key_file(&d.join("key"), 0o600);
    let secret = d.join("app_key");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = config(d, &file_key(d), &format!("file:{}", secret.display()));
    both_refuse(
        &Run::default(),
        &c,
        "account[0].jainam.interactive.app_key",
        "mode 0644",
        &format!("chmod 600 {}", secret.display()),
    );
}

#[test]
fn a_good_config_passes_both_and_checking_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secret = d.join("app_key");
    common::write_secret(&secret, "parity-app-key");
    let daemon = format!(
        "key = \"file:{}/keys/brokerd.key\"\ncreate_key_if_missing = true",
        d.display()
    );
    let c = config(d, &daemon, &format!("file:{}", secret.display()));
    let check = Run::default().check_config(&c);
    assert!(check.status.success(), "{}", text(&check));
    for made in ["state", "keys", "run"] {
        assert!(!d.join(made).exists(), "check-config created {made}");
    }

    let child = Run::default().start(&c);
    let socket = d.join("run/brokerd.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let up = socket.exists();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let out = exit_within(child, Duration::from_secs(20)).expect("stops on SIGTERM");
    assert!(up, "the daemon came up: {}", text(&out));
    assert!(out.status.success(), "{}", text(&out));
    assert!(d.join("keys/brokerd.key").exists());
    // Its own state directory (0700) passes the check it made.
    let again = Run::default().check_config(&c);
    assert!(again.status.success(), "{}", text(&again));
}
