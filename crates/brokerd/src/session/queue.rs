//! A slot's turn at its broker host (`pacing`): every login and every
//! validation of a stored session waits in the host's queue, and `status`
//! and a timed-out `token` say where the slot's login stands.

use std::time::Duration;

use super::error::{ErrorCode, RequestError};
use super::pacing::{Admission, Place};
use super::slot::Slot;

/// Clears the slot's place when its wait ends, however it ends (admitted,
/// or the task stopped by a shutdown).
struct Waiting<'a>(&'a Slot);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        *self.0.queued.lock() = None;
    }
}

impl Slot {
    /// Waits for this slot's turn to call its broker host. Hold the
    /// admission until the broker has answered. `None` when the daemon
    /// stops (or a reload removes the slot) first: nothing was sent.
    pub(super) async fn take_turn(&self) -> Option<Admission> {
        let host = {
            let settings = self.settings.lock();
            self.pacer.host_of(&settings.connector)
        };
        let ticket = host.ticket();
        let place = ticket.place();
        if place.ahead > 0 {
            tracing::info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                           host = %ticket.host(), ahead = place.ahead,
                           estimate_secs = place.estimate.as_secs(), "queued for the broker host");
        }
        *self.queued.lock() = Some(ticket.spot());
        let _waiting = Waiting(self);
        tokio::select! {
            admission = ticket.admit() => Some(admission),
            _ = self.stopping.cancelled() => None,
            _ = self.retired.cancelled() => None,
        }
    }

    /// Where this slot's login waits, while it waits: its place and host.
    pub fn queue_place(&self) -> Option<(Place, String)> {
        let spot = self.queued.lock().clone()?;
        Some((spot.place(), spot.host().to_string()))
    }

    /// The `timeout` answer of a `token` whose wait ran out while the login
    /// runs, or waits for its turn (then with its place and estimate).
    pub(super) fn still_logging_in(&self, wait: Duration) -> RequestError {
        match self.queue_place() {
            Some((place, host)) => RequestError::new(
                ErrorCode::Timeout,
                format!(
                    "no session for {} within {}s; its login is queued for {host} behind {} other broker calls \
                     (about {}s; brokerd paces logins per broker host)",
                    self.key,
                    wait.as_secs(),
                    place.ahead,
                    place.estimate.as_secs().max(1)
                ),
            )
            .retry_after(place.estimate),
            None => RequestError::new(
                ErrorCode::Timeout,
                format!(
                    "no session for {} within {}s; a login is still in progress",
                    self.key,
                    wait.as_secs()
                ),
            )
            .retry_after(Duration::from_secs(1)),
        }
    }
}
