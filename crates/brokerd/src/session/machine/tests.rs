//! Unit tests of the machine: each invariant of ARCHITECTURE.md it decides,
//! proved without SQLite, HTTP, a runtime or sleeping. Time is a value
//! handed to every input and moved forward by the test.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::brokers::{Api, BrokerError, BrokerId, SessionKey};
use crate::config::{Reminder, SessionPolicy};
use crate::session::error::ErrorCode;
use crate::session::events::EventKind;
use crate::store::{AuditEvent, Rejection};

pub(super) const S: Duration = Duration::from_secs(1);

/// A session as the machine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Fake {
    pub(super) generation: u64,
    pub(super) obtained_at: DateTime<Utc>,
    pub(super) expires_at: DateTime<Utc>,
}

impl Session for Fake {
    fn generation(&self) -> u64 {
        self.generation
    }
    fn obtained_at(&self) -> DateTime<Utc> {
        self.obtained_at
    }
    fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

pub(super) fn policy() -> SessionPolicy {
    SessionPolicy {
        refresh_margin: 60 * S,
        refresh_jitter: Duration::ZERO,
        min_valid: 30 * S,
        backoff_initial: S,
        backoff_max: 300 * S,
        conflict_window: 120 * S,
        conflict_threshold: 3,
        conflict_cooldown: 600 * S,
        login_at_start: false,
        min_login_interval: Duration::ZERO,
        max_logins_per_hour: 1000,
    }
}

/// One machine and the virtual time it lives in.
pub(super) struct Rig {
    pub(super) m: Machine<Fake>,
    pub(super) now: DateTime<Utc>,
}

impl Rig {
    pub(super) fn new(broker: BrokerId) -> Self {
        Self::with(broker, policy())
    }

