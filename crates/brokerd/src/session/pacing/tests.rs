//! The host limiter on a manual clock: starts per second, calls in flight,
//! first come first served, places in the queue, and the 429 cut and
//! recovery. Time is moved, never slept through.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::*;
use brokerd_core::time::{Clock, ManualClock};

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-30T03:30:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn pacer(concurrency: usize, per_second: f64, clock: &Arc<ManualClock>) -> Arc<HostPacer> {
    let clock: SharedClock = clock.clone();
    HostPacer::new(
        "broker.example:443".into(),
        Pace::new(concurrency, per_second),
        clock,
    )
}

/// Lets spawned tasks run as far as they can without time moving.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Moves the clock in `step`s for `total`, letting tasks run after each.
async fn run_for(clock: &ManualClock, total: Duration, step: Duration) {
    let mut gone = Duration::ZERO;
    while gone < total {
        clock.advance(chrono::Duration::from_std(step).unwrap());
        gone += step;
        settle().await;
    }
}

/// Spawns `n` callers that each take a ticket in order, are admitted, send
/// (their index, the clock at admission) and hold the admission for `hold`
/// of virtual time.
async fn callers(
    pacer: &Arc<HostPacer>,
    clock: &Arc<ManualClock>,
    n: usize,
    hold: Option<Duration>,
) -> mpsc::UnboundedReceiver<(usize, DateTime<Utc>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let ticket = pacer.ticket();
        let tx = tx.clone();
        let clock = Arc::clone(clock);
        tokio::spawn(async move {
            let admission = ticket.admit().await;
            let _ = tx.send((i, clock.now()));
            if let Some(hold) = hold {
                let until = clock.now() + chrono::Duration::from_std(hold).unwrap();
                brokerd_core::time::sleep_until(&*clock, until, tokio::time::sleep).await;
            }
            drop(admission);
        });
        settle().await;
    }
    rx
}

fn drain(rx: &mut mpsc::UnboundedReceiver<(usize, DateTime<Utc>)>) -> Vec<(usize, f64)> {
    let mut out = Vec::new();
    while let Ok((i, at)) = rx.try_recv() {
        out.push((i, (at - start()).num_milliseconds() as f64 / 1000.0));
    }
    out
}

#[tokio::test]
async fn starts_are_spaced_by_the_rate_in_arrival_order() {
    let clock = ManualClock::new(start());
    let pacer = pacer(100, 4.0, &clock);
    let mut rx = callers(&pacer, &clock, 8, None).await;
    run_for(&clock, Duration::from_secs(3), Duration::from_millis(50)).await;
    let got = drain(&mut rx);
    assert_eq!(got.len(), 8, "{got:?}");
    for (k, (i, at)) in got.iter().enumerate() {
        assert_eq!(*i, k, "first come, first served: {got:?}");
        // 4 a second: the k-th starts at k/4 s (within one 50 ms step).
        let want = k as f64 * 0.25;
        assert!(
            (at - want).abs() < 0.051,
            "call {k} at {at}s, want {want}s: {got:?}"
        );
    }
}

#[tokio::test]
async fn no_more_than_concurrency_in_flight() {
    let clock = ManualClock::new(start());
    let pacer = pacer(2, 1000.0, &clock);
    let mut rx = callers(&pacer, &clock, 5, Some(Duration::from_secs(1))).await;
    // 1,000 a second: the second start is 1 ms after the first.
    run_for(&clock, Duration::from_millis(10), Duration::from_millis(10)).await;
    assert_eq!(drain(&mut rx).len(), 2, "two slots, two calls admitted");
    assert_eq!(pacer.waiting(), 3);
    run_for(
        &clock,
        Duration::from_millis(1000),
        Duration::from_millis(10),
    )
    .await;
    assert_eq!(
        drain(&mut rx).len(),
        2,
        "the next two once the first two answered"
    );
    run_for(
        &clock,
        Duration::from_millis(1000),
        Duration::from_millis(10),
    )
    .await;
    assert_eq!(drain(&mut rx).len(), 1);
    assert_eq!(pacer.waiting(), 0);
}

#[tokio::test]
async fn a_place_counts_who_is_ahead_and_a_dropped_ticket_leaves() {
    let clock = ManualClock::new(start());
    let pacer = pacer(1, 1.0, &clock);
    let first = pacer.ticket();
    let second = pacer.ticket();
    let third = pacer.ticket();
    assert_eq!(first.place().ahead, 0);
    assert_eq!(third.place().ahead, 2);
    // Two ahead at one a second, one at a time: about three seconds.
    assert_eq!(third.place().estimate, Duration::from_secs(3));
    drop(second);
    let admission = first.admit().await;
    assert_eq!(
        third.place().ahead,
        0,
        "the one ahead was admitted, the other left"
    );
    drop(admission);
    assert_eq!(pacer.waiting(), 1);
}

#[tokio::test]
async fn a_rate_limit_answer_halves_the_rate_then_it_recovers() {
    let clock = ManualClock::new(start());
    let pacer = pacer(10, 8.0, &clock);
    pacer.throttled();
    assert_eq!(pacer.current_rate(), 4.0);
    pacer.throttled();
    pacer.throttled();
    pacer.throttled();
    pacer.throttled();
    assert_eq!(
        pacer.current_rate(),
        0.5,
        "never below a sixteenth of the pace"
    );
    // Nothing starts during the cool-down.
    let mut rx = callers(&pacer, &clock, 1, None).await;
    run_for(
        &clock,
        Duration::from_millis(1900),
        Duration::from_millis(100),
    )
    .await;
    assert!(drain(&mut rx).is_empty(), "no call during the cool-down");
    run_for(
        &clock,
        Duration::from_millis(200),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(drain(&mut rx).len(), 1);
    // Each calm 10 s doubles it back, up to the pace.
    clock.advance(chrono::Duration::seconds(10));
    assert_eq!(pacer.current_rate(), 1.0);
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(pacer.current_rate(), 8.0);
    clock.advance(chrono::Duration::seconds(30));
    assert_eq!(pacer.current_rate(), 8.0, "never above the pace");
}

#[tokio::test]
async fn a_cut_rate_spaces_the_queue_wider() {
    let clock = ManualClock::new(start());
    let pacer = pacer(100, 10.0, &clock);
    pacer.throttled();
    let mut rx = callers(&pacer, &clock, 3, None).await;
    run_for(&clock, Duration::from_secs(3), Duration::from_millis(20)).await;
    let got = drain(&mut rx);
    let times: Vec<f64> = got.iter().map(|(_, at)| *at).collect();
    // The cool-down (2 s), then 5 a second instead of 10.
    assert_eq!(times.len(), 3, "{got:?}");
    assert!((times[0] - 2.0).abs() < 0.021, "{times:?}");
    assert!((times[1] - times[0] - 0.2).abs() < 0.021, "{times:?}");
    assert!((times[2] - times[1] - 0.2).abs() < 0.021, "{times:?}");
}

#[test]
fn hosts_are_keyed_by_host_and_port() {
    assert_eq!(
        host_of("https://jtrade.jainam.in:5000"),
        "jtrade.jainam.in:5000"
    );
    assert_eq!(host_of("https://api.kite.trade"), "api.kite.trade");
    assert_eq!(host_of("http://127.0.0.1:4100/x"), "127.0.0.1:4100");
    assert_eq!(host_of("not a url"), "not a url");
}
