//! The socket protocol: shapes, limits, errors that keep the connection,
//! events, logout, and the socket's life cycle.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use brokerd::brokers::Api;
use brokerd::client::Client;
use common::{Harness, error_code, session};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_status_and_the_session_shape() {
    let h = Harness::start("login_at_start = false").await;
    let hello = h.call(json!({"id": 1, "op": "hello"})).await;
    assert_eq!(hello["id"], 1);
    assert_eq!(hello["daemon"], "brokerd");
    assert_eq!(hello["protocol"], 1);
    let empty = h.status_of("interactive").await;
    assert_eq!(empty["state"], "empty");
    let reply = h.call(json!({"id": "abc", "op": "token", "broker": "jainam", "account": "main", "min_valid_secs": 60, "wait_secs": 10})).await;
    assert_eq!(reply["id"], "abc");
    let s = session(&reply);
    for key in [
        "broker",
        "account",
        "api",
        "generation",
        "token",
        "expires_at",
        "obtained_at",
        "headers",
        "fields",
    ] {
        assert!(s.get(key).is_some(), "session has {key}: {s}");
    }
    assert!(s["expires_at"].as_str().unwrap().ends_with("+05:30"));
    assert_eq!(s["fields"]["user_id"], "DEMO01");
    assert_eq!(s["fields"]["is_investor_client"], true);
    let st = h.status_of("interactive").await;
    assert_eq!(st["state"], "active");
    assert_eq!(st["generation"], 1);
    assert!(st["expires_in_secs"].as_i64().unwrap() > 3600);
    assert!(st.get("token").is_none());
}

