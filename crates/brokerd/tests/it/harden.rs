//! Secrets stay out of process introspection: the real `brokerd` runs with
//! core dumps off and non-dumpable, and says when its storage key comes from
//! `BROKERD_KEY`; `harden::process` does what it claims in a fresh process.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::child;

use child::{Daemon, idle_jainam_config, wait_for};
use rustix::process::{DumpableBehavior, Resource, dumpable_behavior, getrlimit};

/// Set in the child that [`process_hardening_in_a_fresh_process`] starts.
const CHILD: &str = "BROKERD_TEST_HARDEN_CHILD";

/// `harden::process` changes the whole process irreversibly (a lowered hard
/// limit cannot be raised again), so it runs in a copy of this test binary
/// started for this one test, where the state before can be checked too.
#[test]
fn process_hardening_in_a_fresh_process() {
    if std::env::var_os(CHILD).is_some() {
        assert_eq!(
            dumpable_behavior().unwrap(),
            DumpableBehavior::Dumpable,
            "a plain process starts dumpable, or this test proves nothing"
        );
        let problems = brokerd::harden::process();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
        let core = getrlimit(Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
        println!("HARDENED-OK");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "harden::process_hardening_in_a_fresh_process",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("HARDENED-OK"),
        "the child ran the checks: {text}"
    );
}

#[test]
fn the_daemon_is_not_dumpable_has_no_core_limit_and_warns_about_an_env_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Owned by root, every file in /proc/<pid> of a non-dumpable process
    // belongs to root; for a dumpable one, to the process's user. So the
    // check only tells them apart when the daemon is not root: a root test
    // run starts it as nobody (the binary and this folder must be reachable
    // by nobody, which they are in the usual target/ and temp folders).
    let as_root = rustix::process::getuid().is_root();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = d.join("home");
    std::fs::create_dir(&home).unwrap();
    if as_root {
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    }
    let key = brokerd::store::EncryptionKey::generate();
    let key_b64 = key.to_base64().expose().to_string();
    let config = idle_jainam_config(&home, "log_format = \"json\"", as_root.then_some(65534));
    let log_path = d.join("daemon.log");
    // Core dumps on as far as the hard limit allows, so that a 0 soft limit
    // afterwards is the daemon's doing; `exec` keeps the pid.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -S -c \"$(ulimit -H -c)\" && exec \"$0\" \"$@\"",
    ])
    .arg(env!("CARGO_BIN_EXE_brokerd"))
    .arg("--config")
    .arg(&config)
    .env("BROKERD_KEY", &key_b64)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log_path).unwrap());
    if as_root {
        cmd.uid(65534).gid(65534);
    }
    let mut daemon = Daemon(cmd.spawn().unwrap());
    let pid = daemon.0.id();
    let socket = home.join("run/brokerd.sock");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(&mut daemon.0, &socket, &log);

    let proc_dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(proc_dir.join("status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let daemon_uid: u32 = uid_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_ne!(
        daemon_uid, 0,
        "the check below needs a daemon that is not root"
    );
    // Non-dumpable: the kernel hands /proc/<pid>/environ (and mem, maps, …)
    // to root, so the daemon's own user cannot read it.
    let environ = std::fs::metadata(proc_dir.join("environ")).unwrap();
    assert_eq!(
        environ.uid(),
        0,
        "/proc/{pid}/environ belongs to the daemon's user {daemon_uid}: it is dumpable"
    );

    let limits = std::fs::read_to_string(proc_dir.join("limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(fields[4..6], ["0", "0"], "soft and hard core limit: {core}");

    let text = log();
    assert!(
        text.contains("the storage key comes from the environment variable BROKERD_KEY")
            && text.contains("cred:brokerd-key"),
        "{text}"
    );
    assert!(!text.contains(&key_b64), "the key itself is never logged");
    // The binary removed the variable from its environment (it says so
    // when it cannot, because a thread was already running).
    assert!(!text.contains("stays in the environment"), "{text}");
}