    pub(super) fn with(broker: BrokerId, policy: SessionPolicy) -> Self {
        Self {
            m: Machine::new(SessionKey::new(broker, "main", Api::Interactive), policy),
            now: DateTime::from_timestamp(1_800_000_000, 0).expect("a valid time"),
        }
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    pub(super) fn feed(&mut self, input: Input<Fake>) -> Effects<Fake> {
        self.m.handle(self.now, input)
    }

    pub(super) fn token(&mut self, min_valid: Duration, asked: bool) -> Effects<Fake> {
        self.feed(Input::Token {
            need: Need {
                min_valid,
                newer_than: 0,
            },
            asked,
        })
    }

    pub(super) fn tick(&mut self) -> Effects<Fake> {
        self.feed(Input::Tick { reminder: None })
    }

    /// The login in flight begins (credentials `fingerprint`); its generation.
    pub(super) fn begins(&mut self, fingerprint: &str) -> u64 {
        match self
            .feed(Input::LoginBegins {
                fingerprint: fingerprint.to_string(),
            })
            .answer
        {
            Answer::Generation(g) => g,
            other => panic!("{other:?}"),
        }
    }

    /// The login in flight succeeds with a session lasting `lifetime`.
    pub(super) fn succeeds(&mut self, lifetime: Duration) -> Fake {
        let generation = self.begins("creds-a");
        let session = Fake {
            generation,
            obtained_at: self.now,
            expires_at: self.now + lifetime,
        };
        self.publish(session.clone());
        session
    }

    pub(super) fn publish(&mut self, session: Fake) -> Effects<Fake> {
        let logouts = self.m.logouts;
        self.feed(Input::LoginSucceeded(Succeeded {
            generation: session.generation,
            session,
            logouts,
            jitter: 0.0,
            audit: "token abc".into(),
        }))
    }

    /// The login in flight fails with `error`.
    pub(super) fn fails(&mut self, error: BrokerError) -> Effects<Fake> {
        let generation = self.begins("creds-a");
        let started_at = self.now;
        self.feed(Input::LoginFailed {
            error,
            generation,
            started_at,
            jitter: 0.0,
        })
    }

    /// An automatic login started by a request, then succeeding.
    pub(super) fn logged_in(&mut self, lifetime: Duration) -> Fake {
        let e = self.token(Duration::ZERO, false);
        assert_eq!(logins(&e), 1, "{:?}", e.list);
        self.succeeds(lifetime)
    }

    pub(super) fn report(&mut self, generation: u64) -> Effects<Fake> {
        self.feed(Input::Report {
            generation,
            ends_previous: false,
        })
    }
}

/// How many logins the effects start.
pub(super) fn logins(e: &Effects<Fake>) -> usize {
    e.list
        .iter()
        .filter(|e| matches!(e, Effect::StartLogin { .. }))
        .count()
}

pub(super) fn published(e: &Effects<Fake>, kind: EventKind) -> bool {
    e.list
        .iter()
        .any(|e| matches!(e, Effect::Publish { kind: k, .. } if *k == kind))
}

pub(super) fn wake_at(e: &Effects<Fake>) -> Option<DateTime<Utc>> {
    e.list.iter().find_map(|e| match e {
        Effect::WakeAt(at) => Some(*at),
        _ => None,
    })
}

pub(super) fn failed(e: Effects<Fake>) -> crate::session::error::RequestError {
    match e.answer {
        Answer::Fail(err) => err,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

// Invariant 1: single flight.

#[test]
fn invariant_1_single_flight_fifty_waiters_start_one_login() {
    let mut r = Rig::new(BrokerId::Jainam);
    let mut started = 0;
    for _ in 0..50 {
        let e = r.token(30 * S, false);
        assert!(matches!(e.answer, Answer::Wait { .. }));
        started += logins(&e);
    }
    assert_eq!(started, 1);
    assert_eq!(r.m.phase(), Phase::LoggingIn);
    // Once it lands, every waiter is served the same generation.
    let session = r.succeeds(3600 * S);
    for _ in 0..50 {
        assert!(matches!(r.token(30 * S, true).answer, Answer::Serve(s) if s == session));
    }
}

#[test]
fn invariant_1_single_flight_a_report_while_a_refresh_runs_starts_no_second_login() {
    let mut r = Rig::new(BrokerId::Jainam);
    let first = r.logged_in(3600 * S);
    r.advance(3540 * S);
    assert_eq!(logins(&r.tick()), 1, "the refresh is due");
    let e = r.report(first.generation);
    assert!(matches!(
        e.answer,
        Answer::Invalidated(Invalidation::Current(_))
    ));
    assert_eq!(logins(&e), 0, "the running refresh brings the next session");
    assert_eq!(logins(&r.token(S, false)), 0);
    assert_eq!(r.m.phase(), Phase::LoggingIn);
    let second = r.succeeds(3600 * S);
    assert_eq!(second.generation, first.generation + 1);
    assert!(matches!(r.token(S, false).answer, Answer::Serve(s) if s == second));
}

#[test]
fn invariant_1_single_flight_an_operator_login_joins_the_running_one() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-a".into(),
    });
    assert_eq!(logins(&e), 0);
    assert!(matches!(e.answer, Answer::Generation(0)));
}

// Invariant 3: generation fencing.

#[test]
fn invariant_3_generation_fencing_stale_and_repeated_reports_cost_one_login() {
    let mut r = Rig::new(BrokerId::Jainam);
    let g1 = r.logged_in(3600 * S).generation;
    // The current generation: dead, one login.
    let mut started = logins(&r.report(g1));
    // Forty-nine more clients report the same dead token.
    for _ in 0..49 {
        let e = r.report(g1);
        assert!(matches!(
            e.answer,
            Answer::Invalidated(Invalidation::AlreadyDead)
        ));
        started += logins(&e);
    }
    assert_eq!(started, 1);
    let g2 = r.succeeds(3600 * S).generation;
    assert_eq!(g2, g1 + 1);
    // A late report of the old generation is answered without a login.
    let e = r.report(g1);
    assert!(matches!(e.answer, Answer::Invalidated(Invalidation::Stale)));
    assert_eq!(logins(&e), 0);
    assert!(matches!(r.token(S, false).answer, Answer::Serve(s) if s.generation == g2));
}

#[test]
fn invariant_3_generation_fencing_a_never_issued_generation_is_a_bad_request() {
    let mut r = Rig::new(BrokerId::Jainam);
    let g = r.logged_in(3600 * S).generation;
    let err = failed(r.report(g + 1));
    assert_eq!(err.code, ErrorCode::BadRequest);
    assert!(
        matches!(r.token(S, false).answer, Answer::Serve(_)),
        "the session lives on"
    );
}

#[test]
fn invariant_3_generation_fencing_generations_never_decrease() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.feed(Input::StoredRow { generation: 7 });
    let g = r.logged_in(3600 * S).generation;
    assert_eq!(g, 8);
    // A logout forgets the session, not the number.
    assert!(matches!(
        r.feed(Input::Logout).answer,
        Answer::LoggedOut {
            old: Some(_),
            dead: false
        }
    ));
    assert_eq!(r.m.generation(), 8);
    // The store knowing less never lowers it; knowing more raises it.
    r.feed(Input::StoredGeneration(3));
    assert_eq!(r.m.generation(), 8);
    r.feed(Input::StoredGeneration(11));
    assert_eq!(r.logged_in(3600 * S).generation, 12);
}

