//! A switch that makes every store write fail the way a full disk does, so
//! tests (and drills on a staging host) can prove what the daemon does when
//! its state directory fills up, without filling a disk.
//!
//! The injected error is the one SQLite gives on a full disk, through the
//! same `sqlx::Error::Database` path and with the same text
//! (`(code: 13) database or disk is full`), so everything above the store
//! (classification, messages, status) sees exactly what a real outage shows.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::error::{DatabaseError, ErrorKind};

use super::StoreError;

/// SQLite's primary result code for "database or disk is full".
pub(crate) const SQLITE_FULL: &str = "13";

/// Turns injected write failures on and off. Cheap to clone; every clone
/// controls the same store. Reads are never affected.
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch {
    // An atomic: checked on every write, flipped from another task.
    full: Arc<AtomicBool>,
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

    /// Whether writes are being failed.
    pub fn disk_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// Called at the start of every write.
    pub(crate) fn check_write(&self) -> Result<(), StoreError> {
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
