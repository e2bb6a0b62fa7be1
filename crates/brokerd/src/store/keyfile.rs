//! The key file's companion during a rotation: the new key, written beside
//! the key file as `<key file>.next` before the database changes, then moved
//! over the key file once the database commit re-encrypted every row.
//!
//! Every step is durable before the next begins (file synced, then its
//! folder), so after a crash at any point the key file and `.next` between
//! them hold every key a row can be under.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::crypto::{self, EncryptionKey, KeyError};

/// Mode bits a key file must not have: the `file:` rule of every secret
/// file ([`crate::secret::SecretRef::forbidden_mode_bits`]).
const FORBIDDEN: u32 = 0o077;

/// `<key file>.next`: where a rotation's new key waits for the commit.
pub fn pending_path(key_file: &Path) -> PathBuf {
    with_suffix(key_file, ".next")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads a key file with the rules of the configured one (regular file,
/// no group or other bits, base64 of 32 bytes or 32 raw bytes).
pub(crate) fn read(path: &Path) -> Result<EncryptionKey, KeyError> {
    crypto::read_key_file(path, FORBIDDEN)
}

/// Writes `key` to `<key file>.next` atomically: a temporary file (mode
/// 0600, synced) renamed into place, then the folder synced. Replaces a
/// `.next` left by a rotation that never committed.
pub(crate) fn write_pending(key_file: &Path, key: &EncryptionKey) -> io::Result<()> {
    let temp = with_suffix(key_file, ".next.tmp");
    // Left by a crash mid-write: never read, and in the way of create_new.
    match fs::remove_file(&temp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    crypto::write_key_file(&temp, key)?;
    fs::rename(&temp, pending_path(key_file))?;
    sync_folder(key_file)
}

/// Moves `<key file>.next` over the key file (one atomic rename, which
/// needs no disk space) and syncs the folder.
pub(crate) fn install_pending(key_file: &Path) -> io::Result<()> {
    fs::rename(pending_path(key_file), key_file)?;
    sync_folder(key_file)
}

/// Removes `<key file>.next` (a rotation rolled back), durably.
pub(crate) fn discard_pending(key_file: &Path) -> io::Result<()> {
    match fs::remove_file(pending_path(key_file)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    }
    sync_folder(key_file)
}

fn sync_folder(key_file: &Path) -> io::Result<()> {
    let folder = match key_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(folder)?.sync_all()
}