#[test]
fn invariant_3_generation_fencing_a_login_that_lands_after_a_logout_is_not_published() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    let generation = r.begins("creds-a");
    let logouts = r.m.logouts;
    r.feed(Input::Logout);
    let session = Fake {
        generation,
        obtained_at: r.now,
        expires_at: r.now + 3600 * S,
    };
    let e = r.feed(Input::LoginSucceeded(Succeeded {
        generation,
        session,
        logouts,
        jitter: 0.0,
        audit: String::new(),
    }));
    assert!(matches!(e.answer, Answer::Published(false)));
    assert!(!published(&e, EventKind::Renewed));
    assert!(r.m.live().is_none());
    assert_eq!(r.m.generation(), generation, "the stored number is kept");
    assert_eq!(r.m.phase(), Phase::Idle);
}

#[test]
fn invariant_3_generation_fencing_a_login_result_behind_a_newer_stored_generation_continues_from_it()
 {
    let mut r = Rig::new(BrokerId::Jainam);
    let g1 = r.logged_in(3600 * S).generation;
    r.report(g1);
    // The login expects g1 + 1, but the store already holds a newer row
    // (unreadable at startup): the save continues from it.
    assert_eq!(r.begins("creds-a"), g1 + 1);
    r.feed(Input::StoredGeneration(g1 + 5));
    let session = Fake {
        generation: g1 + 6,
        obtained_at: r.now,
        expires_at: r.now + 3600 * S,
    };
    let e = r.publish(session.clone());
    assert!(matches!(e.answer, Answer::Published(true)));
    assert_eq!(r.m.generation(), g1 + 6);
    // The replaced generation's late report is stale, the new one serves.
    assert!(matches!(
        r.report(g1).answer,
        Answer::Invalidated(Invalidation::Stale)
    ));
    assert!(matches!(r.token(S, false).answer, Answer::Serve(s) if s == session));
    // A report of a generation between the two was never issued here, yet
    // is not above the newest: answered as stale, never a login.
    let e = r.report(g1 + 3);
    assert_eq!(logins(&e), 0);
}

// Invariant 5: minimum validity.

#[test]
fn invariant_5_minimum_validity_serves_only_what_lasts_long_enough() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.logged_in(600 * S);
    r.advance(500 * S);
    assert!(matches!(r.token(60 * S, false).answer, Answer::Serve(_)));
    // 100 s left, 200 asked: a new login is started (its session lasts 600 s).
    let e = r.token(200 * S, false);
    assert!(matches!(e.answer, Answer::Wait { asked: true }));
    assert_eq!(logins(&e), 1);
}

#[test]
fn invariant_5_minimum_validity_a_lifetime_shorter_than_asked_is_unavailable_without_a_login() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.logged_in(120 * S);
    let e = r.token(300 * S, false);
    assert_eq!(logins(&e), 0);
    assert_eq!(failed(e).code, ErrorCode::Unavailable);
    // Once it expired, a login is allowed again.
    r.advance(121 * S);
    let e = r.token(300 * S, false);
    assert_eq!(logins(&e), 1);
}

#[test]
fn invariant_5_minimum_validity_an_expired_on_arrival_session_is_a_transient_failure() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    // Already over, and with less than min_valid (30 s) left.
    assert!(r.m.arrival_problem(r.now, r.now - S).is_some());
    assert!(r.m.arrival_problem(r.now, r.now + 10 * S).is_some());
    assert!(r.m.arrival_problem(r.now, r.now + 31 * S).is_none());
    let problem = r.m.arrival_problem(r.now, r.now - S).expect("refused");
    assert!(matches!(problem, BrokerError::Transient(_)));
    r.fails(problem);
    assert!(matches!(r.m.phase(), Phase::Backoff { .. }));
    assert!(r.m.live().is_none(), "never published");
}

// Invariant 6: never burn the account.

