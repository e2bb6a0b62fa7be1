//! Rejected credentials are never sent again (issue 9, item 3): the store's
//! side. The machine keeps a fingerprint of every set the broker rejected
//! (never the values) and decides (`machine/requests.rs`,
//! `machine/restore.rs`); this file keeps them in the store too, so that a
//! restart does not send them again either.

use std::sync::Arc;

use tracing::warn;

use super::machine::Input;
use super::slot::Slot;
use crate::store::Rejection;

impl Slot {
    /// Stores a rejection the machine made.
    pub(super) async fn persist_rejection(&self, rejection: &Rejection) {
        if let Err(e) = self.store.record_rejection(&self.key, rejection).await {
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, error = %e,
                  "could not store the rejection; a restart would not know these credentials were rejected");
        }
    }

    /// A login succeeded: whatever was rejected before is history.
    pub(super) async fn forget_rejection(&self) {
        if let Err(e) = self.store.clear_rejection(&self.key).await {
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, error = %e,
                  "could not clear the stored rejection");
        }
    }

    /// At startup: credentials the broker rejected before the restart and
    /// that are still configured put the slot back in `locked_out` instead
    /// of being sent again by the first login.
    pub async fn restore_rejection(self: &Arc<Self>) {
        let rejections = match self.store.rejections(&self.key).await {
            Ok(r) => r,
            Err(e) => {
                return warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                             error = %e, "could not read the stored rejections");
            }
        };
        self.restore_rejection_from(rejections);
    }

    /// [`Slot::restore_rejection`] with the rows already read.
    pub fn restore_rejection_from(self: &Arc<Self>, rejections: Vec<Rejection>) {
        let fingerprint = self.settings.lock().connector.credentials_fingerprint();
        let _ = self.feed(Input::StoredRejections {
            rejections,
            fingerprint,
        });
        self.notify();
    }
}
