//! The socket's folder lets the socket's group in: the daemon creates a
//! missing one 0750 in `socket_group`, and warns (at start and in
//! `check-config`) about an existing one the group cannot enter, without
//! changing it. A peer whose only allowed group is a supplementary one gets
//! in. Needs root (the tests chown and switch users with setpriv).

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Harness, eventually};

/// A group every Debian system has, that root is not in.
const GROUP: &str = "daemon";
/// nobody: a uid that is not the daemon's and not root.
const NOBODY: u32 = 65534;

/// The gid of group `name`, as the daemon resolves `socket_group`.
fn gid_of(name: &str) -> u32 {
    brokerd::server::socket_dir::resolve_group(name)
        .unwrap_or_else(|e| panic!("group {name} exists on this machine: {e}"))
}

/// An unstarted harness whose socket is `<tmp>/run/brokerd.sock` with
/// `socket_group = GROUP`, and whose temp dir lets other users pass
/// (tempdirs are 0700), so only the socket folder decides who gets in.
async fn harness(gid: u32) -> Harness {
    let sim = brokerd_sim::xts::XtsSim::start(brokerd_sim::xts::XtsSimConfig::default())
        .await
        .unwrap();
    let h = Harness {
        dir: tempfile::tempdir().unwrap(),
        sim,
        running: None,
        policy: "login_at_start = false".into(),
        extra: String::new(),
        daemon: format!(
            "socket_group = \"{GROUP}\"\nsocket_mode = \"0660\"\nallowed_gids = [{gid}]"
        ),
        limits: String::new(),
        jainam: String::new(),
        clock: None,
    };
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    h
}

/// `brokerctl status` as uid nobody whose only group is `gid`.
async fn status_as_member(socket: &Path, gid: u32) -> Output {
    let mut cmd = tokio::process::Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("--socket")
        .arg(socket)
        .args(["status", "--json"]);
    cmd.output().await.expect("setpriv runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_folder_is_created_for_the_socket_group_and_its_members_connect() {
    let gid = gid_of(GROUP);
    let mut h = harness(gid).await;
    let folder = h.dir.path().join("run");
    assert!(!folder.exists());
    h.boot().await;

    let meta = std::fs::metadata(&folder).unwrap();
    assert_eq!(
        meta.uid(),
        brokerd::daemon::own_uid(),
        "owned by the daemon"
    );
    assert_eq!(meta.gid(), gid, "in the socket group");
    assert_eq!(meta.mode() & 0o7777, 0o750);
    let sock = std::fs::metadata(h.socket()).unwrap();
    assert_eq!(sock.gid(), gid);
    assert_eq!(sock.mode() & 0o777, 0o660);

    // A member of the group only (not root, not the daemon's uid) gets in.
    let out = status_as_member(&h.socket(), gid).await;
    assert!(out.status.success(), "member connects: {}", text(&out));
    assert!(
        text(&out).contains("\"account\": \"main\""),
        "{}",
        text(&out)
    );

    // The same client against a folder the group cannot enter: the check
    // above would catch a folder that locks the group out.
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = status_as_member(&h.socket(), gid).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ermission denied"), "{}", text(&out));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_made_by_someone_else_is_kept_and_warned_about() {
    let gid = gid_of(GROUP);
    let h = harness(gid).await;
    let folder = h.dir.path().join("run");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&folder, Some(0), Some(0)).unwrap();
    let config = h.config_path();
    std::fs::write(&config, h.config_text()).unwrap();
    let expect = [
        folder.display().to_string(),
        "mode 0750".into(),
        "group gid 0".into(),
        "RuntimeDirectory=brokerd".into(),
        format!("Group={GROUP}"),
        format!(
            "chgrp {GROUP} {} && chmod 0750 {}",
            folder.display(),
            folder.display()
        ),
    ];

    let check = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = text(&check);
    assert!(check.status.success(), "a warning, not a problem: {report}");
    assert!(report.contains("warning: daemon.socket_group:"), "{report}");
    for e in &expect {
        assert!(
            report.contains(e.as_str()),
            "check-config names {e:?}: {report}"
        );
    }

    let log = h.dir.path().join("daemon.log");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let up = eventually(Duration::from_secs(20), || h.socket().exists()).await;
    let _ = daemon.kill();
    let _ = daemon.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(up, "daemon came up: {logged}");
    assert!(logged.contains("WARN"), "{logged}");
    for e in &expect {
        assert!(
            logged.contains(e.as_str()),
            "the start log names {e:?}: {logged}"
        );
    }

    // Not changed behind the operator's back.
    let meta = std::fs::metadata(&folder).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o750)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_the_group_can_enter_gives_no_warning() {
    let gid = gid_of(GROUP);
    let h = harness(gid).await;
    let folder = h.dir.path().join("run");
    std::fs::create_dir(&folder).unwrap();
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&folder, Some(0), Some(gid)).unwrap();
    let config = h.config_path();
    std::fs::write(&config, h.config_text()).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = text(&check);
    assert!(check.status.success(), "{report}");
    assert!(!report.contains("socket_group"), "{report}");
}

/// `brokerctl status` as uid and primary gid nobody, with `gid` as its only
/// supplementary group: only the supplementary group can let it in.
async fn status_as_supplementary_member(socket: &Path, gid: u32) -> Output {
    let mut cmd = tokio::process::Command::new("setpriv");
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg(format!("--groups={gid}"))
        .arg(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("--socket")
        .arg(socket)
        .args(["status", "--json"]);
    cmd.output().await.expect("setpriv runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplementary_group_on_allowed_gids_lets_the_peer_in() {
    let gid = gid_of(GROUP);
    let mut h = harness(gid).await;
    h.boot().await;
    // Neither the uid nor the primary gid (both nobody) is allowed: only the
    // supplementary group the daemon reads for the peer can grant this.
    let out = status_as_supplementary_member(&h.socket(), gid).await;
    assert!(out.status.success(), "member connects: {}", text(&out));
    assert!(
        text(&out).contains("\"account\": \"main\""),
        "{}",
        text(&out)
    );
    h.stop().await;

    // The same client, let through by the socket's file mode (it is in the
    // socket group) but with its group off allowed_gids: the daemon refuses,
    // so the grant above was the daemon's decision on the group.
    let mut h = harness(gid).await;
    h.daemon = h.daemon.replace(
        &format!("allowed_gids = [{gid}]"),
        &format!("allowed_gids = [{}]", gid + 1),
    );
    h.boot().await;
    let out = status_as_supplementary_member(&h.socket(), gid).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("uid {NOBODY} is not allowed to use brokerd")),
        "{}",
        text(&out)
    );
    h.stop().await;
}
