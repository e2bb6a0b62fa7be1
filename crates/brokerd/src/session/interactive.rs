//! What only the interactive brokers (Zerodha, Breeze) need: a person's
//! browser login. The slot waits in `auth_required`, hands out the login URL
//! with a random `state`, and turns a submitted `request_token` /
//! `API_Session` into a session through the same single-flight,
//! persist-before-publish login task as every other broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::error::{ErrorCode, RequestError};
use super::events::{Event, EventKind};
use super::live::Live;
use super::machine::{Answer, Input};
use super::slot::Slot;
use crate::brokers::BrokerError;
use crate::secret::Secret;
use crate::store::AuditEvent;

/// A login link stays good this long unless a login completes with it first.
/// Long enough for a reminder sent at dawn to be clicked before the open.
const NONCE_TTL: Duration = Duration::from_secs(12 * 3600);

/// The last recheck: generation, when it finished, and the broker's verdict.
/// The `Instant` only orders a recheck against the reports that wait for it
/// (did it finish after this report arrived?), a question of sequence on
/// this host rather than of session time, so it stays on the monotonic
/// clock: a test's manual clock standing still would make every later
/// report look answered.
pub(super) type RecheckVerdict = Option<(u64, Instant, Result<(), BrokerError>)>;

/// The `state` of the current login link.
#[derive(Debug)]
pub(super) struct Nonce {
    value: String,
    /// When the link was made, on the daemon's clock (its 12 h life is
    /// session time: a test moves through it).
    minted: DateTime<Utc>,
}

impl Nonce {
    fn fresh(now: DateTime<Utc>) -> Self {
        Self {
            value: hex::encode(rand::random::<[u8; 16]>()),
            minted: now,
        }
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        (now - self.minted).to_std().unwrap_or_default() >= NONCE_TTL
    }
}

/// Whether a submitted request token / session key can be one at all:
/// not empty, not huge, no control characters (it goes into a form field
/// or JSON body, and into no log).
pub fn plausible_submission(value: &str) -> bool {
    !value.is_empty() && value.len() <= 512 && !value.contains(char::is_control)
}