#[test]
fn invariant_6_never_burn_a_rejection_locks_out_and_is_remembered() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    let e = r.fails(BrokerError::Rejected("wrong password".into()));
    assert_eq!(r.m.phase(), Phase::LockedOut);
    assert!(published(&e, EventKind::LockedOut));
    assert!(e.list.iter().any(|e| matches!(e, Effect::PersistRejection(Rejection { fingerprint, .. }) if fingerprint == "creds-a")));
    // Nothing logs in by itself: not the schedule, not requests.
    r.advance(3600 * S);
    assert_eq!(logins(&r.tick()), 0);
    let e = r.token(S, false);
    assert_eq!(logins(&e), 0);
    assert_eq!(failed(e).code, ErrorCode::LockedOut);
}

#[test]
fn invariant_6_never_burn_an_unchanged_login_does_not_lift_the_lock_out() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    r.fails(BrokerError::Rejected("wrong password".into()));
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-a".into(),
    });
    assert_eq!(logins(&e), 0);
    assert_eq!(failed(e).code, ErrorCode::LockedOut);
    assert_eq!(r.m.phase(), Phase::LockedOut);
    // A reload back to the rejected credentials keeps it locked out.
    r.feed(Input::Reconfigure {
        policy: policy(),
        credentials: Some("creds-a".into()),
    });
    assert_eq!(r.m.phase(), Phase::LockedOut);
    // Changed credentials: the operator's login goes through.
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-b".into(),
    });
    assert_eq!(logins(&e), 1);
    // A success forgets every rejection.
    let e = r.publish(Fake {
        generation: 1,
        obtained_at: r.now,
        expires_at: r.now + 3600 * S,
    });
    assert!(e.list.contains(&Effect::ForgetRejections));
}

#[test]
fn invariant_6_never_burn_a_reload_with_new_credentials_lifts_the_lock_out() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    r.fails(BrokerError::Rejected("wrong password".into()));
    r.feed(Input::Reconfigure {
        policy: policy(),
        credentials: Some("creds-b".into()),
    });
    assert_eq!(r.m.phase(), Phase::Idle);
    // ... and a reload that changed nothing the broker checks does not.
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    r.fails(BrokerError::Config("API not enabled".into()));
    r.feed(Input::Reconfigure {
        policy: policy(),
        credentials: None,
    });
    assert_eq!(r.m.phase(), Phase::LockedOut);
}

#[test]
fn invariant_6_never_burn_a_restart_comes_back_locked_out() {
    let mut r = Rig::new(BrokerId::Jainam);
    let rejection = Rejection {
        fingerprint: "creds-a".into(),
        at: r.now,
        message: "wrong password".into(),
    };
    r.feed(Input::StoredRejections {
        rejections: vec![rejection.clone()],
        fingerprint: "creds-a".into(),
    });
    assert_eq!(r.m.phase(), Phase::LockedOut);
    // Changed since: tried, but the old set stays remembered.
    let mut r = Rig::new(BrokerId::Jainam);
    r.feed(Input::StoredRejections {
        rejections: vec![rejection],
        fingerprint: "creds-b".into(),
    });
    assert_eq!(r.m.phase(), Phase::Idle);
    r.feed(Input::Reconfigure {
        policy: policy(),
        credentials: Some("creds-a".into()),
    });
    assert_eq!(r.m.phase(), Phase::LockedOut);
}

#[test]
fn invariant_6_never_burn_transient_failures_back_off_doubling_to_five_minutes() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    let mut delays = Vec::new();
    for _ in 0..11 {
        r.fails(BrokerError::Transient("HTTP 503".into()));
        let Phase::Backoff { until } = r.m.phase() else {
            panic!("{:?}", r.m.phase())
        };
        delays.push((until - r.now).num_seconds());
        // Nothing before the time; one retry at it.
        assert_eq!(logins(&r.tick()), 0);
        r.now = until;
        assert_eq!(logins(&r.tick()), 1);
    }
    assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
}

// Invariant 7: conflict.

#[test]
fn invariant_7_conflict_three_early_deaths_enter_conflict_once_each() {
    let mut r = Rig::new(BrokerId::Jainam);
    let mut g = r.logged_in(3600 * S).generation;
    for death in 1..=3 {
        r.advance(10 * S);
        let e = r.report(g);
        // The same death reported again counts once.
        r.report(g);
        if death < 3 {
            assert_eq!(logins(&e), 1);
            g = r.succeeds(3600 * S).generation;
        } else {
            assert!(published(&e, EventKind::Conflict));
            assert_eq!(logins(&e), 0);
        }
    }
    let Phase::Conflict { until } = r.m.phase() else {
        panic!("{:?}", r.m.phase())
    };
    assert_eq!(until, r.now + 600 * S);
    assert_eq!(failed(r.token(S, false)).code, ErrorCode::Conflict);
    // One automatic login per cooldown.
    r.advance(599 * S);
    assert_eq!(logins(&r.tick()), 0);
    r.advance(S);
    assert_eq!(logins(&r.tick()), 1);
}

