//! Who logs in for this slot when several daemons share one PostgreSQL
//! store (docs/ha.md, ARCHITECTURE invariant 20): the leader logs in,
//! refreshes and counts deaths as a single daemon does; a follower serves
//! what the leader publishes and asks the leader for everything that needs
//! a broker login; a daemon that lost the database cannot prove it leads,
//! so it logs in for nobody and serves only a still-valid session.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Answer, Current, Effect, Machine, Out, Phase, Session};
use crate::session::error::{ErrorCode, RequestError};
use crate::session::events::EventKind;
use crate::store::postgres::ha::AskKind;

/// How long a follower waits for the leader to publish a session it
/// asked for before it stops showing `refreshing` and lets the next
/// request ask again (the leader may have died, or refused: budget,
/// lock-out, conflict, which its own status shows).
pub const LEADER_WAIT: Duration = Duration::from_secs(30);

/// This daemon's part in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// This daemon logs in: it is alone on its store, or holds the slot's
    /// leadership lock.
    Leads,
    /// Another daemon holds the lock: serve what it publishes, ask it.
    Follows,
    /// The database is unreachable: leadership cannot be proven, so no
    /// login; a still-valid session is served from memory.
    Detached,
}

impl Role {
    /// The wire spelling in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leads => "leader",
            Self::Follows => "follower",
            Self::Detached => "detached",
        }
    }
}

impl<S: Session> Machine<S> {
    /// The slot's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this follower is waiting for a session it asked the leader
    /// for (its `LoggingIn` is the leader's login, not one of its own).
    pub fn awaiting_leader(&self) -> bool {
        self.asked_leader.is_some()
    }

    /// Not the leader: instead of starting a login, ask the leader (a
    /// follower) or refuse (detached). `generation`: the one reported dead
    /// (Report) or the newest known (others). `once_per_wait`: nothing is
    /// sent while this daemon already waits for the leader (a token
    /// request); a new dead generation or an operator's login always is.
    pub(super) fn defer_login(
        &mut self,
        now: DateTime<Utc>,
        kind: AskKind,
        generation: u64,
        min_valid: Duration,
        once_per_wait: bool,
        out: &mut Out,
    ) {
        match self.role {
            Role::Leads => unreachable!("the leader logs in itself"),
            Role::Detached => {
                self.last_error = Some(("unavailable", self.detached_message()));
            }
            Role::Follows => {
                // One ask per wait: every waiter then waits for the same
                // publication. A report of a newly dead generation is always
                // passed on (each once: the machine fences repeats).
                if self.asked_leader.is_some() && once_per_wait {
                    return;
                }
                if self.phase == Phase::Idle || self.asked_leader.is_some() {
                    self.phase = Phase::LoggingIn;
                    self.asked_leader = Some(Self::after(now, LEADER_WAIT));
                }
                out.push(Effect::AskLeader {
                    kind,
                    generation,
                    min_valid,
                });
            }
        }
    }

    /// The refusal of anything that needs the leader while detached.
    pub(super) fn detached(&self) -> RequestError {
        RequestError::new(ErrorCode::Unavailable, self.detached_message())
            .retry_after(Duration::from_secs(5))
    }

    fn detached_message(&self) -> String {
        format!(
            "{}: this daemon lost its database connection and cannot prove it leads this session, \
             so it logs in for nobody until the database is back; a still-valid session is served, \
             and another daemon may lead meanwhile",
            self.key
        )
    }

    /// The leader published `session` (or the store holds it at takeover):
    /// serve it from now on if it is newer than what this daemon has.
    /// `elsewhere`: saved by another host (it may be bound to that host's
    /// address).
    pub(super) fn adopt(
        &mut self,
        session: S,
        elsewhere: bool,
        jitter: f64,
        out: &mut Out,
    ) -> Answer<S> {
        let generation = session.generation();
        self.generation = self.generation.max(generation);
        let newer = self
            .current
            .as_ref()
            .is_none_or(|c| generation > c.generation());
        if !newer {
            return Answer::None;
        }
        let refresh_at = self.refresh_of_taken(&session, jitter);
        let expires_at = session.expires_at();
        self.last_login_at = Some(session.obtained_at());
        let retired = self.current.replace(Current {
            session,
            refresh_at,
            restored: elsewhere,
        });
        self.previous = retired
            .as_ref()
            .map(|c| (c.generation(), c.session.obtained_at()));
        self.dead = false;
        self.want_session = true;
        self.auth_announced = false;
        if self.role != Role::Leads {
            // Whatever this daemon was waiting for, the leader has acted.
            self.asked_leader = None;
            self.last_error = None;
            self.phase = Phase::Idle;
        }
        out.push(Effect::Publish {
            kind: EventKind::Renewed,
            generation,
            expires_at: Some(expires_at),
        });
        Answer::None
    }