/// Whether a submitted `state` is the current one. The `state` is what ties
/// a browser's callback to the link brokerd handed out, so an attacker who
/// could time this comparison could guess it a byte at a time: the bytes are
/// compared in constant time by `subtle`, a reviewed library whose
/// operations are written so the optimizer cannot turn them back into an
/// early exit (a hand-written fold carries no such guarantee). Only the
/// length may show, and it is public: every link's `state` has the same one.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Slot {
    /// Whether this slot needs a person's browser login (Zerodha, Breeze).
    pub fn interactive(&self) -> bool {
        self.key.broker.needs_a_person()
    }

    /// Where a person logs in (interactive brokers only). Zerodha's URL
    /// carries the current `state`; the same link is handed out until a
    /// login completes with it or it grows old.
    pub fn login_url(&self) -> Option<String> {
        // A follower's link could never be checked: its state would be
        // known here only, and the leader exchanges browser logins.
        if !self.interactive() || self.follows() {
            return None;
        }
        let now = self.now();
        let state = {
            let mut nonce = self.nonce.lock();
            if nonce.as_ref().is_none_or(|n| n.expired(now)) {
                *nonce = Some(Nonce::fresh(now));
            }
            nonce.as_ref().map(|n| n.value.clone()).unwrap_or_default()
        };
        self.settings.lock().connector.login_url(&state)
    }

    /// Takes the current state if `state` matches it: one link, one login.
    fn take_nonce(&self, state: &str) -> Option<Nonce> {
        let now = self.now();
        let mut nonce = self.nonce.lock();
        let matches = nonce
            .as_ref()
            .is_some_and(|n| !n.expired(now) && same(&n.value, state));
        if matches { nonce.take() } else { None }
    }

    /// Gives a state back after its login failed, so the link still works
    /// for the next try (unless a newer link was made meanwhile).
    fn restore_nonce(&self, taken: Nonce) {
        let mut nonce = self.nonce.lock();
        if nonce.is_none() {
            *nonce = Some(taken);
        }
    }

    /// Retires the current login link (`Effect::RetireLink`): the next
    /// wait gets a new one. The nonce is never taken around the state lock.
    pub(super) fn retire_link(&self) {
        *self.nonce.lock() = None;
    }

    /// The `auth_required` answer: what to do, and the link.
    pub(super) fn auth_required_error(&self) -> RequestError {
        let last = self
            .state
            .lock()
            .last_error()
            .map(|(_, m)| format!(" (last attempt: {m})"))
            .unwrap_or_default();
        let mut err = RequestError::new(
            ErrorCode::AuthRequired,
            format!(
                "{}: a person must log in in a browser: open login_url (or run `brokerctl login-url {} --account {}`); \
                 the callback listener or `brokerctl submit` completes the login{last}",
                self.key, self.key.broker, self.key.account
            ),
        );
        err.login_url = self.login_url();
        err
    }

    /// Publishes an announcement (`auth_required`, `expiring`) with the
    /// login URL, so an alert can carry the link.
    pub(super) async fn announce(&self, kind: EventKind) {
        let login_url = self.login_url();
        let (generation, expires_at) = self.state.lock().announced();
        match kind {
            EventKind::Expiring => {
                warn!(broker = %self.key.broker, account = %self.key.account, generation,
                      expires_at = %expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                      "session ends soon and only a browser login can renew it")
            }
            EventKind::AuthRequired
            | EventKind::Renewed
            | EventKind::LockedOut
            | EventKind::Conflict
            | EventKind::LoggedOut
            | EventKind::StoreUnavailable => {
                warn!(broker = %self.key.broker, account = %self.key.account, generation,
                      "a browser login is needed")
            }
        }
        if kind == EventKind::AuthRequired {
            self.audit(
                Some(generation),
                AuditEvent::AuthRequired,
                "waiting for a browser login",
            )
            .await;
        }
        self.events.publish(Event {
            kind,
            key: self.key.clone(),
            generation,
            expires_at,
            login_url,
        });
    }

    /// A person's browser login: Zerodha's `request_token` or Breeze's
    /// `API_Session`. `state`, when given, must be the current login link's
    /// (the callback listener always gives it for Zerodha). Waits up to
    /// `wait` for a submission already being exchanged, then exchanges this
    /// one and answers with its outcome.
    pub async fn submit(
        self: &Arc<Self>,
        submission: Secret,
        state: Option<&str>,
        wait: Duration,
    ) -> Result<Arc<Live>, RequestError> {
        if !self.interactive() {
            return Err(RequestError::new(
                ErrorCode::BadRequest,
                format!(
                    "{} logs in by itself; submit is for zerodha and breeze",
                    self.key.broker
                ),
            ));
        }
        // Several daemons on one store: only the leader exchanges a browser
        // login (an exchange is a login). A follower hands it to the leader
        // through the database, unused (the leader checks the link's state
        // once), and answers with the session the leader publishes.
        if self.follows() {
            return self.hand_to_leader(submission, state, wait).await;
        }
        // Before anything is used up (the link's state, the request token at
        // the broker): a session that cannot be stored is not worth either.
        self.store_gate(super::machine::GateBy::Submission).await?;
        // How long the caller is willing to wait: its patience runs in real
        // time (tokio's), whatever the daemon's clock says.
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changed.subscribe();
        let (effects, before, nonce) = loop {
            changes.borrow_and_update();
            {
                let mut st = self.state.lock();
                if !st.logging_in() {
                    let nonce = match state {
                        None => None,
                        Some(s) => Some(self.take_nonce(s).ok_or_else(|| {
                            RequestError::new(
                                ErrorCode::BadRequest,
                                format!(
                                    "{}: this login link's state is unknown, used or expired; if you just logged in, \
                                     the account may already be active (`brokerctl status`); otherwise get a fresh \
                                     link with `brokerctl login-url {} --account {}`",
                                    self.key, self.key.broker, self.key.account
                                ),
                            )
                        })?),
                    };
                    // Under the same lock as the check: no other login can
                    // start in between.
                    let effects = st.handle(self.now(), Input::Submit);
                    let Answer::Generation(before) = effects.answer else {
                        unreachable!("a submission is answered with the generation it must beat")
                    };
                    break (effects.list, before, nonce);
                }
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(RequestError::new(
                        ErrorCode::Unavailable,
                        "the daemon is shutting down",
                    ));
                }
                Err(_) => {
                    return Err(RequestError::new(
                        ErrorCode::Timeout,
                        format!("{}: another login is still being completed", self.key),
                    )
                    .retry_after(Duration::from_secs(1)));
                }
            }
        };
        self.notify();
        let done = self.apply(effects, Some(submission)).await;
        // The exchange is bounded by the broker call's own timeout.
        if let Some(done) = done {
            let _ = done.await;
        }
        let outcome = {
            let st = self.state.lock();
            match st.live() {
                Some(live) if live.generation > before => Ok(live.clone()),
                _ => Err(st.submission_error(self.now())),
            }
        };
        if outcome.is_err()
            && let Some(n) = nonce
        {
            self.restore_nonce(n);
        }
        outcome
    }

    /// Breeze: the checksum headers of one request body, computed here so
    /// the app secret never leaves the daemon.
    pub async fn sign(
        self: &Arc<Self>,
        body: &str,
        min_valid: Duration,
    ) -> Result<(Arc<Live>, Vec<(&'static str, String)>), RequestError> {
        let live = self.token(min_valid, Duration::ZERO).await?;
        let headers = self
            .settings
            .lock()
            .connector
            .sign(&live.session.material, body, self.now())
            .map_err(|m| RequestError::new(ErrorCode::BadRequest, format!("{}: {m}", self.key)))?;
        Ok((live, headers))
    }

    /// The broker's verdict on a live session and the app secret. One check
    /// at a time per slot; reports that arrived while a check ran take its
    /// verdict, so fifty clients reporting the same failure cost two broker
    /// calls, not a hundred (Breeze allows 100 a minute). A report after a
    /// check finished asks again: the broker's answer may have changed.
    async fn ask_broker(&self, live: &Live) -> Result<(), BrokerError> {
        let asked = Instant::now();
        let mut gate = self.recheck.lock().await;
        if let Some((generation, at, verdict)) = gate.as_ref()
            && *generation == live.generation
            && *at >= asked
        {
            return verdict.clone();
        }
        let material = &live.session.material;
        // The secret check uses the settings of now (a reload may have
        // brought the regenerated secret that `sign` already uses).
        let checker = self.settings.lock().connector.rehydrate(material);
        let verdict = match live.client.validate(material).await {
            Ok(()) => match checker {
                Ok(c) => c.check_secret(material).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        *gate = Some((live.generation, Instant::now(), verdict.clone()));
        verdict
    }

    /// A report the broker module cannot judge from the words alone (Breeze
    /// `Invalid Checksum`: a dead session or a wrong secret). Asks the
    /// broker. `None`: the session is dead, carry on as for any dead one.
    pub(super) async fn recheck(
        self: &Arc<Self>,
        generation: u64,
        message: &str,
        min_valid: Duration,
        wait: Duration,
    ) -> Option<Result<Arc<Live>, RequestError>> {
        let live = self
            .state
            .lock()
            .live()
            .filter(|l| l.generation == generation)
            .cloned()?;
        let verdict = self.ask_broker(&live).await;
        let (b, a) = (self.key.broker, &self.key.account);
        match verdict {
            Ok(()) => {
                info!(broker = %b, account = %a, generation, "reported rejection rechecked: session and secret are fine");
                Some(Err(RequestError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "{}: the broker answered {message:?}, but the session is alive and the secret key works \
                         (customerdetails and a signed funds call succeed): the failed request's checksum did not \
                         match the bytes sent; sign the exact body you send (op \"sign\")",
                        self.key
                    ),
                )))
            }
            Err(BrokerError::DeadSession(m)) => {
                info!(broker = %b, account = %a, generation, error = %m, "reported rejection rechecked: the session is dead");
                None
            }
            Err(
                e @ (BrokerError::Rejected(_)
                | BrokerError::CodeRejected(_)
                | BrokerError::Config(_)),
            ) => {
                let m = e.message().to_string();
                let fingerprint = self.settings.lock().connector.credentials_fingerprint();
                let effects = self.feed(Input::SecretRefused {
                    generation,
                    error: e,
                    fingerprint,
                });
                if matches!(effects.answer, Answer::Current(false)) {
                    // A newer session arrived meanwhile: this verdict is stale.
                    return Some(self.token(min_valid, wait).await);
                }
                self.notify();
                self.apply(effects.list, None).await;
                Some(Err(RequestError::new(
                    ErrorCode::LockedOut,
                    format!("{}: {m}", self.key),
                )))
            }
            Err(
                e @ (BrokerError::Transient(_)
                | BrokerError::RateLimited(_)
                | BrokerError::BadSubmission(_)),
            ) => {
                warn!(broker = %b, account = %a, generation, error = %e,
                      "could not recheck the reported rejection; keeping the session");
                Some(self.token(min_valid, wait).await)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn same_state_matches_only_the_identical_string() {
        assert!(same("3f9a0c", "3f9a0c"));
        assert!(same("", ""));
        // A difference anywhere, first byte or last, is a mismatch.
        assert!(!same("3f9a0c", "4f9a0c"));
        assert!(!same("3f9a0c", "3f9a0d"));
        // A prefix or an extension of the state is not the state.
        assert!(!same("3f9a0c", "3f9a0"));
        assert!(!same("3f9a0c", "3f9a0c0"));
        assert!(!same("3f9a0c", ""));
    }
}
