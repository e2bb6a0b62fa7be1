//! Preflight: every check the daemon's start makes before it can fail,
//! made without side effects (nothing is created: not the state directory,
//! the key file, the database, nor the socket's folder).
//!
//! The start runs [`check`] first and refuses with its problems before it
//! creates anything; `check-config` runs the same function after loading
//! the file and prints the same problems (key, problem, fix). A config that
//! passes the checker therefore does not fail at start for a reason the
//! checker could have seen. What only the start can find out (a port taken,
//! another daemon holding the state directory) stays with the start.

mod folder;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::config::{ConfigProblem, DaemonConfig};
use crate::secret::{Secret, SecretEnv};
use crate::store;

use folder::FolderProblem;

/// Group and other write bits: a state directory with either lets someone
/// else replace the key file or the database under the daemon.
const STATE_DIR_FORBIDDEN: u32 = 0o022;

/// What the start knows besides the configuration.
pub struct Inputs<'a> {
    /// The value of `BROKERD_KEY`, if set: it overrides `daemon.key`.
    pub env_key: Option<&'a Secret>,
    /// Where `env:` and `cred:` references resolve.
    pub env: &'a SecretEnv,
    /// Whether the daemon binds the socket itself; false when systemd
    /// passes a listening socket, whose folder is then systemd's business.
    pub binds_socket: bool,
}

/// Every problem the start would refuse `daemon` for, in the order the
/// start meets them. Empty: nothing the start checks stands in the way.
pub fn check(daemon: &DaemonConfig, inputs: &Inputs<'_>) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    problems.extend(state_dir(&daemon.state_dir));
    problems.extend(key(daemon, inputs));
    problems.extend(database(daemon));
    if inputs.binds_socket {
        problems.extend(socket(&daemon.socket));
        // Binding gives the socket this group; with a passed socket the
        // daemon never uses it.
        if let Some(group) = daemon.socket_group.as_deref() {
            problems.extend(crate::server::socket_dir::resolve_group(group).err());
        }
    }
    problems
}

/// The state directory: a folder the daemon's user can write (or create),
/// that nobody else can write. The daemon creates it with mode 0700.
fn state_dir(dir: &Path) -> Option<ConfigProblem> {
    const KEY: &str = "daemon.state_dir";
    match folder::check(dir) {
        Ok(true) => {}
        Ok(false) => return None,
        Err(p) => {
            let fix = match &p {
                FolderProblem::NotAFolder { .. } => {
                    "point daemon.state_dir at a folder, or at a path where one can be created"
                        .to_string()
                }
                FolderProblem::NotWritable { .. } | FolderProblem::Unreachable { .. } => format!(
                    "give the daemon's user a folder of its own: `install -d -m 0700 -o USER {}` \
                     (under systemd: StateDirectory=brokerd), or point daemon.state_dir elsewhere",
                    dir.display()
                ),
            };
            return Some(ConfigProblem::new(KEY, p.message(dir), fix));
        }
    }
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o7777;
    (mode & STATE_DIR_FORBIDDEN != 0).then(|| {
        ConfigProblem::new(
            KEY,
            format!(
                "{} has mode {mode:04o}: its group or others can write to it, and so replace \
                 the key file or the database",
                dir.display()
            ),
            format!(
                "run `chmod go-w {}` (the daemon creates it with mode 0700)",
                dir.display()
            ),
        )
    })
}

/// The storage key, resolved and read exactly as the store will
/// ([`store::crypto::check_key`]), or the folder it would be created in.
fn key(daemon: &DaemonConfig, inputs: &Inputs<'_>) -> Option<ConfigProblem> {
    let env_key = inputs
        .env_key
        .map(Secret::expose)
        .filter(|k| !k.trim().is_empty());
    let at = if env_key.is_some() {
        "BROKERD_KEY"
    } else {
        "daemon.key"
    };
    let path = match store::crypto::check_key(
        env_key,
        daemon.key.as_ref(),
        daemon.create_key_if_missing,
        inputs.env,
    ) {
        Ok(None) => return None,
        Ok(Some(path)) => path,
        Err(e) => return Some(ConfigProblem::new(at, e.message(), e.fix())),
    };
    let dir = path.parent()?;
    // Inside the state directory: covered by its check, and made by the daemon.
    if dir.starts_with(&daemon.state_dir) {
        return None;
    }
    let p = folder::check(dir).err()?;
    Some(ConfigProblem::new(
        "daemon.key",
        format!(
            "the key file {} is to be created (create_key_if_missing = true), but {}",
            path.display(),
            p.message(dir)
        ),
        format!(
            "make the key yourself with `brokerctl keygen --out {}`, or point daemon.key at a \
             folder the daemon's user can write",
            path.display()
        ),
    ))
}

/// The store's URL names what this build supports, and (SQLite) its
/// database file can be opened for writing, or created. A PostgreSQL URL is
/// checked for shape only: connecting is the start's first act with the
/// store, and it refuses within seconds, naming the database but never the
/// password, when the server cannot be reached.
fn database(daemon: &DaemonConfig) -> Option<ConfigProblem> {
    const KEY: &str = "daemon.database_url";
    let file = match store::parse_url(&daemon.database_url) {
        Ok(store::StoreUrl::Sqlite(f)) => f,
        Ok(store::StoreUrl::Postgres(_)) => return None,
        Err(u) => return Some(ConfigProblem::new(KEY, u.problem, u.fix)),
    };
    let fix = "point daemon.database_url at a file the daemon's user can write, or remove it \
               for brokerd.db in state_dir";
    match std::fs::metadata(&file) {
        Ok(meta) if !meta.is_file() => {
            return Some(ConfigProblem::new(
                KEY,
                format!("the database {} is not a file", file.display()),
                fix,
            ));
        }
        Ok(_) => {
            return folder::file_writable(&file).err().map(|e| {
                ConfigProblem::new(
                    KEY,
                    format!(
                        "the daemon's user (uid {}) cannot read and write the database {}: {e}",
                        rustix::process::geteuid().as_raw(),
                        file.display()
                    ),
                    format!(
                        "chown the database (and its -wal and -shm files) to the daemon's user; {fix}"
                    ),
                )
            });
        }
        Err(_) => {}
    }
    let dir = file.parent()?;
    if dir.starts_with(&daemon.state_dir) {
        return None;
    }
    let p = folder::check(dir).err()?;
    Some(ConfigProblem::new(KEY, p.message(dir), fix))
}

/// What binding the socket needs: its folder made or writable, and no
/// folder where the socket goes.
fn socket(path: &Path) -> Option<ConfigProblem> {
    const KEY: &str = "daemon.socket";
    let fix = "point daemon.socket into a folder the daemon's user can write (under systemd: \
               RuntimeDirectory=brokerd and socket = \"/run/brokerd/brokerd.sock\")";
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        return Some(ConfigProblem::new(
            KEY,
            format!("{} is a folder, not a socket", path.display()),
            fix,
        ));
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let p = folder::check(dir).err()?;
    Some(ConfigProblem::new(KEY, p.message(dir), fix))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
