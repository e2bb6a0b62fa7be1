//! Key rotation: every stored session re-encrypted under a new key, with no
//! login and no pause in serving, crash-safe at every step.
//!
//! The order is what makes it safe. With `K` the key file (`daemon.key`):
//!
//! 1. the new key is written beside it, `K.next` (synced);
//! 2. one database transaction re-encrypts every session and records the
//!    rotation in the audit table (the commit is the point of no return);
//! 3. `K.next` is renamed over `K` (synced).
//!
//! A crash before 2 commits leaves every row under the old key, which `K`
//! holds; a crash after leaves every row under the new key, which `K.next`
//! or `K` holds. [`finish_interrupted`], run at every start before sessions
//! are read, tells the two apart by the rows themselves and finishes or
//! rolls back. Keys only brokerd can rewrite can be rotated: a `file:` key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::crypto::{EncryptionKey, KeyError};
use super::keyfile;
use super::reencrypt::Reencrypted;
use super::{AuditEvent, Store, StoreError};

/// Where the store's key lives, which decides whether brokerd can rotate it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyHome {
    /// A `file:` key, which brokerd rewrites when it rotates.
    File(PathBuf),
    /// A key brokerd cannot rewrite, named as configured (`BROKERD_KEY`,
    /// `env:NAME`, `cred:NAME`).
    Fixed(String),
}

/// Where a rotation's new key comes from.
#[derive(Clone, Copy, Debug)]
pub enum NewKey<'a> {
    /// A key file the daemon reads itself, with the rules of the key file
    /// (the key never crosses the socket).
    File(&'a Path),
    /// A fresh random key made by the daemon.
    Generate,
}

/// A finished rotation. Key ids only, never key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    /// The key the sessions were under.
    pub old_key_id: String,
    /// The key they are under now, and that the key file holds.
    pub new_key_id: String,
    /// What the re-encryption did.
    pub outcome: Reencrypted,
}

/// Why a rotation did not happen, or did not finish. Never holds key
/// material, nor the text of a key file.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Nothing was changed.
    #[error("{message}; {fix}")]
    Refused {
        /// What is wrong.
        message: String,
        /// What to do about it.
        fix: String,
    },
    /// The store refused the transaction: it rolled back, nothing changed.
    #[error("the key rotation was rolled back, nothing changed: {0}")]
    Store(#[from] StoreError),
    /// The sessions are under the new key, but the key file still holds
    /// the old one: both keys are on disk, and the next start finishes.
    #[error(
        "the sessions are re-encrypted under key {new_key_id}, but the key file was not replaced \
         ({reason}); the new key waits in {}: brokerd finishes the rotation when it next starts",
        pending.display()
    )]
    Unfinished {
        /// The new key's id.
        new_key_id: String,
        /// Why the last step did not happen.
        reason: String,
        /// Where the new key waits.
        pending: PathBuf,
    },
}