#[test]
fn invariant_7_conflict_a_late_death_breaks_the_run() {
    let mut r = Rig::new(BrokerId::Jainam);
    let mut g = r.logged_in(3600 * S).generation;
    for _ in 0..2 {
        r.advance(10 * S);
        r.report(g);
        g = r.succeeds(3600 * S).generation;
    }
    // This one lived past the window: not early, the run starts over.
    r.advance(1000 * S);
    r.report(g);
    r.succeeds(3600 * S);
    assert_eq!(r.m.phase(), Phase::Idle);
    assert_eq!(r.m.early_deaths, 0);
}

#[test]
fn invariant_7_conflict_reached_while_a_login_runs_takes_effect_when_it_ends() {
    let mut r = Rig::new(BrokerId::Jainam);
    let mut g = r.logged_in(3600 * S).generation;
    for _ in 0..2 {
        r.advance(10 * S);
        r.report(g);
        g = r.succeeds(3600 * S).generation;
    }
    // A refresh runs; the death of the generation it replaces arrives.
    r.advance(5 * S);
    r.m.current.as_mut().expect("a session").refresh_at = r.now;
    assert_eq!(logins(&r.tick()), 1);
    let e = r.report(g);
    assert!(
        !published(&e, EventKind::Conflict),
        "not while the login runs"
    );
    assert_eq!(r.m.phase(), Phase::LoggingIn);
    let e = r.publish(Fake {
        generation: g + 1,
        obtained_at: r.now,
        expires_at: r.now + 3600 * S,
    });
    assert!(published(&e, EventKind::Conflict));
    assert!(matches!(r.m.phase(), Phase::Conflict { .. }));
    // The new session is still served meanwhile.
    assert!(matches!(r.token(S, false).answer, Answer::Serve(s) if s.generation == g + 1));
}

#[test]
fn invariant_7_conflict_a_report_of_the_replaced_generation_still_counts() {
    let mut r = Rig::new(BrokerId::Jainam);
    let mut g = r.logged_in(3600 * S).generation;
    for _ in 0..3 {
        // A refresh replaces g; only then does g's death get reported.
        r.advance(10 * S);
        r.m.current.as_mut().expect("a session").refresh_at = r.now;
        r.tick();
        let next = r.succeeds(3600 * S).generation;
        let e = r.report(g);
        assert!(matches!(e.answer, Answer::Invalidated(Invalidation::Stale)));
        g = next;
    }
    assert!(matches!(r.m.phase(), Phase::Conflict { .. }));
    // Unless our own login is what ended it (one session per key).
    let mut r = Rig::new(BrokerId::KotakNeo);
    let g = r.logged_in(3600 * S).generation;
    r.m.current.as_mut().expect("a session").refresh_at = r.now;
    r.tick();
    r.succeeds(3600 * S);
    r.feed(Input::Report {
        generation: g,
        ends_previous: true,
    });
    assert_eq!(r.m.early_deaths, 0);
}

#[test]
fn invariant_7_conflict_logins_killed_halfway_and_stored_dead_sessions_count() {
    let mut r = Rig::new(BrokerId::Jainam);
    // A restored session, served at once, then found dead at the broker
    // in the background: a report of its generation, like a client's.
    r.feed(Input::StoredRow { generation: 4 });
    let stored = Fake {
        generation: 4,
        obtained_at: r.now - 30 * S,
        expires_at: r.now + 3600 * S,
    };
    r.feed(Input::Restored {
        session: stored,
        jitter: 0.0,
    });
    let e = r.report(4);
    assert!(matches!(
        e.answer,
        Answer::Invalidated(Invalidation::Current(_))
    ));
    assert_eq!(logins(&e), 1, "the check's verdict starts the one login");
    // Counted once, however often it is found (a client reports it too).
    let e = r.report(4);
    assert_eq!(logins(&e), 0);
    assert_eq!(r.m.early_deaths, 1);
    r.fails(BrokerError::DeadSession("session killed".into()));
    assert_eq!(r.m.early_deaths, 2);
    let Phase::Backoff { until } = r.m.phase() else {
        panic!()
    };
    r.now = until;
    assert_eq!(logins(&r.tick()), 1);
    let e = r.fails(BrokerError::DeadSession("session killed".into()));
    assert!(published(&e, EventKind::Conflict));
    assert!(matches!(r.m.phase(), Phase::Conflict { .. }));
}

