//! No client can hold the connection slots hostage: a client that never
//! reads its replies is closed at the write deadline (and cannot hold up a
//! stop), a peer allowed nowhere is closed after its `forbidden`, one uid
//! cannot take more than its quota, idle request connections close while
//! quiet subscribe streams live on with heartbeats, and a subscriber that
//! stops reading is closed. During each attack a well-behaved client keeps
//! getting tokens; its latency is printed next to a baseline of the same
//! run (`cargo test --test hostages -- --nocapture` shows it).
//!
//! Attacks from another uid run in a child process: this test binary
//! itself, started as uid 65534 (nobody) in the group `daemon` with
//! `HOSTAGES_HELPER` set, which runs only the [`helper`] test. Needs root
//! (as tests/it/socket_folder.rs does); the test binary and its folders must
//! be reachable by nobody, which they are in the usual target/ folder.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{Harness, error_code, session};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::Instant;

/// A group every Debian system has: the socket's group, so nobody can
/// connect without the socket being open to every user.
const GROUP: &str = "daemon";
/// nobody: a uid that is neither root nor the daemon's.
const NOBODY: u32 = 65534;
/// Generous: a bound that only a stuck connection exceeds, even on a busy
/// two-core machine. The figures themselves are printed, not asserted.
const SLOW: Duration = Duration::from_secs(1);

/// The gid of group `name`, as the daemon resolves `socket_group`.
fn gid_of(name: &str) -> u32 {
    brokerd::server::socket_dir::resolve_group(name)
        .unwrap_or_else(|e| panic!("group {name} exists on this machine: {e}"))
}

/// A daemon whose socket nobody (in `GROUP`) can reach, with small limits:
/// 32 connections, 8 per uid unless `limits` says otherwise, a 300 ms write
/// deadline.
async fn start(daemon: &str, limits: &str) -> Harness {
    let sim = brokerd_sim::xts::XtsSim::start(brokerd_sim::xts::XtsSimConfig::default())
        .await
        .unwrap();
    let mut h = Harness {
        dir: tempfile::tempdir().unwrap(),
        sim,
        running: None,
        policy: "login_at_start = false".into(),
        extra: String::new(),
        daemon: format!("socket_group = \"{GROUP}\"\n{daemon}"),
        limits: if limits.contains("write_timeout") {
            format!("max_connections = 32\n{limits}")
        } else {
            format!("max_connections = 32\nwrite_timeout = \"300ms\"\n{limits}")
        },
        jainam: String::new(),
        clock: None,
    };
    // Temp dirs are 0700; the socket folder (0750, GROUP) decides.
    std::fs::set_permissions(h.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    h.boot().await;
    // The first token logs in; the figures below are of served sessions.
    session(&h.token("interactive").await);
    h
}

/// `n` sequential `token` requests, each on a fresh connection (what a
/// program that was starved of slots would do); every one must succeed.
async fn tokens(socket: &Path, n: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut c = brokerd::client::Client::connect(socket).await.unwrap();
        let reply = c
            .call(&json!({"op": "token", "broker": "jainam", "account": "main"}))
            .await
            .unwrap();
        took.push(started.elapsed());
        session(&reply);
    }
    took
}

/// Prints p50/p99/max of a baseline and of the same client under attack,
/// and checks the attack never made a request slow beyond [`SLOW`].
fn report(attack: &str, baseline: &[Duration], during: &[Duration]) {
    fn stats(d: &[Duration]) -> String {
        let mut d = d.to_vec();
        d.sort();
        let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
        format!(
            "p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (n={})",
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            at(1.0).as_secs_f64() * 1e3,
            d.len()
        )
    }
    println!("token latency, {attack}:");
    println!("  baseline      {}", stats(baseline));
    println!("  under attack  {}", stats(during));
    let max = during.iter().max().unwrap();
    assert!(*max < SLOW, "{attack}: a token took {max:?}");
}

/// A daemon-wide counter from the `metrics` op (0 when absent).
async fn metric(h: &Harness, name: &str) -> u64 {
    let text = h.call(json!({"op": "metrics"})).await["text"]
        .as_str()
        .unwrap()
        .to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0, |v| v.parse().unwrap())
}

/// Starts this test binary as nobody, running [`helper`] in `role`.
fn spawn_helper(socket: &Path, role: &str, n: usize, secs: f64) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "hostages::helper",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("HOSTAGES_HELPER", role)
    .env("HOSTAGES_SOCKET", socket)
    .env("HOSTAGES_N", n.to_string())
    .env("HOSTAGES_SECS", secs.to_string())
    .uid(NOBODY)
    .gid(gid_of(GROUP))
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true);
    cmd.spawn().expect("the test binary starts as nobody")
}

