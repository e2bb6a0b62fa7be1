//! Unit tests of the roles several daemons on one store give a slot
//! (ARCHITECTURE invariant 20): a follower never starts a login, asks the
//! leader once per wait and each dead generation once, serves what the
//! leader publishes; a new leader serves a still-valid session without a
//! login; a detached daemon logs in for nobody.

use super::role::LEADER_WAIT;
use super::tests::{Fake, Rig, S, failed, logins, published};
use super::*;
use crate::brokers::BrokerId;
use crate::session::error::ErrorCode;
use crate::session::events::EventKind;
use crate::store::postgres::ha::AskKind;

/// The asks the effects send to the leader: (kind, generation).
fn asks(e: &Effects<Fake>) -> Vec<(AskKind, u64)> {
    e.list
        .iter()
        .filter_map(|e| match e {
            Effect::AskLeader {
                kind, generation, ..
            } => Some((*kind, *generation)),
            _ => None,
        })
        .collect()
}

fn role(r: &mut Rig, role: Role, address_bound: bool) -> Effects<Fake> {
    r.feed(Input::Role {
        role,
        address_bound,
    })
}

/// A session of `generation` obtained now, lasting `lifetime`.
fn fake(r: &Rig, generation: u64, lifetime: Duration) -> Fake {
    Fake {
        generation,
        obtained_at: r.now,
        expires_at: r.now + lifetime,
    }
}

/// The leader published generation `generation` lasting `lifetime`.
fn adopt(r: &mut Rig, generation: u64, lifetime: Duration, elsewhere: bool) -> Effects<Fake> {
    let session = fake(r, generation, lifetime);
    r.feed(Input::Adopt {
        session,
        elsewhere,
        jitter: 0.0,
    })
}

fn follower() -> Rig {
    let mut r = Rig::new(BrokerId::Jainam);
    role(&mut r, Role::Follows, false);
    r
}

#[test]
fn a_follower_asks_the_leader_once_and_never_logs_in() {
    let mut r = follower();
    let mut all_asks = Vec::new();
    for _ in 0..20 {
        let e = r.token(30 * S, false);
        assert!(matches!(e.answer, Answer::Wait { .. }), "{:?}", e.answer);
        assert_eq!(logins(&e), 0);
        all_asks.extend(asks(&e));
    }
    assert_eq!(
        all_asks,
        vec![(AskKind::Login, 0)],
        "one ask for twenty waiters"
    );
    assert_eq!(r.m.state(r.now).0, crate::session::State::Refreshing);
    // The schedule of a follower starts nothing either.
    r.advance(5 * S);
    let e = r.tick();
    assert_eq!((logins(&e), asks(&e).len()), (0, 0));
    // The leader's session arrives: every waiter is served it.
    let e = adopt(&mut r, 1, 3600 * S, true);
    assert!(published(&e, EventKind::Renewed));
    assert_eq!(r.m.phase(), Phase::Idle);
    match r.token(30 * S, true).answer {
        Answer::Serve(s) => assert_eq!(s.generation, 1),
        other => panic!("{other:?}"),
    }
    // Its refresh is the leader's business: no login however long it runs.
    r.advance(3599 * S);
    let e = r.tick();
    assert_eq!((logins(&e), asks(&e).len()), (0, 0));
}

#[test]
fn a_follower_passes_each_dead_generation_on_once_and_stale_ones_never() {
    let mut r = follower();
    adopt(&mut r, 4, 3600 * S, true);
    let mut all = Vec::new();
    for _ in 0..10 {
        let e = r.report(4);
        assert_eq!(logins(&e), 0);
        all.extend(asks(&e));
    }
    assert_eq!(all, vec![(AskKind::Report, 4)]);
    // The leader's generation 5 lands; late reports of 4 are stale.
    adopt(&mut r, 5, 3600 * S, true);
    let e = r.report(4);
    assert!(matches!(e.answer, Answer::Invalidated(Invalidation::Stale)));
    assert!(asks(&e).is_empty());
    // A follower counts no deaths: only the leader decides `conflict`.
    for g in 5..9 {
        r.report(g);
        adopt(&mut r, g + 1, 3600 * S, true);
    }
    assert_eq!(r.m.phase(), Phase::Idle);
}

