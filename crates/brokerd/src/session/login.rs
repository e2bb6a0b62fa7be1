//! The slot's login task (single flight, persist before publish, backoff,
//! lock-out) and the other operations that talk to the broker or the store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use tracing::{error, info, warn};

use super::backoff;
use super::conflict::Trigger;
use super::error::{ErrorCode, RequestError};
use super::events::{Event, EventKind};
use super::live::Live;
use super::slot::{Invalidation, Phase, Slot, SlotState};
use crate::brokers::{BrokerClient, BrokerError, NewSession};
use crate::secret::Secret;
use crate::store::{AuditEntry, AuditEvent, StoredSession};
use tokio::sync::oneshot;

impl Slot {
    /// Starts the one login of this slot unless one is already in flight.
    /// Called with the state locked, so two callers cannot both start one.
    /// Interactive brokers cannot log in by themselves: they wait for a
    /// person instead (`auth_required`).
    /// Automatic logins are subject to the login budget (invariant 9).
    pub(super) fn begin_login(self: &Arc<Self>, st: &mut SlotState, reason: &'static str) {
        self.begin_login_as(st, reason, Trigger::Automatic);
    }

    /// [`Slot::begin_login`] for a given trigger: an operator's login is
    /// counted in the budget but never refused by it.
    pub(super) fn begin_login_as(
        self: &Arc<Self>,
        st: &mut SlotState,
        reason: &'static str,
        trigger: Trigger,
    ) {
        self.start_login(st, reason, trigger, false);
    }

    /// [`Slot::begin_login`] for a proactive refresh of a live session: a
    /// broker that can renew it (Angel One's `generateTokens`) does that
    /// instead of logging in. Same single flight, budget and publication.
    pub(super) fn begin_refresh(self: &Arc<Self>, st: &mut SlotState, reason: &'static str) {
        self.start_login(st, reason, Trigger::Automatic, true);
    }

    fn start_login(
        self: &Arc<Self>,
        st: &mut SlotState,
        reason: &'static str,
        trigger: Trigger,
        renew: bool,
    ) {
        if st.phase == Phase::LoggingIn {
            return;
        }
        if self.interactive() {
            return self.require_auth(st, reason);
        }
        if !self.spend_budget(st, trigger, reason) {
            return;
        }
        st.phase = Phase::LoggingIn;
        let slot = Arc::clone(self);
        let logouts = st.logouts;
        self.tasks
            .spawn(async move { slot.login_task(reason, logouts, None, renew).await });
    }

    /// Starts the exchange of a person's browser login; the receiver
    /// resolves when it has finished (published or failed).
    pub(super) fn begin_exchange(
        self: &Arc<Self>,
        st: &mut SlotState,
        submission: Secret,
    ) -> oneshot::Receiver<()> {
        // A person's submission is never refused by the budget, but counts.
        self.spend_budget(st, Trigger::Operator, "browser login submitted");
        st.phase = Phase::LoggingIn;
        let (tx, rx) = oneshot::channel();
        let slot = Arc::clone(self);
        let logouts = st.logouts;
        self.tasks.spawn(async move {
            slot.login_task("browser login submitted", logouts, Some(submission), false)
                .await;
            let _ = tx.send(());
        });
        rx
    }

