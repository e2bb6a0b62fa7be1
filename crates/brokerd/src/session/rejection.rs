//! Rejected credentials are never sent again (issue 9, item 3). When the
//! broker rejects a session's credentials the slot keeps a fingerprint of
//! them (never the values), in memory and in the store, so that neither an
//! operator's `login`, nor a reload, nor a restart sends the same ones
//! again: only credentials never rejected (re-read from the config first)
//! lift the lock-out. Every rejected set is kept until a login succeeds, so
//! going back to an earlier wrong secret is caught too.

use std::sync::Arc;

use chrono::Utc;
use tracing::{info, warn};

use super::error::{ErrorCode, RequestError};
use super::slot::{Phase, Slot, SlotState};
use crate::store::Rejection;

impl Slot {
    /// Remembers, under the state lock, that the broker rejected the
    /// credentials with `fingerprint`; [`Slot::persist_rejection`] then
    /// stores it, so a restart does not send them again either.
    pub(super) fn reject(st: &mut SlotState, fingerprint: String, message: &str) -> Rejection {
        let rejection = Rejection {
            fingerprint,
            at: Utc::now(),
            message: message.to_string(),
        };
        st.rejected
            .retain(|(fingerprint, _)| *fingerprint != rejection.fingerprint);
        st.rejected
            .push((rejection.fingerprint.clone(), rejection.at));
        rejection
    }

    /// Stores a rejection made by [`Slot::reject`].
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
    /// of being sent again by the first login. Every rejected set is
    /// remembered either way, so a later reload back to one is caught.
    pub async fn restore_rejection(self: &Arc<Self>) {
        let rejections = match self.store.rejections(&self.key).await {
            Ok(r) => r,
            Err(e) => {
                return warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                             error = %e, "could not read the stored rejections");
            }
        };
        if rejections.is_empty() {
            return;
        }
        let fingerprint = self.settings.lock().connector.credentials_fingerprint();
        self.state.lock().rejected = rejections
            .iter()
            .map(|r| (r.fingerprint.clone(), r.at))
            .collect();
        let Some(rejection) = rejections
            .into_iter()
            .find(|r| r.fingerprint == fingerprint)
        else {
            return info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                         "the credentials rejected before the restart have changed since; trying them");
        };
        warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
              rejected_at = %rejection.at.to_rfc3339(),
              "these credentials were rejected before the restart; not sending them again (locked_out)");
        {
            let mut st = self.state.lock();
            st.phase = Phase::LockedOut;
            st.last_error = Some((
                "locked_out",
                format!(
                    "{} (rejected at {}, before a restart)",
                    rejection.message,
                    rejection.at.to_rfc3339()
                ),
            ));
        }
        self.notify();
    }

    /// A reload changed what the broker checks at login. New credentials
    /// lift `locked_out` and `conflict` (the operator has acted); a change
    /// back to the credentials the broker last rejected (say, a reverted
    /// edit) locks the slot out again instead of letting the next automatic
    /// login send them. A login already running finishes with what it read.
    pub(super) fn apply_changed_credentials(&self, st: &mut SlotState, fingerprint: &str) {
        if let Some(refusal) = self.same_as_rejected(st, fingerprint) {
            if st.phase != Phase::LoggingIn {
                warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                      "the reloaded credentials are the ones the broker rejected; not sending them (locked_out)");
                st.phase = Phase::LockedOut;
                st.last_error = Some(("locked_out", refusal.message));
            }
            return;
        }
        if matches!(st.phase, Phase::LockedOut | Phase::Conflict { .. }) {
            st.phase = Phase::Idle;
            st.early_deaths = 0;
            st.conflict_pending = false;
            st.last_error = None;
        }
    }

    /// The refusal of a `login` with the credentials the broker rejected,
    /// if they are still the configured ones (compared by fingerprint).
    pub(super) fn same_as_rejected(
        &self,
        st: &SlotState,
        fingerprint: &str,
    ) -> Option<RequestError> {
        let (_, at) = st.rejected.iter().find(|(r, _)| r == fingerprint)?;
        Some(RequestError::new(
            ErrorCode::LockedOut,
            format!(
                "{}: the same credentials were rejected at {}; brokerd does not send them again (brokers \
                 lock accounts after a few wrong attempts). Fix the secret the error named (the file, \
                 credential or variable the config refers to), then run `brokerctl login {} --account {}` \
                 again",
                self.key,
                at.to_rfc3339(),
                self.key.broker,
                self.key.account
            ),
        ))
    }
}
