//! Whether the daemon's user can make files in a folder, creating the
//! folder (and its missing parents) first if need be: what the start needs
//! of the state directory, the socket's folder and a key file's folder.
//! Looked at, never created.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, AtFlags, CWD, accessat};

/// Why the daemon's user could not make files in a folder.
#[derive(Debug)]
pub(super) enum FolderProblem {
    /// `at` (the folder itself, or one of its ancestors) exists and is not
    /// a folder.
    NotAFolder {
        /// The path that is a file.
        at: PathBuf,
    },
    /// The daemon's user cannot write to `at`: the folder itself, or, when
    /// it is missing, its nearest existing ancestor, where it would be made.
    NotWritable {
        /// The folder written to.
        at: PathBuf,
        /// What the kernel answered (EACCES, EROFS).
        error: io::Error,
    },
    /// `at` cannot even be looked at (a parent the user may not enter).
    Unreachable {
        /// The path that could not be inspected.
        at: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl FolderProblem {
    /// The problem's text, about `dir` (the folder asked about).
    pub(super) fn message(&self, dir: &Path) -> String {
        let uid = rustix::process::geteuid().as_raw();
        let shown = dir.display();
        match self {
            Self::NotAFolder { at } if at == dir => format!("{shown} is not a folder"),
            Self::NotAFolder { at } => format!(
                "{shown} cannot be created: {} is a file, not a folder",
                at.display()
            ),
            Self::NotWritable { at, error } if at == dir => {
                format!("the daemon's user (uid {uid}) cannot write to {shown}: {error}")
            }
            Self::NotWritable { at, error } => format!(
                "{shown} does not exist, and the daemon's user (uid {uid}) cannot create it: \
                 cannot write to {}: {error}",
                at.display()
            ),
            Self::Unreachable { at, error } => {
                format!(
                    "cannot look at {} (on the way to {shown}): {error}",
                    at.display()
                )
            }
        }
    }
}

/// Checks that files can be made in `dir` by this process's effective user,
/// or that `dir` could be created (nearest existing ancestor a writable
/// folder). `Ok(true)` when `dir` exists.
///
/// Permission bits are asked of the kernel (`faccessat` with `AT_EACCESS`)
/// rather than computed, so ACLs, read-only mounts and root's override all
/// count exactly as they will when the daemon writes.
pub(super) fn check(dir: &Path) -> Result<bool, FolderProblem> {
    let mut missing = false;
    for at in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
        match std::fs::metadata(at) {
            Ok(meta) if meta.is_dir() => {
                return writable(at).map(|()| !missing);
            }
            Ok(_) => {
                return Err(FolderProblem::NotAFolder {
                    at: at.to_path_buf(),
                });
            }
            // ENOTDIR: a file further up; the walk reaches it.
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::NotADirectory =>
            {
                missing = true;
            }
            Err(error) => {
                return Err(FolderProblem::Unreachable {
                    at: at.to_path_buf(),
                    error,
                });
            }
        }
    }
    // Relative paths were made absolute by the config; "/" always exists.
    Ok(false)
}

/// Write and search permission on a folder, for the effective user.
fn writable(at: &Path) -> Result<(), FolderProblem> {
    accessat(
        CWD,
        at,
        Access::WRITE_OK | Access::EXEC_OK,
        AtFlags::EACCESS,
    )
    .map_err(|e| FolderProblem::NotWritable {
        at: at.to_path_buf(),
        error: e.into(),
    })
}

/// Read and write permission on an existing file, for the effective user.
pub(super) fn file_writable(path: &Path) -> io::Result<()> {
    accessat(
        CWD,
        path,
        Access::READ_OK | Access::WRITE_OK,
        AtFlags::EACCESS,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_folders_are_fine_under_a_writable_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check(dir.path()).unwrap());
        let deep = dir.path().join("a/b/c");
        assert!(!check(&deep).unwrap());
        assert!(!dir.path().join("a").exists(), "nothing was created");
    }

    #[test]
    fn a_file_on_the_way_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        for asked in [file.clone(), file.join("state"), file.join("a/b")] {
            match check(&asked) {
                Err(p @ FolderProblem::NotAFolder { .. }) => {
                    let text = p.message(&asked);
                    assert!(text.contains(&file.display().to_string()), "{text}");
                }
                other => panic!("{}: {other:?}", asked.display()),
            }
        }
    }
}