#[test]
fn an_older_publication_never_replaces_a_newer_session() {
    let mut r = follower();
    adopt(&mut r, 7, 3600 * S, true);
    let e = adopt(&mut r, 6, 7200 * S, true);
    assert!(!published(&e, EventKind::Renewed));
    assert_eq!(r.m.live().map(|s| s.generation), Some(7));
}

#[test]
fn a_follower_stops_waiting_for_a_silent_leader_and_asks_again_later() {
    let mut r = follower();
    assert_eq!(asks(&r.token(30 * S, false)).len(), 1);
    r.advance(LEADER_WAIT + S);
    r.tick();
    assert_eq!(r.m.phase(), Phase::Idle);
    let err = failed(r.token(30 * S, true));
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("leading daemon"), "{}", err.message);
    // A new request asks again.
    assert_eq!(asks(&r.token(30 * S, false)), vec![(AskKind::Login, 0)]);
}

#[test]
fn taking_the_lead_of_a_valid_session_costs_no_login() {
    let mut r = follower();
    r.token(30 * S, false);
    adopt(&mut r, 3, 3600 * S, true);
    let e = role(&mut r, Role::Leads, false);
    assert_eq!(logins(&e), 0);
    assert_eq!(r.m.phase(), Phase::Idle);
    // It is now this daemon's to refresh.
    r.advance(3600 * S - 60 * S);
    assert_eq!(logins(&r.tick()), 1);
}

#[test]
fn taking_the_lead_with_nothing_valid_logs_in_once() {
    let mut r = follower();
    r.token(30 * S, false); // wants a session; asks a leader that died
    let e = role(&mut r, Role::Leads, false);
    assert_eq!(logins(&e), 1);
    assert_eq!(r.m.phase(), Phase::LoggingIn);
}

#[test]
fn taking_the_lead_of_an_address_bound_session_from_another_host_logs_in_and_serves_meanwhile() {
    let mut r = Rig::new(BrokerId::KotakNeo);
    role(&mut r, Role::Follows, false);
    adopt(&mut r, 2, 3600 * S, true);
    let e = role(&mut r, Role::Leads, true);
    assert_eq!(logins(&e), 1);
    // Served until the new one lands, as during a refresh.
    assert!(matches!(r.token(30 * S, false).answer, Answer::Serve(_)));
    // A session this host created is not logged in again (the lock loop
    // says so: not bound elsewhere).
    let mut r = Rig::new(BrokerId::KotakNeo);
    role(&mut r, Role::Follows, false);
    adopt(&mut r, 2, 3600 * S, false);
    assert_eq!(logins(&role(&mut r, Role::Leads, false)), 0);
}

#[test]
fn a_follower_does_not_fix_an_ip_mismatch_of_another_hosts_session() {
    let mut r = Rig::new(BrokerId::KotakNeo);
    role(&mut r, Role::Follows, false);
    adopt(&mut r, 2, 3600 * S, true);
    assert!(!r.m.ip_mismatch_fixable(2));
    role(&mut r, Role::Leads, false);
    assert!(r.m.ip_mismatch_fixable(2));
}

#[test]
fn a_detached_daemon_serves_a_valid_session_and_logs_in_for_nobody() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.logged_in(3600 * S);
    let e = role(&mut r, Role::Detached, false);
    assert_eq!(logins(&e), 0);
    assert!(matches!(r.token(30 * S, false).answer, Answer::Serve(_)));
    // Reported dead: no login, no ask, and the next request is refused.
    let e = r.report(1);
    assert_eq!((logins(&e), asks(&e).len()), (0, 0));
    let err = failed(r.token(30 * S, false));
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("database"), "{}", err.message);
    // Nor does its schedule.
    r.advance(7200 * S);
    assert_eq!(logins(&r.tick()), 0);
}