    async fn login_task(
        self: Arc<Self>,
        reason: &'static str,
        logouts: u64,
        submission: Option<Secret>,
        renew: bool,
    ) {
        // Never spend a login (or a person's request token) whose session
        // cannot be stored: prove the save can land first.
        if self
            .store_gate(super::store_gate::GateBy::LoginTask)
            .await
            .is_err()
        {
            // No broker call happened: the budget gets its login back.
            self.state.lock().budget.refund();
            return self.notify();
        }
        if submission.is_some() {
            self.audit(None, AuditEvent::Submitted, "browser login submitted")
                .await;
        }
        let connector = self.settings.lock().connector.clone();
        let started = Instant::now();
        let next_generation = {
            let mut st = self.state.lock();
            // What this login sends, for a lock-out to remember: a reload
            // during the login must not make the fixed credentials the
            // rejected ones.
            st.attempt_fingerprint = connector.credentials_fingerprint();
            st.generation + 1
        };
        info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
              generation = next_generation, reason, "login starting");
        // Durable before the broker sees the login: the budget of a
        // restarted daemon counts it even if this process dies mid-login.
        self.audit(Some(next_generation), AuditEvent::LoginStarted, reason)
            .await;
        // A renewal needs the live session (its refresh token); one the
        // broker rejected meanwhile can only be replaced by a login.
        let current = renew
            .then(|| {
                let st = self.state.lock();
                st.current
                    .as_ref()
                    .filter(|_| !st.dead)
                    .map(|live| live.session.material.clone())
            })
            .flatten();
        // Invariant 2: `Connector::login` and `Connector::refresh` build a
        // brand-new client every time.
        let result = match &current {
            Some(material) => connector.refresh(material).await,
            None => connector.login(submission.as_ref()).await,
        };
        match result {
            Ok((session, client)) => match self.unusable_on_arrival(&session) {
                None => {
                    self.publish(next_generation, session, client, started, logouts)
                        .await
                }
                Some(err) => self.login_failed(err, next_generation, started).await,
            },
            Err(err) => self.login_failed(err, next_generation, started).await,
        }
        self.notify();
    }

    /// A session that arrives already expired, or with less left than the
    /// account's `min_valid`, is a failed login (transient), never
    /// published: serving it would hand out a dead token, and logging in
    /// again at once would storm the broker. (A person's browser login may
    /// end minutes after it by the daily cut-off, and nothing logs in
    /// again by itself: only an expired one is refused there.)
    fn unusable_on_arrival(&self, session: &NewSession) -> Option<BrokerError> {
        let min_valid = if self.interactive() {
            std::time::Duration::ZERO
        } else {
            self.settings.lock().policy.min_valid
        };
        let now = Utc::now();
        let left = session.meta.expires_at - now;
        if left > chrono::Duration::zero()
            && left >= chrono::Duration::from_std(min_valid).unwrap_or(chrono::Duration::MAX)
        {
            return None;
        }
        let how = if left <= chrono::Duration::zero() {
            format!("already expired {}s ago", -left.num_seconds())
        } else {
            format!(
                "only {}s left, less than min_valid ({}s)",
                left.num_seconds(),
                min_valid.as_secs()
            )
        };
        Some(BrokerError::Transient(format!(
            "the broker's session arrived {how} (it expires at {} by its `exp`); it is not used. Either this \
             host's clock is ahead of the broker's (check NTP: `timedatectl`) or the broker issued a session \
             that is already over",
            session.meta.expires_at.to_rfc3339()
        )))
    }

    /// A login that finished after the operator logged out: end it at the
    /// broker and forget it, as the logout asked.
    async fn discard_after_logout(&self, live: &Live) {
        info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
              generation = live.generation, "a login finished after a logout; ending it instead of publishing it");
        if let Err(e) = live.client.logout(&live.session.material).await {
            warn!(broker = %self.key.broker, account = %self.key.account, error = %e, "broker logout failed");
        }
    }

    /// Persist, then publish (invariant 4): no client can receive a session
    /// the store does not have.
    async fn publish(
        self: &Arc<Self>,
        mut generation: u64,
        session: NewSession,
        client: BrokerClient,
        started: Instant,
        logouts: u64,
    ) {
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut saved = self
            .store
            .save_session(&self.key, generation, &session)
            .await;
        if let Err(crate::store::StoreError::StaleGeneration { stored, .. }) = &saved {
            // The store knows a newer generation than we do (its row could
            // not be read at startup): continue from it rather than fail
            // every login from now on.
            let stored = *stored;
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, stored,
                  "the store holds a newer generation; continuing from it");
            {
                let mut st = self.state.lock();
                st.generation = st.generation.max(stored);
            }
            generation = stored + 1;
            saved = self
                .store
                .save_session(&self.key, generation, &session)
                .await;
        }
        if let Err(e) = saved {
            error!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
                   duration_ms, outcome = "store_failed", error = %e,
                   "login succeeded but the session could not be stored; it is not handed out");
            if self.session_not_stored(&e, generation).await {
                return;
            }
            let err = BrokerError::Transient(format!("the session could not be stored: {e}"));
            return self.login_failed(err, generation, started).await;
        }
        let (policy, policy_warning) = {
            let settings = self.settings.lock();
            (
                settings.policy.clone(),
                settings.connector.app_expiry_warning(),
            )
        };
        let fingerprint = session.material.token.fingerprint();
        let expires_at = session.meta.expires_at;
        let app_expiry = session.meta.app_expiry.clone();
        let client_serial = client.serial();
        let previous_expiry = self.state.lock().current.as_ref().map(|l| l.expires_at());
        let mut live = Live::new(generation, session, client, &policy);
        if self.interactive() {
            // Only a person can renew it: nothing to do before it ends,
            // and at its end no login, only the call for a person.
            live.refresh_at = live.expires_at();
        } else if !super::live::extends(previous_expiry, live.expires_at(), policy.refresh_margin) {
            // A fixed cut-off (e.g. 00:00 IST): the next login that can help
            // is after it.
            live.refresh_at_expiry();
            info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
                  "the new session ends when the old one did; no proactive refresh before it expires");
        }
        let live = Arc::new(live);
        let mut forget_rejection = false;
        let retired = {
            let mut st = self.state.lock();
            st.generation = generation;
            if st.logouts != logouts {
                // A logout arrived while the session was being stored: it
                // must not be published (checked under the same lock).
                st.phase = Phase::Idle;
                None
            } else {
                st.dead = false;
                st.phase = Phase::Idle;
                st.failures = 0;
                st.last_login_at = Some(Utc::now());
                st.last_error = None;
                st.want_session = true;
                st.auth_announced = false;
                forget_rejection = !std::mem::take(&mut st.rejected).is_empty();
                let retired = st.current.replace(live.clone());
                st.previous = retired
                    .as_ref()
                    .map(|l| (l.generation, l.session.meta.obtained_at));
                // "In a row": a session that outlived the conflict window
                // without being reported dead breaks the run.
                if let Some(old) = &retired
                    && old.generation > st.last_counted_death
                    && old.age(Utc::now()) >= policy.conflict_window
                {
                    st.early_deaths = 0;
                }
                // Deaths counted while this login ran: `conflict` starts
                // now, with the new session still served.
                self.settle_conflict(&mut st, &policy);
                Some(retired)
            }
        };
        if forget_rejection {
            self.forget_rejection().await;
        }
        let Some(retired) = retired else {
            let _ = self.store.forget_session(&self.key).await;
            return self.discard_after_logout(&live).await;
        };
        // The retired client (and any rejected token) is dropped here, never reused.
        drop(retired);
        if self.interactive() {
            // Any login retires the current link: the next wait gets a new one.
            *self.nonce.lock() = None;
        }
        self.counters.logins_ok.fetch_add(1, Ordering::Relaxed);
        info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
              duration_ms, outcome = "ok", token = %fingerprint, expires_at = %expires_at.to_rfc3339(),
              client = client_serial, app_expiry = app_expiry.as_deref().unwrap_or(""), "login ok");
        if let (Some(horizon), Some(date)) = (policy_warning, app_expiry.as_deref())
            && let Some(warning) = super::status::app_expiry_warning(date, horizon, Utc::now())
        {
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, "{warning}");
        }
        self.audit(
            Some(generation),
            AuditEvent::LoginOk,
            &format!("token {fingerprint}, expires {}", expires_at.to_rfc3339()),
        )
        .await;
        self.events.publish(Event {
            kind: EventKind::Renewed,
            key: self.key.clone(),
            generation,
            expires_at: Some(expires_at),
            login_url: None,
        });
    }

    async fn login_failed(self: &Arc<Self>, err: BrokerError, generation: u64, started: Instant) {
        let duration_ms = started.elapsed().as_millis() as u64;
        self.counters.logins_failed.fetch_add(1, Ordering::Relaxed);
        let policy = self.settings.lock().policy.clone();
        let message = err.message().to_string();
        let rejected = matches!(
            err,
            BrokerError::Rejected(_) | BrokerError::CodeRejected(_) | BrokerError::Config(_)
        );
        if self.interactive() && !rejected {
            // Nothing to retry by itself: the person logs in again. A session
            // that still works keeps being served.
            {
                let mut st = self.state.lock();
                let usable = st
                    .current
                    .as_ref()
                    .is_some_and(|l| !st.dead && !l.remaining(Utc::now()).is_zero());
                st.last_error = Some(("login_failed", message.clone()));
                // A logout during the exchange wants nothing any more.
                st.phase = Phase::Idle;
                if !usable && st.want_session {
                    self.require_auth(&mut st, "browser login could not be completed");
                }
            }
            self.notify();
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
                  duration_ms, outcome = "failed", error = %message, "browser login could not be completed");
            self.audit(None, AuditEvent::LoginFailed, &message).await;
        } else if err.is_retryable() || matches!(err, BrokerError::DeadSession(_)) {
            let (failures, delay) = {
                let mut st = self.state.lock();
                st.failures += 1;
                let delay = backoff::delay_with_jitter(
                    st.failures,
                    policy.backoff_initial,
                    policy.backoff_max,
                );
                st.phase = Phase::Backoff {
                    until: Instant::now() + delay,
                };
                st.last_error = Some(("login_failed", message.clone()));
                if matches!(err, BrokerError::DeadSession(_)) {
                    // The broker killed this login's session before it was
                    // even finished: the surest sign of another login.
                    let login_started = Utc::now()
                        - chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
                    self.count_death(&mut st, None, login_started, Utc::now(), &policy);
                }
                self.settle_conflict(&mut st, &policy);
                (st.failures, delay)
            };
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
                  duration_ms, outcome = "transient", error = %message, failures,
                  retry_in_ms = delay.as_millis() as u64, "login failed; backing off");
            self.audit(None, AuditEvent::LoginFailed, &message).await;
        } else {
            let rejection = {
                let mut st = self.state.lock();
                st.phase = Phase::LockedOut;
                st.conflict_pending = false;
                st.last_error = Some(("locked_out", message.clone()));
                // Only a rejected secret must never be sent again: a
                // rejected one-time code is not resent by a new login, and a
                // configuration error may be fixed outside brokerd. Set in
                // this lock, so no `login` sees the lock-out without it.
                matches!(err, BrokerError::Rejected(_)).then(|| {
                    let fingerprint = st.attempt_fingerprint.clone();
                    Self::reject(&mut st, fingerprint, &message)
                })
            };
            if let Some(rejection) = rejection {
                self.persist_rejection(&rejection).await;
            }
            error!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
                   duration_ms, outcome = "rejected", error = %message,
                   "login rejected; not retried automatically (brokers lock accounts after repeated wrong attempts): \
                    fix the configuration, then run `brokerctl login {} --account {}`", self.key.broker, self.key.account);
            self.audit(None, AuditEvent::LoginFailed, &message).await;
            self.audit(None, AuditEvent::LockedOut, &message).await;
            self.events.publish(Event {
                kind: EventKind::LockedOut,
                key: self.key.clone(),
                generation: generation - 1,
                expires_at: None,
                login_url: None,
            });
        }
    }

    /// Audit, metrics and logs for an `invalidate`.
    pub(super) async fn record_invalidation(
        &self,
        outcome: Invalidation,
        generation: u64,
        reason: Option<&str>,
    ) {
        let reason = reason.unwrap_or("client reported a rejection");
        // The reason is client-supplied: keep it short and single-line.
        let reason: String = reason
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let (k, b, a) = (&self.key.account, self.key.broker, self.key.api);
        match &outcome {
            Invalidation::Current(live) => {
                self.counters
                    .invalidations_current
                    .fetch_add(1, Ordering::Relaxed);
                let age_ms = live.age(Utc::now()).as_millis() as u64;
                warn!(broker = %b, account = %k, api = %a, generation, age_ms, token = %live.session.material.token.fingerprint(),
                      reason = %reason, "session rejected by the broker");
                self.audit(Some(generation), AuditEvent::InvalidatedCurrent, &reason)
                    .await;
            }
            Invalidation::Stale => {
                self.counters
                    .invalidations_stale
                    .fetch_add(1, Ordering::Relaxed);
                self.audit(Some(generation), AuditEvent::InvalidatedStale, &reason)
                    .await;
            }
            Invalidation::AlreadyDead => {}
        }
    }

    /// Ends the session at the broker (best effort) and forgets it.
    pub async fn logout(self: &Arc<Self>) -> Result<(), RequestError> {
        let (old, dead) = {
            let mut st = self.state.lock();
            st.want_session = false;
            st.logouts += 1;
            st.conflict_pending = false;
            // A logout also ends pending retries; a lock-out stays.
            if matches!(
                st.phase,
                Phase::Backoff { .. } | Phase::Conflict { .. } | Phase::AuthRequired
            ) {
                st.phase = Phase::Idle;
                st.failures = 0;
                st.early_deaths = 0;
            }
            let dead = st.dead;
            st.dead = false;
            st.auth_announced = false;
            (st.current.take(), dead)
        };
        self.notify();
        let generation = old.as_ref().map(|l| l.generation);
        if let Some(live) = old.as_ref().filter(|_| !dead) {
            match live.client.logout(&live.session.material).await {
                Ok(()) => {
                    info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                                generation = live.generation, "logged out at the broker")
                }
                Err(e) => {
                    warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                                generation = live.generation, error = %e, "broker logout failed; session forgotten anyway")
                }
            }
        }
        self.store.forget_session(&self.key).await.map_err(|e| {
            RequestError::new(
                ErrorCode::Unavailable,
                format!("{}: the stored session could not be removed: {e}", self.key),
            )
        })?;
        // Only a session that existed is logged out: no event for an empty slot.
        if let Some(generation) = generation {
            self.audit(Some(generation), AuditEvent::Logout, "logout requested")
                .await;
            self.events.publish(Event {
                kind: EventKind::LoggedOut,
                key: self.key.clone(),
                generation,
                expires_at: None,
                login_url: None,
            });
        }
        Ok(())
    }

    /// The broker's startup checks (Kotak: clock skew against its `Date`).
    pub async fn startup_check(&self) {
        let connector = self.settings.lock().connector.clone();
        connector.startup_check().await;
    }

    /// Takes over a stored session after a restart. A still-valid session is
    /// served without a login (after a cheap check at the broker when
    /// `validate`); an unreadable one is reported and replaced by a login.
    pub async fn rehydrate(self: &Arc<Self>, stored: Option<StoredSession>, validate: bool) {
        let Some(stored) = stored else { return };
        let connector = self.settings.lock().connector.clone();
        let policy = self.settings.lock().policy.clone();
        let key = &self.key;
        self.state.lock().generation = stored.generation;
        let session = match stored.session {
            None => return,
            Some(Err(e)) => {
                error!(broker = %key.broker, account = %key.account, api = %key.api, error = %e,
                       "stored session unreadable; it will be replaced by a fresh login");
                self.state.lock().last_error = Some(("store", e.to_string()));
                return;
            }
            Some(Ok(s)) => s,
        };
        // Even an expired or rejected session says when its login happened.
        connector.note_previous_login(session.meta.obtained_at);
        if session.meta.expires_at
            <= Utc::now() + chrono::Duration::from_std(policy.min_valid).unwrap_or_default()
        {
            info!(broker = %key.broker, account = %key.account, api = %key.api, generation = stored.generation,
                  "stored session has expired; not reused");
            return;
        }
        let client = match connector.rehydrate(&session.material) {
            Ok(c) => c,
            Err(e) => {
                return warn!(broker = %key.broker, account = %key.account, error = %e, "cannot rebuild a client");
            }
        };
        if validate && let Err(e) = client.validate(&session.material).await {
            if matches!(e, BrokerError::DeadSession(_)) {
                info!(broker = %key.broker, account = %key.account, api = %key.api, generation = stored.generation,
                      error = %e, "stored session is no longer accepted by the broker; not reused");
                // Found dead by the daemon itself: it counts like a report.
                let mut st = self.state.lock();
                let obtained = session.meta.obtained_at;
                self.count_death(
                    &mut st,
                    Some(stored.generation),
                    obtained,
                    Utc::now(),
                    &policy,
                );
                return;
            }
            // Keep the last good session when the broker cannot answer.
            warn!(broker = %key.broker, account = %key.account, api = %key.api, error = %e,
                  "could not check the stored session with the broker; serving it");
        }
        let fingerprint = session.material.token.fingerprint();
        let mut live = Live::new(stored.generation, session, client, &policy);
        live.restored = true;
        if self.interactive() {
            live.refresh_at = live.expires_at();
        }
        let live = Arc::new(live);
        info!(broker = %key.broker, account = %key.account, api = %key.api, generation = stored.generation,
              token = %fingerprint, expires_at = %live.expires_at().to_rfc3339(), "stored session restored without a login");
        {
            let mut st = self.state.lock();
            st.last_login_at = Some(live.session.meta.obtained_at);
            st.current = Some(live);
            st.want_session = true;
        }
        self.notify();
    }

    pub(super) async fn audit(&self, generation: Option<u64>, event: AuditEvent, detail: &str) {
        let entry = AuditEntry {
            key: &self.key,
            generation,
            event,
            detail,
        };
        if let Err(e) = self.store.audit(entry).await {
            warn!(broker = %self.key.broker, account = %self.key.account, error = %e, "audit write failed");
        }
    }
}