/// Both Jainam sessions carry exactly the fields of docs/protocol.md, with
/// the simulator's values and its address as `api_root`, and no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jainam_sessions_carry_the_documented_fields() {
    let h = Harness::start("login_at_start = false").await;
    let root = h.sim.base_url();
    // The app keys too: the SDK needs them only to log in, so they never travel.
    let keys = [
        "demo-interactive-key",
        "demo-interactive-secret",
        "demo-market-key",
        "demo-market-secret",
    ];
    let interactive = h.token("interactive").await;
    let token = session(&interactive)["token"].as_str().unwrap().to_string();
    common::assert_session_fields(
        &interactive,
        json!({"api_root": root, "user_id": "DEMO01", "is_investor_client": true,
               "client_codes": ["DEMO01"]}),
        &keys,
        &[&token],
    );
    let market = h.token("market").await;
    let token = session(&market)["token"].as_str().unwrap().to_string();
    common::assert_session_fields(
        &market,
        json!({"api_root": root, "market_prefix": "/apibinarymarketdata", "user_id": "DEMO01",
               "app_version": "1.0.0", "application_expiry_date": "2027-03-31"}),
        &keys,
        &[&token],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_get_errors_and_the_connection_lives_on() {
    let h = Harness::start("login_at_start = false").await;
    let mut c = h.client().await;
    c.send_line("this is not json").await.unwrap();
    assert_eq!(error_code(&c.next().await.unwrap().unwrap()), "bad_request");
    c.send_line(r#"{"id":5,"op":"token","acount":"main"}"#)
        .await
        .unwrap();
    let typo = c.next().await.unwrap().unwrap();
    assert_eq!(error_code(&typo), "bad_request");
    assert_eq!(typo["id"], 5, "the id survives a bad request");
    assert_eq!(
        error_code(&c.call(&json!({"op": "fly"})).await.unwrap()),
        "unknown_op"
    );
    assert_eq!(
        error_code(
            &c.call(&json!({"op": "token", "broker": "nasdaq"}))
                .await
                .unwrap()
        ),
        "unknown_account"
    );
    assert_eq!(
        error_code(
            &c.call(&json!({"op": "token", "broker": "jainam", "account": "other"}))
                .await
                .unwrap()
        ),
        "unknown_account"
    );
    assert_eq!(
        error_code(&c.call(&json!({"op": "token"})).await.unwrap()),
        "bad_request"
    );
    assert_eq!(
        error_code(
            &c.call(&json!({"op": "invalidate", "broker": "jainam"}))
                .await
                .unwrap()
        ),
        "bad_request"
    );
    // Still alive after all of that.
    assert_eq!(c.call(&json!({"op": "hello"})).await.unwrap()["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_line_gets_too_large_and_the_connection_closes() {
    let h = Harness::start("login_at_start = false").await;
    let mut c = h.client().await;
    let huge = format!(r#"{{"op":"hello","reason":"{}"}}"#, "x".repeat(70 * 1024));
    c.send_line(&huge).await.unwrap();
    assert_eq!(error_code(&c.next().await.unwrap().unwrap()), "too_large");
    assert!(
        c.next().await.map(|l| l.is_none()).unwrap_or(true),
        "closed after too_large"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_broker_session_and_tells_subscribers() {
    let h = Harness::start("login_at_start = false").await;
    let mut events = h.client().await;
    assert_eq!(
        events.call(&json!({"op": "subscribe"})).await.unwrap()["ok"],
        true
    );
    let token = session(&h.token("interactive").await)["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(events.next().await.unwrap().unwrap()["event"], "renewed");
    assert_eq!(
        h.call(json!({"op": "logout", "broker": "jainam"})).await["ok"],
        true
    );
    assert_eq!(h.sim.logout_count(Api::Interactive), 1);
    assert!(!h.sim.is_token_valid(&token));
    let e = events.next().await.unwrap().unwrap();
    assert_eq!(
        (e["event"].as_str(), e["generation"].as_u64()),
        (Some("logged_out"), Some(1))
    );
    assert_eq!(h.status_of("interactive").await["state"], "empty");
    // Generations never go back, even after a logout.
    assert_eq!(session(&h.token("interactive").await)["generation"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_the_documented_families() {
    let h = Harness::start("login_at_start = false").await;
    session(&h.token("interactive").await);
    let text = h.call(json!({"op": "metrics"})).await["text"]
        .as_str()
        .unwrap()
        .to_string();
    for family in [
        "brokerd_session_expires_in_seconds",
        "brokerd_session_generation",
        "brokerd_logins_total",
        "brokerd_invalidations_total",
        "brokerd_token_requests_total",
        "brokerd_request_duration_seconds_bucket",
        "brokerd_connections_refused_per_uid_total",
        "brokerd_connections_stalled_total",
    ] {
        assert!(text.contains(family), "{family} missing");
    }
    assert!(text.contains("brokerd_logins_total{broker=\"jainam\",account=\"main\",api=\"interactive\",result=\"ok\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_private_and_a_second_daemon_refuses_to_start() {
    let mut h = Harness::start("login_at_start = false").await;
    let mode = std::fs::metadata(h.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let dir_mode = std::fs::metadata(h.socket().parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o750);
    // A second daemon on the same state directory names the holder.
    let loaded = h.load(&h.config_text());
    let err = brokerd::daemon::start(loaded)
        .await
        .err()
        .expect("second daemon refused")
        .to_string();
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    // The first one still serves.
    assert_eq!(h.call(json!({"op": "hello"})).await["ok"], true);
    // A socket file left behind by a killed daemon is replaced.
    h.stop().await;
    let _stale = std::os::unix::net::UnixListener::bind(h.socket()).unwrap();
    drop(_stale);
    assert!(h.socket().exists());
    h.boot().await;
    assert_eq!(h.call(json!({"op": "hello"})).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_socket_of_another_daemon_is_not_stolen() {
    let h = Harness::start("login_at_start = false").await;
    let other_dir = tempfile::tempdir().unwrap();
    let text = h.config_text().replace(
        &format!("state_dir = \"{}/state\"", h.dir.path().display()),
        &format!("state_dir = \"{}/state\"", other_dir.path().display()),
    );
    let loaded = h.load(&text);
    let err = format!(
        "{:#}",
        brokerd::daemon::start(loaded).await.err().expect("refused")
    );
    assert!(err.contains("another brokerd (pid"), "{err}");
    assert_eq!(h.call(json!({"op": "hello"})).await["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let mut h = Harness::start("login_at_start = false").await;
    h.restart_with_limits("idle_timeout = \"300ms\"").await;
    let mut c = Client::connect(&h.socket()).await.unwrap();
    assert_eq!(c.call(&json!({"op": "hello"})).await.unwrap()["ok"], true);
    let closed = tokio::time::timeout(Duration::from_secs(3), c.next())
        .await
        .expect("closed by the daemon");
    assert!(matches!(closed, Ok(None) | Err(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_get_a_clear_error() {
    let mut h = Harness::start("login_at_start = false").await;
    // Both connections are this test's uid: let it hold every slot, so that
    // the daemon-wide cap is what refuses the third.
    h.restart_with_limits("max_connections = 2\nmax_connections_per_uid = 2")
        .await;
    let mut a = Client::connect(&h.socket()).await.unwrap();
    let mut b = Client::connect(&h.socket()).await.unwrap();
    assert_eq!(a.call(&json!({"op": "hello"})).await.unwrap()["ok"], true);
    assert_eq!(b.call(&json!({"op": "hello"})).await.unwrap()["ok"], true);
    let mut c = Client::connect(&h.socket()).await.unwrap();
    let refused = c.next().await.unwrap().unwrap();
    assert_eq!(error_code(&refused), "unavailable");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many connections")
    );
    drop(a);
    // The freed slot is usable again.
    let mut ok = false;
    for _ in 0..50 {
        let mut d = Client::connect(&h.socket()).await.unwrap();
        if d.call(&json!({"op": "hello"}))
            .await
            .map(|r| r["ok"] == true)
            .unwrap_or(false)
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_during_a_login_is_not_undone_by_that_login() {
    let h = Harness::start("login_at_start = false").await;
    let mut events = h.client().await;
    events
        .call(&json!({"op": "subscribe", "brokers": ["jainam"]}))
        .await
        .unwrap();
    h.sim.set_latency(Duration::from_millis(800));
    let started = h
        .call(json!({"op": "login", "broker": "jainam", "wait_secs": 0}))
        .await;
    assert_eq!(
        error_code(&started),
        "timeout",
        "the login is still in flight"
    );
    // Logging out an empty slot tells nobody anything.
    assert_eq!(
        h.call(json!({"op": "logout", "broker": "jainam"})).await["ok"],
        true
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        h.status_of("interactive").await["state"],
        "empty",
        "the late login was not published"
    );
    assert_eq!(h.sim.successful_logins(Api::Interactive), 1);
    assert_eq!(
        h.sim.logout_count(Api::Interactive),
        1,
        "and it was ended at the broker"
    );
    h.sim.set_latency(Duration::ZERO);
    assert_eq!(session(&h.token("interactive").await)["generation"], 2);
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(
        (first["event"].as_str(), first["generation"].as_u64()),
        (Some("renewed"), Some(2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_refuses_unknown_broker_names() {
    let h = Harness::start("login_at_start = false").await;
    let reply = h
        .call(json!({"op": "subscribe", "brokers": ["jainaam"]}))
        .await;
    assert_eq!(error_code(&reply), "bad_request");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("jainaam")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_not_utf8_gets_bad_request_and_the_connection_lives_on() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let h = Harness::start("login_at_start = false").await;
    let stream = tokio::net::UnixStream::connect(h.socket()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"{\"op\":\"hel\xff\xfelo\"}\n")
        .await
        .unwrap();
    let reply: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(error_code(&reply), "bad_request");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UTF-8")
    );
    // CRLF line endings are accepted too.
    write
        .write_all(b"{\"id\":2,\"op\":\"hello\"}\r\n")
        .await
        .unwrap();
    let hello: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (hello["id"].as_u64(), hello["ok"].as_bool()),
        (Some(2), Some(true))
    );
}