    /// The login task gave up before the broker call: this daemon could
    /// not prove it still leads. The lock loop sets the real role next.
    pub(super) fn not_leader(&mut self) -> Answer<S> {
        self.budget.refund();
        self.role = Role::Detached;
        if self.phase == Phase::LoggingIn {
            self.phase = Phase::Idle;
        }
        self.last_error = Some(("unavailable", self.detached_message()));
        Answer::None
    }

    /// The leader logged out the session of `generation`: forget it here
    /// too (no broker call: the leader made it), unless this daemon already
    /// serves a newer one (the notice came late).
    pub(super) fn gone(&mut self, generation: u64, out: &mut Out) -> Answer<S> {
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.generation() > generation)
        {
            return Answer::None;
        }
        self.asked_leader = None;
        if self.phase == Phase::LoggingIn && self.role != Role::Leads {
            self.phase = Phase::Idle;
        }
        let answer = self.logout();
        out.push(Effect::Publish {
            kind: EventKind::LoggedOut,
            generation: self.generation,
            expires_at: None,
        });
        answer
    }

    /// The role changes. Taking the lead: stop waiting for the old leader,
    /// log in again when the session is bound to another host's address
    /// (`address_bound`: the broker binds sessions and the stored one was
    /// created elsewhere), or when there is no valid one and a session is
    /// wanted; otherwise serve what there is (no login) and plan its
    /// refresh.
    pub(super) fn set_role(
        &mut self,
        now: DateTime<Utc>,
        role: Role,
        address_bound: bool,
        out: &mut Out,
    ) -> Answer<S> {
        let was = std::mem::replace(&mut self.role, role);
        if self.asked_leader.take().is_some() && self.phase == Phase::LoggingIn {
            self.phase = Phase::Idle;
        }
        match role {
            Role::Leads if was != Role::Leads => {
                let bound_elsewhere = address_bound && self.valid(now).is_some();
                if bound_elsewhere && self.phase == Phase::Idle {
                    // Served until the new one lands, as a refresh is.
                    self.begin_login(
                        now,
                        "took the lead of a session bound to another host's address",
                        super::Trigger::Automatic,
                        out,
                    );
                } else if self.phase == Phase::Idle
                    && self.want_session
                    && self.valid(now).is_none()
                {
                    self.begin_login(
                        now,
                        "took the lead with no valid session",
                        super::Trigger::Automatic,
                        out,
                    );
                }
                out.push(Effect::WakeAt(now));
            }
            Role::Follows | Role::Detached if was != role => {
                // A leader's waits (backoff, conflict, store outage, a
                // person) are its own; whoever leads decides now. A login
                // of ours still in flight finishes (its save is fenced). A
                // lock-out stays: credentials the broker rejected are never
                // sent again, whichever daemon leads next.
                match self.phase {
                    Phase::LoggingIn | Phase::LockedOut => {}
                    Phase::Idle
                    | Phase::Backoff { .. }
                    | Phase::Conflict { .. }
                    | Phase::AuthRequired
                    | Phase::StoreUnavailable { .. } => self.phase = Phase::Idle,
                }
                // Back from detached with a session reported dead meanwhile:
                // the leader may never have heard of it.
                if role == Role::Follows
                    && self.dead
                    && let Some(generation) = self.current.as_ref().map(|c| c.generation())
                {
                    let min_valid = self.policy.min_valid;
                    self.defer_login(now, AskKind::Report, generation, min_valid, false, out);
                }
            }
            Role::Leads | Role::Follows | Role::Detached => {}
        }
        Answer::None
    }

    /// A follower's schedule: the leader refreshes and retries; here only
    /// the end of a wait for the leader is due.
    pub(super) fn follower_plan(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = self.asked_leader?;
        if until > now {
            return Some(until);
        }
        self.asked_leader = None;
        if self.phase == Phase::LoggingIn {
            self.phase = Phase::Idle;
        }
        self.last_error = Some((
            "unavailable",
            format!(
                "{}: the leading daemon has not published a new session within {}s of being asked; \
                 its status says why",
                self.key,
                LEADER_WAIT.as_secs()
            ),
        ));
        None
    }
}