// Invariant 8: no login storms.

#[test]
fn invariant_8_no_storms_refresh_waits_half_the_lifetime_or_thirty_seconds() {
    let mut r = Rig::new(BrokerId::Jainam);
    let s = r.logged_in(40 * S);
    // The margin (60 s) would put it before the login: the 30 s floor holds.
    assert_eq!(wake_at(&r.tick()), Some(s.obtained_at + 30 * S));
    r.advance(29 * S);
    assert_eq!(logins(&r.tick()), 0);
    r.advance(S);
    assert_eq!(logins(&r.tick()), 1);
    // A long session: half its lifetime at the earliest, else the margin.
    let mut r = Rig::new(BrokerId::Jainam);
    let s = r.logged_in(100 * S);
    assert_eq!(wake_at(&r.tick()), Some(s.obtained_at + 50 * S));
    let mut r = Rig::new(BrokerId::Jainam);
    let s = r.logged_in(3600 * S);
    assert_eq!(wake_at(&r.tick()), Some(s.expires_at - 60 * S));
}

#[test]
fn invariant_8_no_storms_a_login_that_does_not_extend_the_cut_off_waits_for_it() {
    let mut r = Rig::new(BrokerId::KotakNeo);
    let first = r.logged_in(3600 * S);
    r.advance(3540 * S);
    assert_eq!(logins(&r.tick()), 1);
    // The broker's fixed cut-off: the new session ends when the old one did.
    let generation = r.begins("creds-a");
    r.publish(Fake {
        generation,
        obtained_at: r.now,
        expires_at: first.expires_at,
    });
    assert_eq!(wake_at(&r.tick()), Some(first.expires_at));
    r.advance(59 * S);
    assert_eq!(logins(&r.tick()), 0);
}

#[test]
fn invariant_8_no_storms_the_budget_holds_back_logins_too_close_together() {
    let mut p = policy();
    p.min_login_interval = 30 * S;
    let mut r = Rig::with(BrokerId::Jainam, p);
    let g = r.logged_in(3600 * S).generation;
    r.advance(5 * S);
    // Reported dead 5 s after the login: the next one waits for the interval.
    let e = r.report(g);
    assert_eq!(logins(&e), 0);
    assert_eq!(
        r.m.phase(),
        Phase::Backoff {
            until: r.now + 25 * S
        }
    );
    assert_eq!(r.m.last_error().map(|e| e.0), Some("login_budget"));
    assert_eq!(failed(r.token(S, false)).code, ErrorCode::Unavailable);
    r.advance(25 * S);
    assert_eq!(logins(&r.tick()), 1);
}

#[test]
fn invariant_8_no_storms_the_hourly_cap_enters_conflict_and_operators_are_counted_not_refused() {
    let mut p = policy();
    p.max_logins_per_hour = 3;
    let mut r = Rig::with(BrokerId::Jainam, p);
    // Two automatic logins and one operator login use up the hour.
    r.logged_in(3600 * S);
    r.advance(60 * S);
    r.feed(Input::Logout);
    r.logged_in(3600 * S);
    r.advance(60 * S);
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-a".into(),
    });
    assert_eq!(logins(&e), 1);
    let g = r.succeeds(3600 * S).generation;
    // The operator is never refused; the automatic one is.
    r.advance(60 * S);
    let e = r.report(g);
    assert_eq!(logins(&e), 0);
    assert!(published(&e, EventKind::Conflict));
    assert_eq!(r.m.logins_last_hour(r.now), 3);
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-a".into(),
    });
    assert_eq!(logins(&e), 1);
}

#[test]
fn invariant_8_no_storms_a_restart_seeds_the_budget_from_the_last_hour() {
    let mut p = policy();
    p.max_logins_per_hour = 2;
    let mut r = Rig::with(BrokerId::Jainam, p);
    let (a, b) = (r.now - 3000 * S, r.now - 100 * S);
    r.feed(Input::RecentLogins(vec![a, b]));
    let e = r.token(S, false);
    assert_eq!(logins(&e), 0);
    assert!(matches!(r.m.phase(), Phase::Conflict { until } if until == a + 3600 * S));
}