impl RotationError {
    fn refused(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Refused {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Rotates the key of one store. One rotation at a time.
#[derive(Debug)]
pub struct KeyRotator {
    home: KeyHome,
    store: Arc<Store>,
    running: tokio::sync::Mutex<()>,
}

impl KeyRotator {
    /// A rotator for `store`, whose key lives at `home`.
    pub fn new(home: KeyHome, store: Arc<Store>) -> Self {
        Self {
            home,
            store,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-encrypts every stored session under the new key and makes it the
    /// key file's key (see the module documentation for the order). Refuses
    /// without changing anything when the key is not a `file:` key, the new
    /// key cannot be read by the key file's rules, or it is the current key.
    pub async fn rotate(&self, new: NewKey<'_>) -> Result<Rotated, RotationError> {
        let Ok(_one_at_a_time) = self.running.try_lock() else {
            return Err(RotationError::refused(
                "another key rotation is running",
                "wait for it to finish, then check `brokerctl history`",
            ));
        };
        let key_file = match &self.home {
            KeyHome::File(path) => path.as_path(),
            KeyHome::Fixed(origin) => {
                return Err(RotationError::refused(
                    format!("the storage key comes from {origin}, which brokerd cannot rewrite"),
                    "put the key in a file brokerd's user owns (mode 0600), set daemon.key = \
                     \"file:/path/to/it\" (and unset BROKERD_KEY), restart brokerd, then run \
                     `brokerctl rotate-key` again",
                ));
            }
        };
        let pending = keyfile::pending_path(key_file);
        if pending.exists() {
            return Err(RotationError::refused(
                format!(
                    "{} exists: an earlier key rotation did not finish",
                    pending.display()
                ),
                "restart brokerd: it finishes or rolls back that rotation when it starts",
            ));
        }
        let old_id = self.store.key_id();
        // The file must still hold the key brokerd runs with: replacing a
        // key the operator changed by hand would lose it.
        match keyfile::read(key_file) {
            Ok(on_disk) if on_disk.id() == old_id => {}
            Ok(on_disk) => {
                return Err(RotationError::refused(
                    format!(
                        "the key file {} holds key {}, but brokerd runs with key {old_id}",
                        key_file.display(),
                        on_disk.id()
                    ),
                    "put the key brokerd started with back, or restart brokerd, before rotating",
                ));
            }
            Err(e) => {
                return Err(RotationError::refused(
                    format!("the key file: {}", e.message()),
                    e.fix(),
                ));
            }
        }
        let new = Arc::new(new_key(new)?);
        if new.id() == old_id {
            return Err(RotationError::refused(
                format!("key {old_id} is already the current key"),
                "make a new key with `brokerctl keygen --out FILE`, or omit --new",
            ));
        }
        if let Err(e) = keyfile::write_pending(key_file, &new) {
            // Best effort: a `.next` nothing is under is rolled back at start.
            let _ = keyfile::discard_pending(key_file);
            return Err(RotationError::refused(
                format!(
                    "cannot write the new key to {}: {e}",
                    keyfile::pending_path(key_file).display()
                ),
                format!(
                    "let brokerd's user write the key file's folder ({}): the new key is \
                     written beside the key file, then renamed over it",
                    key_file.parent().unwrap_or(Path::new(".")).display()
                ),
            ));
        }
        let new_id = new.id().to_string();
        let detail = |done: &Reencrypted| describe(&old_id, &new_id, done, "");
        let outcome = match self
            .store
            .reencrypt(Arc::clone(&new), AuditEvent::KeyRotated, detail)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                // Rolled back: every row is still under the old key.
                let _ = keyfile::discard_pending(key_file);
                return Err(RotationError::Store(e));
            }
        };
        let unfinished = |reason: String| RotationError::Unfinished {
            new_key_id: new_id.clone(),
            reason,
            pending: pending.clone(),
        };
        if self.store.faults().rotation_halts() {
            return Err(unfinished(
                "halted after the commit by fault injection".into(),
            ));
        }
        keyfile::install_pending(key_file).map_err(|e| unfinished(e.to_string()))?;
        self.store.forget_old_keys();
        tracing::info!(old_key_id = %old_id, new_key_id = %new_id, sessions = outcome.sessions,
                       unreadable = outcome.unreadable.len(), "storage key rotated");
        Ok(Rotated {
            old_key_id: old_id,
            new_key_id: new_id,
            outcome,
        })
    }
}

fn new_key(new: NewKey<'_>) -> Result<EncryptionKey, RotationError> {
    let path = match new {
        NewKey::Generate => return Ok(EncryptionKey::generate()),
        NewKey::File(path) => path,
    };
    keyfile::read(path).map_err(|e| {
        let fix = match &e {
            KeyError::FileMissing { .. } => format!(
                "make it with `brokerctl keygen --out {}` as brokerd's user, or omit --new to let \
                 brokerd make the key",
                path.display()
            ),
            KeyError::Io { .. } => format!(
                "brokerd reads the file itself (the key never crosses the socket): let its user \
                 read {}",
                path.display()
            ),
            KeyError::Missing
            | KeyError::NotBase64 { .. }
            | KeyError::WrongLength { .. }
            | KeyError::Permissions { .. }
            | KeyError::LiteralInConfig
            | KeyError::Reference(_) => e.fix(),
        };
        RotationError::refused(format!("the new key: {}", e.message()), fix)
    })
}

fn describe(old_id: &str, new_id: &str, done: &Reencrypted, when: &str) -> String {
    let mut text = format!(
        "key {old_id} -> {new_id}{when}: {} session(s) re-encrypted",
        done.sessions
    );
    if !done.unreadable.is_empty() {
        text.push_str(&format!(
            "; unreadable before and left as they were: {}",
            done.unreadable.join(", ")
        ));
    }
    text
}

/// What [`finish_interrupted`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// No rotation was interrupted.
    None,
    /// The rotation had committed: the new key is now the key file's.
    Finished {
        /// The key the rotation moved to.
        new_key_id: String,
    },
    /// The rotation had not committed: its pending key was removed.
    RolledBack {
        /// The key the rotation would have moved to.
        new_key_id: String,
    },
}

/// Run at start, after the store opened and before any session is read:
/// finishes or rolls back a rotation that a crash (or a failed last step)
/// interrupted. The rows decide: when none is under the current key, or
/// some are under the pending key, the transaction had committed, so the
/// rotation is finished (stray rows re-encrypted, `K.next` renamed over
/// `K`); otherwise `K.next` is removed. The pending key is accepted for
/// reading before anything else, so even a failed finish leaves every
/// session readable (the next start tries again).
pub async fn finish_interrupted(
    store: &Store,
    home: &KeyHome,
) -> Result<Interrupted, RotationError> {
    let KeyHome::File(key_file) = home else {
        return Ok(Interrupted::None);
    };
    let pending = keyfile::pending_path(key_file);
    let next = match keyfile::read(&pending) {
        Ok(key) => Arc::new(key),
        Err(KeyError::FileMissing { .. }) => return Ok(Interrupted::None),
        Err(e) => {
            return Err(RotationError::refused(
                format!(
                    "an interrupted key rotation left {}, which cannot be read: {}",
                    pending.display(),
                    e.message()
                ),
                e.fix(),
            ));
        }
    };
    let current_id = store.key_id();
    let new_key_id = next.id().to_string();
    // First: whatever happens next, rows under either key stay readable.
    store.accept_key(Arc::clone(&next));
    let by_key = store.sessions_by_key().await?;
    let under = |id: &str| by_key.iter().find(|(k, _)| k == id).map_or(0, |(_, n)| *n);
    let committed = new_key_id != current_id && (under(&new_key_id) > 0 || under(&current_id) == 0);
    if !committed {
        store.forget_old_keys();
        keyfile::discard_pending(key_file).map_err(|e| {
            RotationError::refused(
                format!("cannot remove {}: {e}", pending.display()),
                "let brokerd's user write the key file's folder",
            )
        })?;
        store
            .audit_daemon(
                AuditEvent::KeyRotationRolledBack,
                &format!(
                    "key {current_id} -> {new_key_id}: interrupted before its commit; every \
                     session stays under {current_id}"
                ),
            )
            .await;
        tracing::warn!(key_id = %current_id, abandoned_key_id = %new_key_id,
                       "a key rotation was interrupted before its commit: rolled back");
        return Ok(Interrupted::RolledBack { new_key_id });
    }
    let detail =
        |done: &Reencrypted| describe(&current_id, &new_key_id, done, " (finished at start)");
    store
        .reencrypt(Arc::clone(&next), AuditEvent::KeyRotated, detail)
        .await?;
    keyfile::install_pending(key_file).map_err(|e| RotationError::Unfinished {
        new_key_id: new_key_id.clone(),
        reason: e.to_string(),
        pending: pending.clone(),
    })?;
    store.forget_old_keys();
    tracing::warn!(old_key_id = %current_id, key_id = %new_key_id,
                   "finished a key rotation that was interrupted after its commit");
    Ok(Interrupted::Finished { new_key_id })
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
