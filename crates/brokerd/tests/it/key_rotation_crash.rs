//! A real crash between a rotation's database commit and the key file's
//! replacement: the real `brokerd`, its key file made immutable
//! (`chattr +i`, so the final rename fails as a crash there would leave
//! things), then killed with SIGKILL and started again. Every session still
//! decrypts, the restart finishes the rotation, nobody logs in at the
//! simulator, and neither key's base64 appears in the logs, the brokerctl
//! output or the database.
//!
//! Needs root (`chattr`, like the other tests that switch users) and a
//! filesystem with the immutable attribute (ext4, xfs, btrfs).

use crate::common;
use crate::common::child;

use std::path::Path;
use std::process::{Command, Stdio};

use brokerd::brokers::Api;
use brokerd::store::EncryptionKey;
use brokerd_sim::xts::{XtsSim, XtsSimConfig};
use child::{Daemon, wait_for};
use common::blackbox::{assert_no_secret, brokerctl};
use common::{contains, db_bytes};

fn start(dir: &Path, log: &str) -> Daemon {
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_brokerd"))
            .arg("--config")
            .arg(dir.join("brokerd.toml"))
            .env("RUST_LOG", "debug")
            .env_remove("BROKERD_KEY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(log)).unwrap())
            .spawn()
            .unwrap(),
    );
    let log_path = dir.join(log);
    wait_for(&mut daemon.0, &dir.join("run/brokerd.sock"), &|| {
        std::fs::read_to_string(&log_path).unwrap_or_default()
    });
    daemon
}

fn chattr(flag: &str, path: &Path) {
    let ok = Command::new("chattr").arg(flag).arg(path).status().unwrap();
    assert!(
        ok.success(),
        "chattr {flag} (needs root and ext4/xfs/btrfs)"
    );
}

fn key_id(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    EncryptionKey::from_base64(&text).unwrap().id().to_string()
}

fn token(dir: &Path, api: &str) -> String {
    let (ok, out) = brokerctl(dir, &["token", "jainam", "--api", api, "--field", "token"]);
    assert!(ok, "{out}");
    out.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_after_the_commit_is_finished_by_the_restart() {
    let sim = XtsSim::start(XtsSimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_file = d.join("keys/brokerd.key");
    std::fs::write(
        d.join("brokerd.toml"),
        format!(
            r#"
[daemon]
socket = "{d}/run/brokerd.sock"
state_dir = "{d}/state"
key = "file:{key}"
create_key_if_missing = true
log_format = "json"

[[account]]
broker = "jainam"
name = "main"
login_at_start = false
[account.jainam]
root = "{root}"
[account.jainam.interactive]
app_key = "demo-interactive-key"
secret_key = "demo-interactive-secret"
[account.jainam.market]
app_key = "demo-market-key"
secret_key = "demo-market-secret"
"#,
            d = d.display(),
            key = key_file.display(),
            root = sim.base_url()
        ),
    )
    .unwrap();

    let mut daemon = start(d, "first.log");
    let before = [token(d, "interactive"), token(d, "market")];
    let logins = sim.login_count(Api::Interactive) + sim.login_count(Api::Market);
    let old_b64 = std::fs::read_to_string(&key_file).unwrap();
    let old_id = key_id(&key_file);
    let new_file = d.join("new.key");
    let (ok, keygen) = brokerctl(d, &["keygen", "--out", &new_file.display().to_string()]);
    assert!(ok, "{keygen}");
    let new_b64 = std::fs::read_to_string(&new_file).unwrap();
    let new_id = key_id(&new_file);

    // The rename over the key file fails: the database has committed, the
    // key file still holds the old key, the new one waits beside it.
    chattr("+i", &key_file);
    let (ok, rotate) = brokerctl(d, &["rotate-key", "--new", &new_file.display().to_string()]);
    chattr("-i", &key_file);
    assert!(!ok, "{rotate}");
    assert!(rotate.contains("next starts"), "{rotate}");
    assert_eq!(key_id(&key_file), old_id);
    let pending = d.join("keys/brokerd.key.next");
    assert_eq!(key_id(&pending), new_id);
    // Killed there, with no chance to tidy up.
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    std::fs::remove_file(&new_file).unwrap();
    // A killed daemon leaves its socket file; the next one replaces it, but
    // `wait_for` watches for the file to appear.
    std::fs::remove_file(d.join("run/brokerd.sock")).unwrap();

    let daemon = start(d, "second.log");
    assert_eq!(
        [token(d, "interactive"), token(d, "market")],
        before,
        "every session decrypts after the restart"
    );
    assert_eq!(
        sim.login_count(Api::Interactive) + sim.login_count(Api::Market),
        logins,
        "no login at the simulator"
    );
    assert_eq!(
        key_id(&key_file),
        new_id,
        "the restart finished the rotation"
    );
    assert!(!pending.exists());
    let (ok, history) = brokerctl(d, &["history", "--json"]);
    assert!(ok, "{history}");
    assert!(history.contains("finished at start"), "{history}");
    // A clean stop, so the logs are complete.
    let mut daemon = daemon;
    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.0.id().to_string())
        .status()
        .unwrap();
    assert!(daemon.0.wait().unwrap().success(), "clean exit on SIGTERM");

    let logs = std::fs::read_to_string(d.join("first.log")).unwrap()
        + &std::fs::read_to_string(d.join("second.log")).unwrap();
    assert!(logs.contains(&new_id), "the logs name the key by id");
    let keys = [old_b64.trim().to_string(), new_b64.trim().to_string()];
    assert_no_secret(
        &keys,
        &[
            ("daemon logs", &logs),
            ("brokerctl output", &format!("{keygen}{rotate}{history}")),
        ],
    );
    let bytes = db_bytes(&d.join("state/brokerd.db"));
    assert!(
        keys.iter().all(|k| !contains(&bytes, k)),
        "a key in the database"
    );
}