#[test]
fn invariant_8_no_storms_a_logout_ends_pending_retries() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    r.fails(BrokerError::Transient("timeout".into()));
    assert!(matches!(r.m.phase(), Phase::Backoff { .. }));
    r.feed(Input::Logout);
    assert_eq!(r.m.phase(), Phase::Idle);
    r.advance(3600 * S);
    assert_eq!(logins(&r.tick()), 0);
    assert!(wake_at(&r.tick()).is_none());
}

#[test]
fn invariant_8_no_storms_a_login_the_store_refused_gets_its_budget_back() {
    let mut p = policy();
    p.min_login_interval = 30 * S;
    let mut r = Rig::with(BrokerId::Jainam, p);
    r.token(S, false);
    let e = r.feed(Input::StoreRefused {
        by: GateBy::LoginTask,
        message: "disk full".into(),
    });
    assert!(matches!(e.answer, Answer::Outage { first: true, .. }));
    assert!(published(&e, EventKind::StoreUnavailable));
    r.feed(Input::LoginNotStarted);
    // Probed again, not logged in, until the store takes writes.
    let Phase::StoreUnavailable { until, probes: 0 } = r.m.phase() else {
        panic!("{:?}", r.m.phase())
    };
    r.now = until;
    let e = r.tick();
    let Some(Effect::StartProbe { stamp }) = e.list.first().cloned_probe() else {
        panic!("{:?}", e.list)
    };
    r.feed(Input::StoreAccepted {
        by: GateBy::Probe(stamp),
    });
    assert_eq!(r.m.phase(), Phase::Idle);
    // The refunded login does not hold the next one back.
    assert_eq!(logins(&r.token(S, false)), 1);
}

/// `Effect` holds no session: a probe's stamp can be copied out.
trait ClonedProbe {
    fn cloned_probe(self) -> Option<Effect>;
}

impl ClonedProbe for Option<&Effect> {
    fn cloned_probe(self) -> Option<Effect> {
        match self {
            Some(Effect::StartProbe { stamp }) => Some(Effect::StartProbe { stamp: *stamp }),
            _ => None,
        }
    }
}

// Invariant 10: fresh TOTP (the machine's side: what a code's failure does).

#[test]
fn invariant_10_fresh_totp_a_code_rejected_twice_locks_out_but_is_not_remembered() {
    let mut r = Rig::new(BrokerId::KotakNeo);
    r.token(S, false);
    let e = r.fails(BrokerError::CodeRejected("invalid TOTP, twice".into()));
    assert_eq!(r.m.phase(), Phase::LockedOut);
    assert!(
        !e.list
            .iter()
            .any(|e| matches!(e, Effect::PersistRejection(_)))
    );
    // The next code is a new one: the operator's login may try at once.
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-a".into(),
    });
    assert_eq!(logins(&e), 1);
}

#[test]
fn invariant_10_fresh_totp_a_window_record_that_cannot_be_written_is_a_transient_failure() {
    let mut r = Rig::new(BrokerId::KotakNeo);
    r.token(S, false);
    r.fails(BrokerError::Transient(
        "the TOTP window could not be recorded".into(),
    ));
    assert!(matches!(r.m.phase(), Phase::Backoff { .. }));
    assert!(r.m.rejected.is_empty());
}

#[test]
fn invariant_10_fresh_totp_windows_are_planned_in_virtual_time() {
    use crate::brokers::totp_gate::plan;
    let min = Duration::from_secs(5);
    // 10 s into a window: the current one.
    assert_eq!(plan(30_000 * 100 + 10_000, min, None).step, 100);
    // 3 s left: the next one, waited for.
    let p = plan(30_000 * 100 + 27_000, min, None);
    assert_eq!((p.step, p.wait), (101, Duration::from_secs(3)));
    // The current window already used: the next one, never the same.
    let p = plan(30_000 * 100 + 10_000, min, Some(100));
    assert_eq!((p.step, p.wait), (101, Duration::from_secs(20)));
}

// Invariant 14: a person, not a loop, logs interactive accounts in.

#[test]
fn invariant_14_interactive_no_login_by_itself_only_auth_required_announced_once() {
    let mut r = Rig::new(BrokerId::Zerodha);
    let e = r.token(S, false);
    assert_eq!(logins(&e), 0);
    assert_eq!(r.m.phase(), Phase::AuthRequired);
    assert!(e.list.contains(&Effect::Announce(EventKind::AuthRequired)));
    assert!(e.list.contains(&Effect::RetireLink));
    for _ in 0..10 {
        let e = r.token(S, false);
        assert!(e.list.is_empty(), "{:?}", e.list);
        assert!(r.tick().list.is_empty());
    }
}

