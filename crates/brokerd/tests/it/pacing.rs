//! Paced broker traffic (ARCHITECTURE invariant 19), counted at the
//! simulator: a desk's cold start reaches the broker host no faster than
//! its pace and with no more logins in flight than its concurrency, each
//! session logs in exactly once, a 429 slows the host down, a queued login
//! says where it stands, and a stop does not wait for the queue.

use crate::common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use brokerd::brokers::Api;
use brokerd::protocol::{self, Request};
use common::{Harness, error_code};
use serde_json::Value;

/// Every session of the desk, from `status`.
async fn statuses(h: &Harness) -> Vec<Value> {
    let st = h.request(&Request::Status(protocol::Status {})).await;
    st["accounts"].as_array().expect("accounts").clone()
}

async fn all_active(h: &Harness, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if statuses(h).await.iter().all(|s| s["state"] == "active") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Login arrivals at the simulator (by its clock, the system's here), both
/// apis, in order.
fn arrivals(h: &Harness) -> Vec<DateTime<Utc>> {
    let mut all = h.sim.login_times(Api::Interactive);
    all.extend(h.sim.login_times(Api::Market));
    all.sort();
    all
}

/// The most arrivals in any window of `width`.
fn most_within(times: &[DateTime<Utc>], width: Duration) -> usize {
    let width = chrono::Duration::from_std(width).unwrap();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t - times[i] < width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_of_a_desk_keeps_to_the_hosts_rate_and_logs_each_session_in_once() {
    // 12 accounts + main = 26 sessions at 20 logins a second.
    let h = Harness::start_desk(
        12,
        "[daemon.pacing.jainam]\nconcurrency = 8\nper_second = 20",
        Duration::from_millis(10),
    )
    .await;
    assert!(
        all_active(&h, Duration::from_secs(20)).await,
        "{:?}",
        statuses(&h).await
    );
    let times = arrivals(&h);
    assert_eq!(times.len(), 26, "exactly one login per session");
    assert_eq!(h.sim.login_count(Api::Interactive), 13);
    assert_eq!(h.sim.login_count(Api::Market), 13);
    // 20 a second, spaced 50 ms: at most 21 in any second (both ends).
    let peak = most_within(&times, Duration::from_secs(1));
    assert!(peak <= 21, "peak {peak} logins in one second at 20/s");
    // And not spread out for nothing: 26 logins at 20/s take about 1.25 s.
    let span = *times.last().unwrap() - times[0];
    assert!(
        span >= chrono::Duration::milliseconds(1100),
        "span {span:?}: not paced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_logins_in_flight_than_the_hosts_concurrency() {
    // Each login takes 200 ms at the simulator; two at a time.
    let latency = Duration::from_millis(200);
    let h = Harness::start_desk(
        5,
        "[daemon.pacing.jainam]\nconcurrency = 2\nper_second = 1000",
        latency,
    )
    .await;
    assert!(all_active(&h, Duration::from_secs(20)).await);
    let times = arrivals(&h);
    assert_eq!(times.len(), 12, "exactly one login per session");
    // A login holds its slot from sending to the answer, which the
    // simulator gives `latency` after it records the arrival: two
    // arrivals closer than that were in flight together.
    let together = most_within(&times, latency - Duration::from_millis(20));
    assert!(
        together <= 2,
        "{together} logins in flight at once, concurrency 2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_slows_the_host_and_the_login_is_retried() {
    let h = Harness::start_desk(
        0,
        "[daemon.pacing.jainam]\nconcurrency = 4\nper_second = 50",
        Duration::ZERO,
    )
    .await;
    assert!(all_active(&h, Duration::from_secs(10)).await);
    let before = h.sim.login_count(Api::Interactive);
    // The broker rate-limits the next login; the slot backs off and the
    // host's pace is cut, then the login goes through.
    h.sim.fail_next_logins(
        Api::Interactive,
        1,
        brokerd_sim::xts::FailMode::ServerError(429),
    );
    h.sim.reject_all_now();
    let reply = h
        .call(
            serde_json::json!({"op": "invalidate", "broker": "jainam", "account": "main",
            "api": "interactive", "generation": 1, "reason": "Invalid Token"}),
        )
        .await;
    assert_eq!(error_code(&reply), "unavailable", "{reply}");
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("429"),
        "{reply}"
    );
    assert!(all_active(&h, Duration::from_secs(20)).await);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        before + 2,
        "the rate-limited login and one retry"
    );
    let metrics = h.request(&Request::Metrics(protocol::Metrics {})).await;
    let text = metrics["text"].as_str().unwrap_or_default().to_string();
    let sample = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{host=\"127.0.0.1:")))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    assert_eq!(
        sample("brokerd_pacing_rate_limited_total").as_deref(),
        Some("1"),
        "{text}"
    );
    // Halved after the 429 (it doubles back after 10 calm seconds).
    assert_eq!(
        sample("brokerd_pacing_rate").as_deref(),
        Some("25"),
        "{text}"
    );
    assert_eq!(
        sample("brokerd_pacing_configured_rate").as_deref(),
        Some("50"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_login_says_where_it_stands_and_a_stop_does_not_wait_for_the_queue() {
    // One login at a time, one a second: 8 sessions take about 7 s, longer
    // than the stop's 5 s grace.
    let mut h = Harness::start_desk(
        3,
        "[daemon.pacing.jainam]\nconcurrency = 1\nper_second = 1",
        Duration::ZERO,
    )
    .await;
    // The logins join the queue as the slots' loops start them.
    let mut queued: Vec<Value> = Vec::new();
    for _ in 0..100 {
        queued = statuses(&h)
            .await
            .into_iter()
            .filter(|s| s["queued_behind"].is_u64())
            .collect();
        if queued.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !queued.is_empty(),
        "some logins are queued right after the start"
    );
    for s in &queued {
        assert_eq!(s["state"], "refreshing", "{s}");
        assert!(s["retry_after_secs"].as_u64().unwrap() >= 1, "{s}");
    }
    let last = queued
        .iter()
        .max_by_key(|s| s["queued_behind"].as_u64())
        .unwrap();
    let reply = h
        .request(&Request::Token(protocol::Token {
            broker: Some("jainam".into()),
            account: Some(last["account"].as_str().unwrap().into()),
            api: Some(last["api"].as_str().unwrap().into()),
            wait_secs: Some(0),
            ..protocol::Token::default()
        }))
        .await;
    assert_eq!(error_code(&reply), "timeout", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("queued for 127.0.0.1:"), "{message}");
    assert!(
        reply["error"]["retry_after_secs"].as_u64().unwrap() >= 1,
        "{reply}"
    );
    // A stop gives the queue up at once instead of waiting out its grace
    // (5 s here) for logins that have not started.
    let stopping = Instant::now();
    h.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        stopping.elapsed()
    );
    let sent = h.sim.login_count(Api::Interactive) + h.sim.login_count(Api::Market);
    assert!(sent < 8, "the queued logins were not sent ({sent})");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        h.sim.login_count(Api::Interactive) + h.sim.login_count(Api::Market),
        sent,
        "nothing is sent after the stop"
    );
}
