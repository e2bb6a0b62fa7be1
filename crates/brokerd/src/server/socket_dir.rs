//! The socket's folder. The daemon creates it for the socket's group; a
//! folder someone else made (systemd's `RuntimeDirectory=`, tmpfiles, an
//! operator) is left as it is but checked, because a folder the socket's
//! group cannot enter turns every client's connect into "Permission denied"
//! however right the socket file's own mode and group are.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::config::{ConfigProblem, DaemonConfig};

/// The mode of a folder the daemon creates: the owner and the socket's
/// group may enter, others not.
pub const FOLDER_MODE: u32 = 0o750;

/// Creates `dir` (and missing parents) when it does not exist: mode
/// [`FOLDER_MODE`], owned by the daemon's uid and by `gid` when a socket
/// group is configured. An existing folder is not touched.
pub fn create(dir: &Path, gid: Option<u32>) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // Created owner-only, then given the group, then opened to it: the
    // folder is never enterable by a group it does not belong to yet.
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Made by someone else meanwhile: theirs, like any existing folder.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(gid) = gid {
        std::os::unix::fs::chown(dir, None, Some(gid))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(FOLDER_MODE))
}

/// A group name or number → gid, from /etc/group. The error names the
/// problem and the fix.
pub fn resolve_group(name: &str) -> Result<u32, ConfigProblem> {
    const KEY: &str = "daemon.socket_group";
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").map_err(|e| {
        ConfigProblem::new(
            KEY,
            format!("cannot read /etc/group: {e}"),
            "give the group as a number (gid), or make /etc/group readable",
        )
    })?;
    groups
        .lines()
        .find_map(|l| {
            let mut parts = l.split(':');
            (parts.next() == Some(name)).then(|| parts.nth(1)?.parse().ok())?
        })
        .ok_or_else(|| {
            ConfigProblem::new(
                KEY,
                format!("no group named {name:?}"),
                format!("create it (groupadd {name}) or fix the name"),
            )
        })
}

/// Why members of `daemon.socket_group` could not reach the socket through
/// its existing folder, or `None` when they can (or no group is configured,
/// or the folder does not exist yet and the daemon will create it). Shared
/// by the daemon's start (logged as a warning) and `check-config`.
pub fn warning(daemon: &DaemonConfig) -> Option<String> {
    let group = daemon.socket_group.as_deref()?;
    let gid = match resolve_group(group) {
        Ok(gid) => gid,
        Err(e) => return Some(e.to_string()),
    };
    let dir = daemon
        .socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())?;
    // Missing: created for the group at start. Unreadable: the daemon's
    // start reports it when it binds.
    let meta = std::fs::metadata(dir).ok()?;
    let mode = meta.mode() & 0o7777;
    let group_enters = meta.gid() == gid && mode & 0o010 != 0;
    let others_enter = mode & 0o001 != 0;
    if group_enters || others_enter {
        return None;
    }
    let dir = dir.display();
    Some(format!(
        "daemon.socket_group: members of group {group} (gid {gid}) cannot reach the socket {socket}: \
         its folder {dir} (owner uid {uid}, group gid {fgid}, mode {mode:04o}) lets neither group {group} \
         nor others enter, so their connects fail with \"Permission denied\". The daemon does not change \
         a folder it did not create. Fix: under systemd give brokerd.service RuntimeDirectory=brokerd, \
         RuntimeDirectoryMode=0750 and Group={group} (and install systemd/brokerd.tmpfiles so the folder \
         is right before the service first starts); by hand: chgrp {group} {dir} && chmod 0750 {dir}",
        socket = daemon.socket.display(),
        uid = meta.uid(),
        fgid = meta.gid(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_groups_need_no_lookup() {
        assert_eq!(resolve_group("4242"), Ok(4242));
    }

    #[test]
    fn unknown_groups_name_the_fix() {
        let err = resolve_group("no-such-group-brokerd-test").unwrap_err();
        assert_eq!(err.key, "daemon.socket_group");
        assert!(
            err.fix.contains("groupadd no-such-group-brokerd-test"),
            "{err}"
        );
    }

    #[test]
    fn existing_folders_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        create(dir.path(), Some(4242)).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o700);
        assert_ne!(meta.gid(), 4242);
    }
}