#[test]
fn a_login_that_finds_it_no_longer_leads_is_refunded_and_ends() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(30 * S, false);
    assert_eq!(r.m.phase(), Phase::LoggingIn);
    let before = r.m.logins_last_hour(r.now);
    r.feed(Input::NotLeader);
    assert_eq!(r.m.phase(), Phase::Idle);
    assert_eq!(r.m.logins_last_hour(r.now), before - 1);
    assert_eq!(r.m.role(), Role::Detached);
}

#[test]
fn the_leader_logging_out_is_forgotten_by_followers() {
    let mut r = follower();
    adopt(&mut r, 2, 3600 * S, true);
    // A late notice of an older logout keeps the newer session.
    adopt(&mut r, 3, 3600 * S, true);
    let e = r.feed(Input::Gone { generation: 2 });
    assert!(!published(&e, EventKind::LoggedOut));
    assert_eq!(r.m.live().map(|s| s.generation), Some(3));
    let e = r.feed(Input::Gone { generation: 3 });
    assert!(published(&e, EventKind::LoggedOut));
    assert!(r.m.live().is_none());
}

#[test]
fn a_follower_whose_report_was_lost_asks_again_as_a_report_not_a_login() {
    let mut r = follower();
    adopt(&mut r, 4, 3600 * S, true);
    assert_eq!(asks(&r.report(4)), vec![(AskKind::Report, 4)]);
    // The ask was lost (the leader died after claiming it): once the wait
    // ends, a token request asks about generation 4 again, as a report,
    // so the leader does not answer with that same dead session.
    r.advance(LEADER_WAIT + S);
    r.tick();
    let e = r.token(30 * S, false);
    assert_eq!(asks(&e), vec![(AskKind::Report, 4)]);
    // Twenty more waiters: no more asks while it waits.
    for _ in 0..20 {
        assert!(asks(&r.token(30 * S, false)).is_empty());
    }
}

#[test]
fn a_report_taken_while_detached_reaches_the_leader_on_rejoining() {
    let mut r = follower();
    adopt(&mut r, 4, 3600 * S, true);
    role(&mut r, Role::Detached, false);
    let e = r.report(4);
    assert!(asks(&e).is_empty(), "nobody to ask while detached");
    let e = role(&mut r, Role::Follows, false);
    assert_eq!(asks(&e), vec![(AskKind::Report, 4)]);
}

#[test]
fn an_operators_login_on_a_follower_is_always_passed_on() {
    let mut r = follower();
    assert_eq!(asks(&r.token(30 * S, false)).len(), 1);
    // Already waiting for the leader: the operator's login still goes.
    let e = r.feed(Input::OperatorLogin {
        fingerprint: "creds-b".into(),
    });
    assert_eq!(asks(&e).first().map(|a| a.0), Some(AskKind::OperatorLogin));
}

#[test]
fn losing_the_lead_forgets_its_waits_but_never_a_lock_out() {
    let mut r = Rig::new(BrokerId::Jainam);
    r.token(30 * S, false);
    r.fails(crate::brokers::BrokerError::Transient("503".into()));
    assert!(matches!(r.m.phase(), Phase::Backoff { .. }));
    role(&mut r, Role::Detached, false);
    assert_eq!(r.m.phase(), Phase::Idle, "the backoff was the leader's own");

    let mut r = Rig::new(BrokerId::Jainam);
    r.token(30 * S, false);
    r.fails(crate::brokers::BrokerError::Rejected(
        "wrong password".into(),
    ));
    assert_eq!(r.m.phase(), Phase::LockedOut);
    role(&mut r, Role::Detached, false);
    role(&mut r, Role::Follows, false);
    assert_eq!(
        r.m.phase(),
        Phase::LockedOut,
        "rejected credentials stay refused"
    );
    // And taking the lead back does not send them either.
    let e = role(&mut r, Role::Leads, false);
    assert_eq!(logins(&e), 0);
}
