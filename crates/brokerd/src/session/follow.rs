//! The slot's side of several daemons sharing one store (docs/ha.md): its
//! role as the lock loop decides it, the sessions other daemons publish,
//! and, on the leader, the requests followers wrote for it.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::machine::{Answer, Input, Need, Role};
use super::slot::Slot;
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

    /// A submission on a daemon that does not lead: the refusal naming the
    /// daemon that does (`None` when this one leads, or is alone).
    pub(super) fn not_the_leader_for_submit(&self) -> Option<crate::session::RequestError> {
        let ha = self.ha.as_ref()?;
        let role = self.role();
        let leader = match role {
            Role::Leads => return None,
            Role::Follows | Role::Detached => ha.leader_of(&self.key).map(|(host, _)| host),
        };
        Some(crate::session::RequestError::new(
            crate::session::ErrorCode::Unavailable,
            format!(
                "{}: this daemon ({}) does not lead this session ({}), and only the leader exchanges a                  browser login; submit it on {} (`brokerctl submit` there), or open that daemon's login link",
                self.key,
                ha.host(),
                role.as_str(),
                leader.as_deref().unwrap_or("the leading daemon (none right now: retry in a few seconds)")
            ),
        ).retry_after(Duration::from_secs(5)))
    }

    /// The leader logged the session out.
    pub async fn gone(self: &Arc<Self>) {
        let effects = self.feed(Input::Gone);
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
                warn!(session = %key, from = %ask.from_host,
                      "a browser login reached another daemon; submit it on the leader");
            }
        }
    }
}
