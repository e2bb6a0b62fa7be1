//! The slot's side of several daemons sharing one store (docs/ha.md): its
//! role as the lock loop decides it, the sessions other daemons publish,
//! and, on the leader, the requests followers wrote for it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::error::{ErrorCode, RequestError};
use super::machine::{Answer, Input, Need, Role};
use super::slot::Slot;
use crate::secret::Secret;
use crate::store::StoredSession;
use crate::store::postgres::ha::{Ask, AskKind};

impl Slot {
    /// This daemon's part in the slot.
    pub fn role(&self) -> Role {
        self.state.lock().role()
    }

    /// The highest generation this daemon knows of.
    pub fn generation(&self) -> u64 {
        self.state.lock().generation()
    }

    /// The lock loop's verdict. `address_bound`: the broker binds sessions
    /// to the creating address (a new leader then logs in again).
    pub async fn set_role(self: &Arc<Self>, role: Role, address_bound: bool) {
        let effects = self.feed(Input::Role {
            role,
            address_bound,
        });
        self.notify();
        self.apply(effects.list, None).await;
    }

    /// A session another daemon saved (or the store's row at takeover):
    /// served from now on if it is newer. `host`: this daemon's; a session
    /// another host created may be bound to that host's address.
    pub async fn adopt_stored(self: &Arc<Self>, stored: StoredSession, host: &str) {
        let generation = stored.generation;
        let session = match stored.session {
            Some(Ok(session)) => session,
            // Forgotten: the `Gone` notice deals with logouts.
            None => return,
            Some(Err(e)) => {
                return warn!(session = %self.key, generation, error = %e,
                             "the session another daemon saved cannot be read here (same key on every host?)");
            }
        };
        let connector = self.settings.lock().connector.clone();
        connector.note_previous_login(session.meta.obtained_at);
        let client = match connector.rehydrate(&session.material) {
            Ok(c) => c,
            Err(e) => {
                return warn!(session = %self.key, generation, error = %e, "cannot build a client for the published session");
            }
        };
        let elsewhere = stored.created_by.as_deref() != Some(host);
        let fingerprint = session.material.token.fingerprint();
        let live = Arc::new(super::live::Live::new(generation, session, client));
        let effects = self.feed(Input::Adopt {
            session: live,
            elsewhere,
            jitter: rand::random::<f64>(),
        });
        info!(session = %self.key, generation, token = %fingerprint,
              by = stored.created_by.as_deref().unwrap_or("(unknown)"), "serving the session the leader published");
        self.notify();
        self.apply(effects.list, None).await;
    }

    /// `login_url` on a daemon that does not lead an interactive slot: the
    /// answer names where the link comes from.
    pub fn link_elsewhere(&self) -> Option<RequestError> {
        if !self.interactive() || !self.follows() {
            return None;
        }
        let ha = self.ha.as_ref()?;
        let leader = ha.leader_of(&self.key).map(|(host, _)| host);
        Some(
            RequestError::new(
                ErrorCode::Unavailable,
                format!(
                    "{}: this daemon ({}) does not lead this session; the leading daemon ({}) issues its \
                     login link: run `brokerctl login-url` there. A browser login that lands here is \
                     handed to it",
                    self.key,
                    ha.host(),
                    leader.as_deref().unwrap_or("none right now: retry in a few seconds")
                ),
            )
            .retry_after(Duration::from_secs(5)),
        )
    }

    /// Whether another daemon leads this slot (or may: detached).
    pub(super) fn follows(&self) -> bool {
        self.ha.is_some() && self.role() != Role::Leads
    }