#[test]
fn invariant_14_interactive_sessions_are_never_refreshed_early() {
    let mut r = Rig::new(BrokerId::Breeze);
    r.feed(Input::Submit);
    let s = r.succeeds(3600 * S);
    assert_eq!(r.m.refresh_at(), Some(s.expires_at));
    assert_eq!(wake_at(&r.tick()), Some(s.expires_at));
    // Too little left for the caller: not a reason to wake a person.
    r.advance(3590 * S);
    let e = r.token(60 * S, false);
    assert_eq!(failed(e).code, ErrorCode::Unavailable);
    // At the cut-off: a call for a person, no login.
    r.advance(10 * S);
    let e = r.tick();
    assert_eq!(logins(&e), 0);
    assert_eq!(r.m.phase(), Phase::AuthRequired);
}

#[test]
fn invariant_14_interactive_a_submission_lifts_a_lock_out_and_a_failed_one_keeps_the_session() {
    let mut r = Rig::new(BrokerId::Zerodha);
    r.feed(Input::Submit);
    let s = r.succeeds(3600 * S);
    r.feed(Input::Submit);
    r.fails(BrokerError::Rejected("invalid api_key".into()));
    assert_eq!(r.m.phase(), Phase::LockedOut);
    let e = r.feed(Input::Submit);
    assert!(matches!(e.answer, Answer::Generation(g) if g == s.generation));
    assert!(e.list.contains(&Effect::StartLogin {
        reason: "browser login submitted",
        logouts: 0,
        exchange: true,
        renew: false
    }));
    r.fails(BrokerError::BadSubmission("token used".into()));
    assert_eq!(r.m.phase(), Phase::Idle);
    assert!(matches!(r.token(S, false).answer, Answer::Serve(x) if x == s));
}

#[test]
fn invariant_14_interactive_reminders_come_daily_at_remind_at() {
    let mut r = Rig::new(BrokerId::Zerodha);
    // 1_800_000_000 is 2027-01-15 08:00 UTC, 13:30 IST; remind at 08:30 IST.
    let reminder = Reminder {
        remind_at: chrono::NaiveTime::from_hms_opt(8, 30, 0),
        expiring_notice: Duration::from_secs(900),
    };
    r.token(S, false);
    let e = r.feed(Input::Tick {
        reminder: Some(reminder.clone()),
    });
    let due = wake_at(&e).expect("a reminder is planned");
    assert_eq!(due, r.now + 19 * 3600 * S);
    r.now = due;
    let e = r.feed(Input::Tick {
        reminder: Some(reminder.clone()),
    });
    assert!(e.list.contains(&Effect::Announce(EventKind::AuthRequired)));
    assert_eq!(wake_at(&e), Some(due + 24 * 3600 * S));
    // A session's `expiring` notice comes once, 15 minutes before its end.
    r.feed(Input::Submit);
    let s = r.succeeds(3600 * S);
    let e = r.feed(Input::Tick {
        reminder: Some(reminder.clone()),
    });
    assert_eq!(wake_at(&e), Some(s.expires_at - 900 * S));
    r.now = s.expires_at - 900 * S;
    let e = r.feed(Input::Tick {
        reminder: Some(reminder.clone()),
    });
    assert!(e.list.contains(&Effect::Announce(EventKind::Expiring)));
    let e = r.feed(Input::Tick {
        reminder: Some(reminder),
    });
    assert!(!e.list.contains(&Effect::Announce(EventKind::Expiring)));
}

#[test]
fn the_audit_trail_records_a_login_before_its_renewed_event() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(S, false);
    let generation = r.begins("creds-a");
    let e = r.publish(Fake {
        generation,
        obtained_at: r.now,
        expires_at: r.now + 3600 * S,
    });
    let audit = e.list.iter().position(|e| {
        matches!(
            e,
            Effect::Audit {
                event: AuditEvent::LoginOk,
                ..
            }
        )
    });
    let renewed = e.list.iter().position(|e| {
        matches!(
            e,
            Effect::Publish {
                kind: EventKind::Renewed,
                ..
            }
        )
    });
    assert!(audit.is_some() && audit < renewed, "{:?}", e.list);
}
