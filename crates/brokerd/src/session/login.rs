//! The slot's login task (persist, then publish), logout, rehydration and
//! audit: the IO around the machine's login decisions (`machine/login.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::{error, info, warn};

use super::error::{ErrorCode, RequestError};
use super::events::{Event, EventKind};
use super::live::Live;
use super::machine::{Answer, GateBy, Input, Succeeded};
use super::slot::{Outcome, Slot};
use crate::brokers::{BrokerClient, BrokerError, NewSession};
use crate::secret::Secret;
use crate::store::{AuditEntry, AuditEvent, StoredSession};

impl Slot {
    /// The login the machine started (`Effect::StartLogin`), with a
    /// person's submission for an exchange.
    pub(super) async fn login_task(
        self: Arc<Self>,
        reason: &'static str,
        logouts: u64,
        submission: Option<Secret>,
        renew: bool,
    ) {
        // Invariant 19: in the broker host's queue first, so that many
        // accounts logging in at once reach the broker at its pace. The
        // store is checked after the wait, which may be long.
        let Some(turn) = self.take_turn().await else {
            // Stopping: no broker call happened, the budget gets it back.
            let _ = self.feed(Input::LoginNotStarted);
            return self.notify();
        };
        // Never spend a login (or a person's request token) whose session
        // cannot be stored: prove the save can land first.
        if self.store_gate(GateBy::LoginTask).await.is_err() {
            // No broker call happened: the budget gets its login back.
            let _ = self.feed(Input::LoginNotStarted);
            return self.notify();
        }
        if submission.is_some() {
            self.audit(None, AuditEvent::Submitted, "browser login submitted")
                .await;
        }
        let connector = self.settings.lock().connector.clone();
        // How long the broker call took, for the log: a real-time
        // measurement of I/O. Every decision uses `started_at`, on the
        // daemon's clock.
        let started = Instant::now();
        let started_at = self.now();
        let next_generation = match self
            .feed(Input::LoginBegins {
                fingerprint: connector.credentials_fingerprint(),
            })
            .answer
        {
            Answer::Generation(g) => g,
            other => unreachable!("a login's start is answered with its generation, not {other:?}"),
        };
        info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
              generation = next_generation, reason, "login starting");
        // Durable before the broker sees the login: the budget of a
        // restarted daemon counts it even if this process dies mid-login.
        self.audit(Some(next_generation), AuditEvent::LoginStarted, reason)
            .await;
        // A renewal needs the live session (its refresh token); one the
        // broker rejected, or that expired, meanwhile can only be replaced
        // by a login.
        let current = if renew {
            let now = self.now();
            self.state
                .lock()
                .valid(now)
                .map(|live| live.session.material.clone())
        } else {
            None
        };
        // Several daemons on one store: only the holder of the lock may
        // log in, and the lock is proven now, after every other database
        // write of this login and right before the broker call, not when
        // the login was decided (the connection may have died in the queue
        // or during those writes).
        if let Some(ha) = &self.ha
            && !ha.still_leads(&self.key).await
        {
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                  "no longer provably the leader; the login is not made");
            let _ = self.feed(Input::NotLeader);
            return self.notify();
        }
        // Invariant 2: `Connector::login` and `Connector::refresh` build a
        // brand-new client every time.
        let result = match &current {
            Some(material) => connector.refresh(material).await,
            None => connector.login(submission.as_ref()).await,
        };
        if let Err(BrokerError::RateLimited(_)) = &result {
            turn.rate_limited();
        }
        // The broker has answered: the next queued call may start.
        drop(turn);
        match result {
            Ok((mut session, client)) => {
                // When the daemon obtained it, by the daemon's clock. The
                // broker module read the same clock when the answer came;
                // stamping it again here makes the arrival the one moment
                // every decision about this session (refresh floors, early
                // deaths) counts from, whatever a broker module does.
                session.meta.obtained_at = self.now();
                let problem = self
                    .state
                    .lock()
                    .arrival_problem(self.now(), session.meta.expires_at);
                match problem {
                    None => {
                        self.publish(
                            next_generation,
                            session,
                            client,
                            started,
                            started_at,
                            logouts,
                        )
                        .await
                    }
                    Some(err) => self.login_failed(err, next_generation, started_at).await,
                }
            }
            Err(err) => self.login_failed(err, next_generation, started_at).await,
        }
        self.notify();
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
        started_at: chrono::DateTime<chrono::Utc>,
        logouts: u64,
    ) {
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut saved = self
            .store
            .save_session(&self.key, generation, &session)
            .await;
        // Several daemons on one store: a newer (or equal) stored generation
        // is another leader's session, and this login lost the race (this
        // daemon was cut off while it ran). It is not stored or published.
        if let (Some(_), Err(crate::store::StoreError::StaleGeneration { stored, .. })) =
            (&self.ha, &saved)
        {
            let stored = *stored;
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, stored, generation,
                  "another daemon saved this session's generation first; this login is discarded");
            let _ = self.feed(Input::StoredGeneration(stored));
            let err = BrokerError::Transient(format!(
                "another daemon saved generation {stored} first (this daemon no longer leads)"
            ));
            return self.login_failed(err, generation, started_at).await;
        }
        if let Err(crate::store::StoreError::StaleGeneration { stored, .. }) = &saved {
            // The store knows a newer generation than we do (its row could
            // not be read at startup): continue from it rather than fail
            // every login from now on.
            let stored = *stored;
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, stored,
                  "the store holds a newer generation; continuing from it");
            let _ = self.feed(Input::StoredGeneration(stored));
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
            return self.login_failed(err, generation, started_at).await;
        }
        let policy_warning = self.settings.lock().connector.app_expiry_warning();
        let fingerprint = session.material.token.fingerprint();
        let expires_at = session.meta.expires_at;
        let app_expiry = session.meta.app_expiry.clone();
        let client_serial = client.serial();
        let live = Arc::new(Live::new(generation, session, client));
        let effects = self.feed(Input::LoginSucceeded(Succeeded {
            generation,
            session: live.clone(),
            logouts,
            jitter: rand::random::<f64>(),
            audit: format!("token {fingerprint}, expires {}", expires_at.to_rfc3339()),
        }));
        if matches!(effects.answer, Answer::Published(false)) {
            let _ = self.store.forget_session(&self.key).await;
            return self.discard_after_logout(&live).await;
        }
        self.counters.logins_ok.fetch_add(1, Ordering::Relaxed);
        info!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, generation,
              duration_ms, outcome = "ok", token = %fingerprint, expires_at = %expires_at.to_rfc3339(),
              client = client_serial, app_expiry = app_expiry.as_deref().unwrap_or(""), "login ok");
        if let (Some(horizon), Some(date)) = (policy_warning, app_expiry.as_deref())
            && let Some(warning) = super::status::app_expiry_warning(date, horizon, self.now())
        {
            warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api, "{warning}");
        }
        // The retired session (and its client) was dropped by the machine,
        // never reused; forgetting rejections, audit and `renewed` follow.
        self.apply(effects.list, None).await;
    }

    /// A failed login: the machine decides (backoff, a person, lock-out).
    async fn login_failed(
        self: &Arc<Self>,
        err: BrokerError,
        generation: u64,
        started_at: chrono::DateTime<chrono::Utc>,
    ) {
        self.counters.logins_failed.fetch_add(1, Ordering::Relaxed);
        let effects = self.feed(Input::LoginFailed {
            error: err,
            generation,
            started_at,
            jitter: rand::random::<f64>(),
        });
        self.notify();
        self.apply(effects.list, None).await;
    }

    /// Audit, metrics and logs for an `invalidate`.
    pub(super) async fn record_invalidation(
        &self,
        outcome: Outcome,
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
            super::machine::Invalidation::Current(live) => {
                self.counters
                    .invalidations_current
                    .fetch_add(1, Ordering::Relaxed);
                let age_ms = live.age(self.now()).as_millis() as u64;
                warn!(broker = %b, account = %k, api = %a, generation, age_ms, token = %live.session.material.token.fingerprint(),
                      reason = %reason, "session rejected by the broker");
                self.audit(Some(generation), AuditEvent::InvalidatedCurrent, &reason)
                    .await;
            }
            super::machine::Invalidation::Stale => {
                self.counters
                    .invalidations_stale
                    .fetch_add(1, Ordering::Relaxed);
                self.audit(Some(generation), AuditEvent::InvalidatedStale, &reason)
                    .await;
            }
            super::machine::Invalidation::AlreadyDead => {}
        }
    }

    /// Ends the session at the broker (best effort) and forgets it.
    pub async fn logout(self: &Arc<Self>) -> Result<(), RequestError> {
        let (old, dead) = match self.feed(Input::Logout).answer {
            Answer::LoggedOut { old, dead } => (old, dead),
            other => unreachable!("a logout is answered with the session it took, not {other:?}"),
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

    /// Takes over a stored session after a restart, without a broker call
    /// (invariant 19): a session still valid by its expiry is served at
    /// once and checked at the broker afterwards (`check_restored`); an
    /// unreadable one is reported and replaced by a login. Returns the
    /// generation restored, if one was.
    pub fn rehydrate(self: &Arc<Self>, stored: Option<StoredSession>) -> Option<u64> {
        let stored = stored?;
        let connector = self.settings.lock().connector.clone();
        let policy = self.settings.lock().policy.clone();
        let key = &self.key;
        let _ = self.feed(Input::StoredRow {
            generation: stored.generation,
        });
        let session = match stored.session {
            None => return None,
            Some(Err(e)) => {
                error!(broker = %key.broker, account = %key.account, api = %key.api, error = %e,
                       "stored session unreadable; it will be replaced by a fresh login");
                let _ = self.feed(Input::StoredUnreadable {
                    message: e.to_string(),
                });
                return None;
            }
            Some(Ok(s)) => s,
        };
        // Even an expired or rejected session says when its login happened.
        connector.note_previous_login(session.meta.obtained_at);
        if session.meta.expires_at
            <= self.now() + chrono::Duration::from_std(policy.min_valid).unwrap_or_default()
        {
            info!(broker = %key.broker, account = %key.account, api = %key.api, generation = stored.generation,
                  "stored session has expired; not reused");
            return None;
        }
        let client = match connector.rehydrate(&session.material) {
            Ok(c) => c,
            Err(e) => {
                warn!(broker = %key.broker, account = %key.account, error = %e, "cannot rebuild a client");
                return None;
            }
        };
        let fingerprint = session.material.token.fingerprint();
        let live = Arc::new(Live::new(stored.generation, session, client));
        info!(broker = %key.broker, account = %key.account, api = %key.api, generation = stored.generation,
              token = %fingerprint, expires_at = %live.expires_at().to_rfc3339(), "stored session restored without a login");
        let _ = self.feed(Input::Restored {
            session: live,
            jitter: rand::random::<f64>(),
        });
        self.notify();
        Some(stored.generation)
    }

    /// After a restart, in the background and at the broker host's pace:
    /// the broker's startup checks (Kotak: clock skew against its `Date`),
    /// then whether the broker still accepts the restored generation. A
    /// session it no longer accepts is invalidated exactly as a client's
    /// report of it would be (fenced by its generation: if a client already
    /// reported it, or a login replaced it, nothing more happens).
    pub async fn check_restored(self: Arc<Self>, restored: Option<u64>) {
        let connector = self.settings.lock().connector.clone();
        if restored.is_none() && !connector.startup_check_calls_broker() {
            // Nothing to ask the broker: no turn taken from the logins.
            return connector.startup_check().await;
        }
        let Some(turn) = self.take_turn().await else {
            return;
        };
        connector.startup_check().await;
        let Some(generation) = restored else { return };
        let live = self
            .state
            .lock()
            .live()
            .filter(|l| l.generation == generation)
            .cloned();
        // Replaced or reported meanwhile: that path has dealt with it.
        let Some(live) = live else { return };
        let verdict = live.client.validate(&live.session.material).await;
        if let Err(BrokerError::RateLimited(_)) = &verdict {
            turn.rate_limited();
        }
        drop(turn);
        let key = &self.key;
        match verdict {
            Ok(()) => {}
            Err(BrokerError::DeadSession(e)) => {
                info!(broker = %key.broker, account = %key.account, api = %key.api, generation,
                      error = %e, "the restored session is no longer accepted by the broker; logging in");
                let ends_previous = connector.new_login_ends_previous();
                let effects = self.feed(Input::Report {
                    generation,
                    ends_previous,
                });
                let outcome = match effects.answer {
                    Answer::Invalidated(outcome) => outcome,
                    Answer::Fail(err) => {
                        return warn!(broker = %key.broker, account = %key.account, error = %err.message,
                                     "could not invalidate the restored session");
                    }
                    other => unreachable!("a report is answered with its outcome, not {other:?}"),
                };
                self.notify();
                self.apply(effects.list, None).await;
                self.record_invalidation(
                    outcome,
                    generation,
                    Some("the broker no longer accepts the stored session (checked after the restart)"),
                )
                .await;
            }
            // Keep the last good session when the broker cannot answer (or
            // answers something other than "dead"): clients' reports still
            // invalidate it if it is dead.
            Err(e) => {
                warn!(broker = %key.broker, account = %key.account, api = %key.api, error = %e,
                      "could not check the restored session with the broker; serving it")
            }
        }
    }

    /// At startup: the logins of the last hour, from the audit trail, count
    /// against the budget, so restarts cannot multiply it.
    pub async fn restore_budget(&self) {
        let since = super::machine::budget::remembered_since(self.now());
        match self.store.login_times(&self.key, since).await {
            Ok(times) => self.restore_budget_from(times),
            Err(e) => {
                warn!(broker = %self.key.broker, account = %self.key.account, api = %self.key.api,
                      error = %e, "could not read the recent logins; the login budget starts empty")
            }
        }
    }

    /// [`Slot::restore_budget`] with the login starts already read.
    pub fn restore_budget_from(&self, times: Vec<chrono::DateTime<chrono::Utc>>) {
        let _ = self.feed(Input::RecentLogins(times));
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