    /// A person's browser login reached a daemon that does not lead: the
    /// submission goes to the leader in a request row (encrypted at rest,
    /// never logged), and the answer is the session the leader publishes
    /// within `wait`. Detached, it is refused unused.
    pub(super) async fn hand_to_leader(
        self: &Arc<Self>,
        submission: Secret,
        state: Option<&str>,
        wait: Duration,
    ) -> Result<Arc<super::live::Live>, RequestError> {
        let ha = self
            .ha
            .as_ref()
            .expect("only a daemon sharing its store follows");
        let before = self.generation();
        if self.role() == Role::Detached {
            return Err(RequestError::new(
                ErrorCode::Unavailable,
                format!(
                    "{}: this daemon lost its database connection, so it cannot hand the browser login to \
                     the leading daemon; nothing was used: submit it again in a few seconds, or on the \
                     leading daemon",
                    self.key
                ),
            )
            .retry_after(Duration::from_secs(5)));
        }
        let payload = serde_json::to_vec(&serde_json::json!({
            "submission": submission.expose(),
            "state": state,
        }))
        .expect("a JSON object of strings serialises");
        ha.forward(
            &self.key,
            AskKind::Submit,
            before,
            Duration::ZERO,
            Some(payload),
        )
        .await
        .map_err(|e| {
            RequestError::new(
                ErrorCode::Unavailable,
                format!(
                    "{}: could not hand the browser login to the leading daemon: {e}",
                    self.key
                ),
            )
            .retry_after(Duration::from_secs(5))
        })?;
        info!(session = %self.key, leader = ?ha.leader_of(&self.key).map(|l| l.0),
              "browser login handed to the leading daemon");
        let need = Need {
            min_valid: Duration::ZERO,
            newer_than: before,
        };
        self.wait_for(need, wait).await
    }

    /// Whether this daemon holds a session no newer than `generation`
    /// (rejected or not).
    pub fn serves_at_most(&self, generation: u64) -> bool {
        self.state
            .lock()
            .current()
            .is_some_and(|c| c.generation <= generation)
    }

    /// The leader logged out the session of `generation`.
    pub async fn gone(self: &Arc<Self>, generation: u64) {
        let effects = self.feed(Input::Gone { generation });
        self.notify();
        self.apply(effects.list, None).await;
    }

    /// On the leader: what a follower asked, handled as if one of this
    /// daemon's own clients had asked (the same fencing, budget and single
    /// flight), without waiting: the follower learns the outcome from the
    /// session this daemon publishes.
    pub async fn answer_ask(self: &Arc<Self>, ask: Ask) {
        let key = &self.key;
        match ask.kind {
            AskKind::Report => {
                let ends_previous = self.settings.lock().connector.new_login_ends_previous();
                let effects = self.feed(Input::Report {
                    generation: ask.generation,
                    ends_previous,
                });
                let outcome = match effects.answer {
                    Answer::Invalidated(outcome) => outcome,
                    Answer::Fail(err) => {
                        return warn!(session = %key, from = %ask.from_host, error = %err.message,
                                     "a forwarded report was refused");
                    }
                    other => unreachable!("a report is answered with its outcome, not {other:?}"),
                };
                self.notify();
                self.apply(effects.list, None).await;
                let reason = format!("reported through {}", ask.from_host);
                self.record_invalidation(outcome, ask.generation, Some(&reason))
                    .await;
            }
            AskKind::Login => {
                let need = Need {
                    min_valid: Duration::from_secs(ask.min_valid_secs),
                    newer_than: 0,
                };
                let effects = self.feed(Input::Token { need, asked: false });
                self.notify();
                self.apply(effects.list, None).await;
            }
            AskKind::OperatorLogin => {
                let fingerprint = self.settings.lock().connector.credentials_fingerprint();
                let effects = self.feed(Input::OperatorLogin { fingerprint });
                if let Answer::Fail(err) = &effects.answer {
                    warn!(session = %key, from = %ask.from_host, error = %err.message,
                          "an operator login asked through another daemon was refused");
                }
                self.notify();
                self.apply(effects.list, None).await;
            }
            AskKind::Submit => {
                let Some((submission, state)) = ask.payload.as_deref().and_then(submission_of)
                else {
                    return warn!(session = %key, from = %ask.from_host,
                                 "a browser login handed over by another daemon is unreadable; ignored");
                };
                // Its outcome reaches the follower as the published session
                // (or its wait running out); the failure is logged here.
                let slot = Arc::clone(self);
                let from = ask.from_host.clone();
                self.tasks.spawn(async move {
                    let wait = Duration::from_secs(60);
                    if let Err(e) = slot.submit(submission, state.as_deref(), wait).await {
                        warn!(session = %slot.key, from = %from, error = %e.message,
                              "a browser login handed over by another daemon failed");
                    }
                });
            }
        }
    }
}

/// The submission and link state of a handed-over browser login.
fn submission_of(payload: &[u8]) -> Option<(Secret, Option<String>)> {
    let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let submission = Secret::new(v["submission"].as_str()?.to_string());
    Some((submission, v["state"].as_str().map(str::to_string)))
}