/// The `RESULT` line a helper printed.
async fn helper_result(child: tokio::process::Child) -> Value {
    let out = child.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "helper failed: {text}");
    text.lines()
        // libtest prints "test helper ... " on the same line first.
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .map(|r| serde_json::from_str(r).unwrap())
        .unwrap_or_else(|| panic!("helper printed no result: {text}"))
}

fn durations(v: &Value) -> Vec<Duration> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|us| Duration::from_micros(us.as_u64().unwrap()))
        .collect()
}

/// Waits until the daemon serves at least `n` connections.
async fn busy(h: &Harness, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(h, "brokerd_connections").await < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a connection that sends requests and never reads the replies,
/// until the daemon closes it. Returns how long the connection lived.
async fn flood_once(socket: &Path, until: Instant) -> Option<Duration> {
    let chunk = "{\"op\":\"hello\"}\n".repeat(4096);
    let started = Instant::now();
    let mut s = UnixStream::connect(socket).await.ok()?;
    loop {
        match tokio::time::timeout_at(until, s.write_all(chunk.as_bytes())).await {
            // Still open when the attack ends.
            Err(_) => return Some(started.elapsed()),
            Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(())) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_are_closed_and_others_keep_getting_tokens() {
    let h = start(&format!("allowed_uids = [{NOBODY}]"), "").await;
    let baseline = tokens(&h.socket(), 100).await;
    // 40 flooding connections from nobody, more than the 32 slots, each
    // reconnecting as soon as it is closed.
    let attack = spawn_helper(&h.socket(), "flood", 40, 4.0);
    busy(&h, 6).await;
    let during = tokens(&h.socket(), 100).await;
    let r = helper_result(attack).await;
    println!("flood from uid {NOBODY}: {r}");
    report(
        "40 connections that never read their replies",
        &baseline,
        &during,
    );
    // Every flooding connection ended (closed at the write deadline, or
    // refused at nobody's quota) long before the 4 s attack did.
    let oldest = Duration::from_millis(r["oldest_ms"].as_u64().unwrap());
    assert!(
        oldest < Duration::from_secs(2),
        "a connection that never read lived {oldest:?} (write_timeout 300ms)"
    );
    assert!(metric(&h, "brokerd_connections_stalled_total").await > 0);
    assert!(metric(&h, "brokerd_connections_refused_per_uid_total").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_hold_up_a_stop() {
    // A long write deadline, so only shutdown can end these writes.
    let mut h = start(
        "",
        "max_connections_per_uid = 32\nwrite_timeout = \"30s\"\nshutdown_grace = \"10s\"",
    )
    .await;
    let until = Instant::now() + Duration::from_secs(30);
    let floods: Vec<_> = (0..6)
        .map(|_| {
            let socket = h.socket();
            tokio::spawn(async move { flood_once(&socket, until).await })
        })
        .collect();
    busy(&h, 6).await;
    // Let their replies fill the socket buffers, so the writes block.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    h.stop().await;
    let took = started.elapsed();
    println!("stop with 6 non-reading clients: {took:?} (shutdown_grace 10s)");
    assert!(
        took < Duration::from_secs(3),
        "stop took {took:?}: it waited on a client that does not read"
    );
    for f in floods {
        let lived = tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("closed by the stop")
            .unwrap();
        assert!(lived.unwrap() < Duration::from_secs(10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_allowed_nowhere_is_closed_after_forbidden_and_locks_nobody_out() {
    // nobody is on no list: every line it sends is refused.
    let h = start("", "").await;
    let baseline = tokens(&h.socket(), 100).await;
    let attack = spawn_helper(&h.socket(), "forbidden", 40, 3.0);
    busy(&h, 4).await;
    let during = tokens(&h.socket(), 100).await;
    let r = helper_result(attack).await;
    println!("forbidden peer uid {NOBODY}: {r}");
    report(
        "40 connections from a peer allowed nowhere",
        &baseline,
        &during,
    );
    assert!(r["forbidden"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["other_replies"], json!([]), "{r}");
    assert_eq!(r["left_open"], 0, "every connection was closed: {r}");
    // Closed right after `forbidden`; a silent one after write_timeout.
    let slowest = Duration::from_millis(r["slowest_close_ms"].as_u64().unwrap());
    assert!(slowest < Duration::from_secs(2), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uid_cannot_take_more_than_its_quota() {
    let h = start(&format!("allowed_uids = [{NOBODY}]"), "").await;
    let baseline =
        durations(&helper_result(spawn_helper(&h.socket(), "tokens", 100, 0.0)).await["took_us"]);
    // This test's uid (root: no exemption) takes its 8 connections.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut c = h.client().await;
        assert_eq!(c.call(&json!({"op": "hello"})).await.unwrap()["ok"], true);
        held.push(c);
    }
    for _ in 0..2 {
        let mut extra = h.client().await;
        let _ = extra.send_line(r#"{"op":"hello"}"#).await;
        let refused = tokio::time::timeout(Duration::from_secs(5), extra.next())
            .await
            .expect("an answer")
            .unwrap()
            .expect("a line");
        assert_eq!(error_code(&refused), "unavailable", "{refused}");
        assert_eq!(refused["error"]["retry_after_secs"], 1);
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "too many connections from uid {}",
                rustix::process::getuid().as_raw()
            )),
            "{message}"
        );
        assert!(matches!(extra.next().await, Ok(None) | Err(_)), "closed");
    }
    // Another uid is not affected.
    let r = helper_result(spawn_helper(&h.socket(), "tokens", 100, 0.0)).await;
    report(
        "another uid holding its whole quota",
        &baseline,
        &durations(&r["took_us"]),
    );
    assert_eq!(r["failures"], json!([]), "{r}");
    assert_eq!(metric_as_other(&h).await, 2);
    // A closed connection gives its place back.
    drop(held.pop());
    let mut again = false;
    for _ in 0..50 {
        // Until the daemon has seen the close, the new connection is
        // refused and closed, which may break our write (EPIPE): retry.
        let mut c = h.client().await;
        if c.call(&json!({"op": "hello"}))
            .await
            .is_ok_and(|r| r["ok"] == true)
        {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again, "the freed place is usable");
}

/// The per-uid refusals so far, read while this uid's quota is full (so
/// through a helper as nobody).
async fn metric_as_other(h: &Harness) -> u64 {
    let r = helper_result(spawn_helper(&h.socket(), "metrics", 1, 0.0)).await;
    r["refused_per_uid"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_request_connections_close_and_quiet_subscribers_get_heartbeats() {
    let h = start(
        "",
        "max_connections_per_uid = 32\nidle_timeout = \"300ms\"\nheartbeat = \"100ms\"",
    )
    .await;
    let started = Instant::now();
    let mut idle = h.client().await;
    assert_eq!(
        idle.call(&json!({"op": "hello"})).await.unwrap()["ok"],
        true
    );
    let mut sub = h.client().await;
    assert_eq!(
        sub.call(&json!({"op": "subscribe"})).await.unwrap()["ok"],
        true
    );
    let closed = tokio::time::timeout(Duration::from_secs(3), idle.next())
        .await
        .expect("the idle connection is closed");
    assert!(matches!(closed, Ok(None) | Err(_)));
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Four idle timeouts later the subscriber is still served.
    let mut beats = 0;
    let until = Instant::now() + Duration::from_millis(1200);
    while let Ok(line) = tokio::time::timeout_at(until, sub.next()).await {
        let line = line.unwrap().expect("the stream stays open");
        assert_eq!(line, json!({"event": "heartbeat"}));
        beats += 1;
    }
    assert!(beats >= 4, "{beats} heartbeats in 1.2 s at 100 ms");
    // And it still carries events.
    assert_eq!(
        h.call(json!({"op": "logout", "broker": "jainam"})).await["ok"],
        true
    );
    loop {
        let e = sub.next().await.unwrap().unwrap();
        if e["event"] != "heartbeat" {
            assert_eq!(e["event"], "logged_out");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_stop_reading_are_closed() {
    // A heartbeat every millisecond fills a non-reader's socket buffer fast.
    let h = start("", "max_connections_per_uid = 32\nheartbeat = \"1ms\"").await;
    let baseline = tokens(&h.socket(), 100).await;
    let mut subscribers = Vec::new();
    for _ in 0..8 {
        let mut s = UnixStream::connect(h.socket()).await.unwrap();
        s.write_all(b"{\"op\":\"subscribe\"}\n").await.unwrap();
        subscribers.push(s);
    }
    let during = tokens(&h.socket(), 100).await;
    report("8 subscribers that never read", &baseline, &during);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&h, "brokerd_connections_stalled_total").await < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&h, "brokerd_connections_stalled_total").await, 8);
    // Each got its ack and heartbeats up to the stall, then EOF.
    for s in subscribers {
        let mut lines = BufReader::new(s).lines();
        let ack = lines.next_line().await.unwrap().unwrap();
        assert!(ack.contains("\"ok\":true"), "{ack}");
        let mut beats = 0;
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(line)) = lines.next_line().await {
                // The line cut by the stall may be partial.
                beats += usize::from(line == r#"{"event":"heartbeat"}"#);
            }
        })
        .await;
        assert!(end.is_ok(), "closed by the daemon");
        assert!(beats > 0);
    }
}

/// The attacks run as nobody: this test, started by [`spawn_helper`] with
/// `HOSTAGES_HELPER` set. In a normal run it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper() {
    let Ok(role) = std::env::var("HOSTAGES_HELPER") else {
        return;
    };
    let socket = std::path::PathBuf::from(std::env::var("HOSTAGES_SOCKET").unwrap());
    let n: usize = std::env::var("HOSTAGES_N").unwrap().parse().unwrap();
    let secs: f64 = std::env::var("HOSTAGES_SECS").unwrap().parse().unwrap();
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let result = match role.as_str() {
        "flood" => flood(&socket, n, until).await,
        "forbidden" => forbidden(&socket, n, until).await,
        "tokens" => {
            let mut took = Vec::new();
            let mut failures = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                let reply = match brokerd::client::Client::connect(&socket).await {
                    Ok(mut c) => c
                        .call(&json!({"op": "token", "broker": "jainam", "account": "main"}))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                took.push(started.elapsed().as_micros() as u64);
                match reply {
                    Ok(r) if r["ok"] == true => {}
                    Ok(r) => failures.push(r),
                    Err(e) => failures.push(json!(e)),
                }
            }
            json!({"took_us": took, "failures": failures})
        }
        "metrics" => {
            let mut c = brokerd::client::Client::connect(&socket).await.unwrap();
            let text = c.call(&json!({"op": "metrics"})).await.unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string();
            let refused = text
                .lines()
                .find_map(|l| l.strip_prefix("brokerd_connections_refused_per_uid_total "))
                .map_or(0, |v| v.parse::<u64>().unwrap());
            json!({"refused_per_uid": refused})
        }
        other => panic!("unknown helper role {other}"),
    };
    println!("RESULT {result}");
}

/// `n` connections, each flooding until closed and then reconnecting,
/// until `until`. Reports how many ended and the longest-lived one.
async fn flood(socket: &Path, n: usize, until: Instant) -> Value {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let socket = socket.to_path_buf();
            tokio::spawn(async move {
                let mut lives = Vec::new();
                while Instant::now() < until {
                    match flood_once(&socket, until).await {
                        Some(lived) => lives.push(lived),
                        None => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                lives
            })
        })
        .collect();
    let mut lives = Vec::new();
    for t in tasks {
        lives.extend(t.await.unwrap());
    }
    json!({
        "connections": lives.len(),
        "oldest_ms": lives.iter().max().map_or(0, |d| d.as_millis() as u64),
    })
}

/// `n` connections from a peer allowed nowhere, reconnecting until `until`:
/// every other one sends `hello`, the rest send nothing. Each must be
/// closed, after at most one `forbidden` (or a cap's `unavailable`).
async fn forbidden(socket: &Path, n: usize, until: Instant) -> Value {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let socket = socket.to_path_buf();
            tokio::spawn(async move {
                let (mut forbidden, mut left_open, mut slowest) = (0u64, 0u64, Duration::ZERO);
                let mut other = Vec::new();
                let mut round = 0;
                while Instant::now() < until {
                    round += 1;
                    let Ok(s) = UnixStream::connect(&socket).await else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let started = Instant::now();
                    let (read, mut write) = s.into_split();
                    if (i + round) % 2 == 0 {
                        let _ = write.write_all(b"{\"id\":1,\"op\":\"hello\"}\n").await;
                    }
                    let mut lines = BufReader::new(read).lines();
                    let read_all = tokio::time::timeout(Duration::from_secs(3), async {
                        let mut got = Vec::new();
                        while let Ok(Some(line)) = lines.next_line().await {
                            got.push(line);
                        }
                        got
                    })
                    .await;
                    slowest = slowest.max(started.elapsed());
                    match read_all {
                        Err(_) => left_open += 1,
                        Ok(got) => {
                            for line in got {
                                let v: Value = serde_json::from_str(&line).unwrap();
                                match v["error"]["code"].as_str() {
                                    Some("forbidden") => forbidden += 1,
                                    Some("unavailable") => {}
                                    _ => other.push(v),
                                }
                            }
                        }
                    }
                }
                (forbidden, left_open, slowest, other)
            })
        })
        .collect();
    let (mut forbidden, mut left_open, mut slowest, mut other) = (0, 0, Duration::ZERO, Vec::new());
    for t in tasks {
        let (f, l, s, o) = t.await.unwrap();
        forbidden += f;
        left_open += l;
        slowest = slowest.max(s);
        other.extend(o);
    }
    json!({
        "forbidden": forbidden,
        "left_open": left_open,
        "slowest_close_ms": slowest.as_millis() as u64,
        "other_replies": other,
    })
}
