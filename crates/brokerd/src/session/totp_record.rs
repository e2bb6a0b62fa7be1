//! The store behind Kotak's TOTP gate: each window is recorded, and the
//! record committed, before the code of that window leaves the daemon, so
//! a daemon killed while a login waits for its answer never sends that
//! window's code again after a restart (invariant 10). The broker module
//! sees only the [`WindowLedger`] seam: brokers never touch the store.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::brokers::BrokerId;
use crate::brokers::totp_gate::WindowLedger;
use crate::store::Store;

/// The used TOTP windows of one account, kept in the store.
#[derive(Debug)]
pub(super) struct StoreLedger {
    store: Arc<Store>,
    broker: BrokerId,
    account: String,
}

impl StoreLedger {
    /// The ledger of `account` of `broker` in `store`.
    pub(super) fn new(store: Arc<Store>, broker: BrokerId, account: &str) -> Arc<Self> {
        Arc::new(Self {
            store,
            broker,
            account: account.to_string(),
        })
    }
}

impl WindowLedger for StoreLedger {
    fn last_used(&self) -> BoxFuture<'_, Result<Option<u64>, String>> {
        Box::pin(async move {
            self.store
                .totp_window(self.broker, &self.account)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn record(&self, step: u64) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.store
                .record_totp_window(self.broker, &self.account, step)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
