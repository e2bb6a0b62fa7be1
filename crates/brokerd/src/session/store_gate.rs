//! Never spend a login that cannot be kept. Before every login and every
//! browser submission the slot proves that the store can take the session
//! (`Store::reserve_session`). When it cannot (typically a full disk), the
//! slot makes no broker call: a login whose session is then discarded would
//! end the session brokerd still serves (one session per app key) or burn a
//! person's single-use request token. Instead the slot keeps serving its
//! current session while it is valid, reports `store_unavailable` (status,
//! metrics, one event per outage, audit when the store takes it) and probes
//! the store again by itself, from `backoff_initial` doubling to a minute.
//! When a probe succeeds the outage ends and the usual logic logs in if a
//! session is needed. None of this counts as a failed login.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::{debug, error};

use super::error::{ErrorCode, RequestError};
use super::machine::{Answer, GateBy, Input};
use super::slot::Slot;
use crate::store::{AuditEvent, StoreError};

/// How the message of an outage begins when it started with a login whose
/// session the store refused (the login was spent, not saved).
use super::machine::SPENT;

impl Slot {
    /// `Ok` when the session of the next login can be stored. Otherwise
    /// the slot is now in `store_unavailable` and the error says why; the
    /// caller must not call the broker.
    pub(super) async fn store_gate(self: &Arc<Self>, by: GateBy) -> Result<(), RequestError> {
        match self.store.reserve_session(&self.key).await {
            Ok(()) => {
                let effects = self.feed(Input::StoreAccepted { by });
                if !effects.list.is_empty() {
                    self.notify();
                }
                self.apply(effects.list, None).await;
                Ok(())
            }
            Err(e) => Err(self.store_outage(&e, by, false).await),
        }
    }

    /// A login whose session the store then refused (the reservation made
    /// this nearly impossible: something else filled the disk between the
    /// two, or a reader kept the WAL from being rewound). The login is
    /// spent: say so plainly, and make no other until the store recovers.
    /// `false`: not a store outage (e.g. encryption), handle as before.
    pub(super) async fn session_not_stored(
        self: &Arc<Self>,
        e: &StoreError,
        generation: u64,
    ) -> bool {
        if !matches!(e, StoreError::Database(_) | StoreError::Io { .. }) {
            return false;
        }
        self.counters.logins_failed.fetch_add(1, Ordering::Relaxed);
        error!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
               outcome = "store_failed_after_reservation", error = %e,
               "LOGIN SPENT: the store refused the session after its reservation had succeeded; the new session \
                is discarded, and the broker may have ended the previous one with this login. No further login \
                until the store accepts writes again");
        self.audit(
            None,
            AuditEvent::LoginFailed,
            &format!("login spent: the session could not be stored: {e}"),
        )
        .await;
        // The login task owns the phase (`LoggingIn`).
        let _ = self.store_outage(e, GateBy::LoginTask, true).await;
        true
    }

    /// Feeds the outage to the machine (phase, `last_error`, announced
    /// once) and builds the answer for the caller.
    /// `spent`: the outage was found by a save after a login.
    async fn store_outage(
        self: &Arc<Self>,
        e: &StoreError,
        by: GateBy,
        spent: bool,
    ) -> RequestError {
        let mut message = outage_message(
            &self.key.to_string(),
            &self.store.location(),
            self.store.outage_fix(e),
            e,
        );
        if spent {
            message.insert_str(0, SPENT);
        }
        let effects = self.feed(Input::StoreRefused {
            by,
            message: message.clone(),
        });
        let until = match effects.answer {
            Answer::Outage { first, until } => {
                if !first {
                    debug!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, error = %e,
                           "the store still cannot take a session");
                }
                until
            }
            other => unreachable!("a store refusal is answered with the outage, not {other:?}"),
        };
        self.notify();
        self.apply(effects.list, None).await;
        RequestError::new(ErrorCode::StoreUnavailable, message)
            .retry_after((until - self.now()).to_std().unwrap_or_default())
    }
}

/// The one line an operator reads: what failed, where, and the fix (the
/// store's, which knows its backend).
fn outage_message(key: &str, location: &str, fix: &str, e: &StoreError) -> String {
    format!(
        "{key}: not logging in: the store {location} cannot take a session ({e}); {fix}. \
         brokerd checks again by itself and logs in once it can; a still-valid session is served meanwhile"
    )
}
