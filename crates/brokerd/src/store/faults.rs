//! A switch that makes every store write fail the way a full disk does, so
//! tests (and drills on a staging host) can prove what the daemon does when
//! its state directory fills up, without filling a disk.
//!
//! The injected error is the one SQLite gives on a full disk, through the
//! same `sqlx::Error::Database` path and with the same text
//! (`(code: 13) database or disk is full`), so everything above the store
//! (classification, messages, status) sees exactly what a real outage shows.
//! A PostgreSQL store injects the same error (its own disk-full error,
//! SQLSTATE 53100, is classified alike by `StoreError::is_disk_full`).
//!
//! A key rotation has two more drills: the disk filling halfway through its
//! transaction ([`FaultSwitch::set_disk_full_after`]), and the process dying
//! between its commit and the key file's replacement
//! ([`FaultSwitch::halt_rotation_after_commit`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use sqlx::error::{DatabaseError, ErrorKind};

use super::StoreError;

/// SQLite's primary result code for "database or disk is full".
pub(crate) const SQLITE_FULL: &str = "13";

/// Turns injected write failures on and off. Cheap to clone; every clone
/// controls the same store. Reads are never affected.
#[derive(Clone, Debug)]
pub struct FaultSwitch {
    // An atomic: checked on every write, flipped from another task.
    full: Arc<AtomicBool>,
    /// Writes still let through before the disk "fills"; negative: no limit.
    writes_left: Arc<AtomicI64>,
    halt_rotation: Arc<AtomicBool>,
}

impl Default for FaultSwitch {
    fn default() -> Self {
        Self {
            full: Arc::default(),
            writes_left: Arc::new(AtomicI64::new(-1)),
            halt_rotation: Arc::default(),
        }
    }
}

impl FaultSwitch {
    /// From now on every write fails as on a full disk (`true`), or goes
    /// through again (`false`).
    pub fn set_disk_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
        tracing::warn!(
            full,
            "store fault injection: writes {}",
            if full { "now fail" } else { "work again" }
        );
    }

    /// Lets the next `writes` writes through, then fails every write as on
    /// a full disk (until [`FaultSwitch::set_disk_full`]`(false)`): a disk
    /// that fills in the middle of a multi-row transaction.
    pub fn set_disk_full_after(&self, writes: u32) {
        self.writes_left.store(i64::from(writes), Ordering::SeqCst);
    }

    /// Whether writes are being failed.
    pub fn disk_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// Makes the next key rotation stop right after its database commit, as
    /// if the process died there: the key file is not replaced and the
    /// pending new key stays beside it. Only a restart finishes that
    /// rotation, as it would after a real crash.
    pub fn halt_rotation_after_commit(&self, halt: bool) {
        self.halt_rotation.store(halt, Ordering::SeqCst);
    }

    /// Whether a rotation must stop after its commit (see above).
    pub(crate) fn rotation_halts(&self) -> bool {
        self.halt_rotation.swap(false, Ordering::SeqCst)
    }

    /// Called at the start of every write.
    pub(crate) fn check_write(&self) -> Result<(), StoreError> {
        let counted = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 0).then(|| n - 1)
            });
        if counted == Err(0) {
            // The allowance is spent: the disk is full from now on.
            self.writes_left.store(-1, Ordering::SeqCst);
            self.full.store(true, Ordering::SeqCst);
        }
        if self.disk_full() {
            return Err(StoreError::Database(sqlx::Error::Database(Box::new(
                InjectedFull,
            ))));
        }
        Ok(())
    }
}

/// What SQLite reports when a write needs space the disk does not have.
#[derive(Debug)]
struct InjectedFull;

impl InjectedFull {
    const MESSAGE: &'static str = "database or disk is full";
}

impl fmt::Display for InjectedFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The layout of sqlx's own SQLite errors.
        write!(f, "(code: {SQLITE_FULL}) {}", Self::MESSAGE)
    }
}

impl std::error::Error for InjectedFull {}

impl DatabaseError for InjectedFull {
    fn message(&self) -> &str {
        Self::MESSAGE
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(SQLITE_FULL))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}
