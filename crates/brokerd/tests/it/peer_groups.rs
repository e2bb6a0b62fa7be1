//! Supplementary groups come from the socket, not from `/proc`: the real
//! `brokerd`, run as an unprivileged user that cannot see other users'
//! processes (a `/proc` mounted `hidepid=invisible`, which is what the unit's
//! `ProtectProc=invisible` does), still lets in a client whose only allowed
//! group is a supplementary one, and still refuses it when that group is
//! off `allowed_gids`. Reading `/proc/PID/status`, as the daemon did before
//! `SO_PEERGROUPS`, finds nothing there and refuses the member.
//!
//! Needs root (mount namespace, switching users) and `unshare`/`setpriv`
//! from util-linux, like the other tests that switch users.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::child;

use child::{idle_jainam_config, wait_for};

/// The daemon behind `unshare --fork`, in a process group of its own:
/// dropping it kills the whole group. Killing `unshare` alone would leave
/// the daemon it forked running as nobody (a parent-death signal does not
/// survive the user switch).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.0.wait();
    }
}

/// The daemon's user.
const NOBODY: u32 = 65534;
/// The client's uid: the `daemon` system user (uid 1 on Debian), neither
/// root nor the daemon's user; its primary group is nogroup.
const CLIENT_UID: u32 = 1;
/// The client's only supplementary group: `daemon` (gid 1).
const GROUP: u32 = 1;

/// Starts the daemon as nobody behind a `/proc` that hides other users'
/// processes, with `allowed_gids = [allowed_gid]`; returns it and its socket.
/// Its group is `GROUP`, the socket's group, so the file mode lets the
/// client connect and only the daemon's own check decides.
fn start(home: &Path, allowed_gid: u32) -> (Daemon, std::path::PathBuf) {
    std::fs::create_dir(home).unwrap();
    std::os::unix::fs::chown(home, Some(NOBODY), Some(NOBODY)).unwrap();
    let config = idle_jainam_config(
        home,
        &format!(
            "socket_mode = \"0660\"\nsocket_group = \"daemon\"\nallowed_gids = [{allowed_gid}]"
        ),
        Some(NOBODY),
    );
    let log_path = home.join("daemon.log");
    let key = brokerd::store::EncryptionKey::generate();
    // A private mount namespace with its own /proc, hidepid=invisible; the
    // daemon then runs as nobody. Exit 97 if nobody could still see pid 1's
    // status: then the test would prove nothing.
    let script = format!(
        "mount -t proc -o hidepid=invisible proc /proc || exit 96
         setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups test ! -e /proc/1/status || exit 97
         exec setpriv --reuid={NOBODY} --regid={GROUP} --clear-groups \"$0\" \"$@\""
    );
    let mut daemon = Daemon(
        Command::new("unshare")
            .args(["--mount", "--fork", "sh", "-c", &script])
            .arg(env!("CARGO_BIN_EXE_brokerd"))
            .arg("--config")
            .arg(&config)
            .env("BROKERD_KEY", key.to_base64().expose())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .process_group(0)
            .spawn()
            .expect("unshare (util-linux) runs"),
    );
    let socket = home.join("run/brokerd.sock");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for(&mut daemon.0, &socket, &log);
    (daemon, socket)
}

/// `brokerctl status` as uid 1, primary group nogroup, and `GROUP` as its
/// only supplementary group.
fn status_as_supplementary_member(socket: &Path) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={CLIENT_UID}"))
        .arg(format!("--regid={NOBODY}"))
        .arg(format!("--groups={GROUP}"))
        .arg(env!("CARGO_BIN_EXE_brokerctl"))
        .arg("--socket")
        .arg(socket)
        .args(["status", "--json"])
        .output()
        .expect("setpriv runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn a_daemon_that_cannot_see_the_client_process_still_honours_its_supplementary_group() {
    assert!(
        rustix::process::getuid().is_root(),
        "this test needs root: it mounts /proc in a namespace and switches users (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    // Temp dirs are 0700; the daemon and the client must pass through.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();

    let (daemon, socket) = start(&dir.path().join("allowed"), GROUP);
    let out = status_as_supplementary_member(&socket);
    assert!(out.status.success(), "member connects: {}", text(&out));
    assert!(
        text(&out).contains("\"account\": \"main\""),
        "{}",
        text(&out)
    );
    drop(daemon);

    // Control: the same client with its group off the list is refused, so
    // the grant above was the daemon's decision on the supplementary group.
    let (daemon, socket) = start(&dir.path().join("refused"), GROUP + 1);
    let out = status_as_supplementary_member(&socket);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("uid {CLIENT_UID} is not allowed to use brokerd")),
        "{}",
        text(&out)
    );
    drop(daemon);
}
