//! The systemd side without systemd: the notify protocol over a real
//! datagram socket, restarts on a passed-in listening socket under load,
//! and a graceful stop with a login in flight.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brokerd::brokers::Api;
use brokerd::client::Client;
use common::{Harness, eventually, session};
use serde_json::json;

/// Reads notify datagrams until `until` matches one or `limit` passes.
fn collect(
    sock: &UnixDatagram,
    into: &mut Vec<String>,
    limit: Duration,
    mut until: impl FnMut(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(&mut until);
            into.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notify_protocol_in_order() {
    // A harness only for its simulator and config; the daemon runs as a process.
    let mut h = Harness::start("login_at_start = true").await;
    session(&h.token("interactive").await);
    // Both stored before the stop (the READY line below counts 2 active):
    // the market session may not be stored yet when the interactive token
    // is served, and the restart then finds it empty.
    session(&h.token("market").await);
    h.stop().await;
    let config = h.dir.path().join("brokerd.toml");
    std::fs::write(&config, h.config_text()).unwrap();
    let notify_path = h.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    let logins_before = h.sim.login_count(Api::Interactive);

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_brokerd"))
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let ready = tokio::task::block_in_place(|| {
        collect(&sock, &mut seen, Duration::from_secs(20), |l| {
            l == "READY=1"
        })
    });
    assert!(ready, "READY=1 arrives: {seen:?}");
    // READY means listening, with the stored session already restored.
    let status = h.status_of("interactive").await;
    assert_eq!(status["state"], "active");
    assert_eq!(status["generation"], 1);
    assert_eq!(
        h.sim.login_count(Api::Interactive),
        logins_before,
        "served from the store"
    );
    let ready_msg = seen.last().unwrap().clone();
    assert!(
        ready_msg.contains("STATUS=2 sessions: 2 active"),
        "{ready_msg}"
    );
    // Watchdog pings at half the interval, from the live loops.
    let mut pings = 0;
    let got = tokio::task::block_in_place(|| {
        collect(&sock, &mut seen, Duration::from_secs(5), |l| {
            if l == "WATCHDOG=1" {
                pings += 1;
            }
            pings >= 3
        })
    });
    assert!(got, "three WATCHDOG=1 within 5 s: {seen:?}");
    // A session changes state: STATUS= follows and names it.
    h.sim
        .fail_next_logins(Api::Market, 1, brokerd_sim::xts::FailMode::WrongSecret);
    h.call(json!({"op": "login", "broker": "jainam", "api": "market"}))
        .await;
    let got = tokio::task::block_in_place(|| {
        collect(&sock, &mut seen, Duration::from_secs(5), |l| {
            l.starts_with("STATUS=") && l.contains("locked_out (jainam/main/market)")
        })
    });
    assert!(got, "{seen:?}");
    // SIGHUP reloads: RELOADING=1, then READY=1 again.
    Command::new("kill")
        .arg("-HUP")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    let reloaded = tokio::task::block_in_place(|| {
        let mut reloading = false;
        collect(&sock, &mut seen, Duration::from_secs(10), |l| {
            reloading |= l == "RELOADING=1";
            reloading && l == "READY=1"
        })
    });
    assert!(reloaded, "{seen:?}");
    assert_eq!(
        h.status_of("interactive").await["generation"],
        1,
        "a reload keeps the session"
    );
    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    let stopping = tokio::task::block_in_place(|| {
        collect(&sock, &mut seen, Duration::from_secs(10), |l| {
            l == "STOPPING=1"
        })
    });
    assert!(stopping, "{seen:?}");
    let exit = tokio::task::spawn_blocking(move || daemon.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success());
    // Order: READY first, then pings, and STOPPING after both.
    let lines: Vec<&str> = seen.iter().flat_map(|m| m.lines()).collect();
    let first = |want: &str| lines.iter().position(|l| *l == want).unwrap();
    assert_eq!(
        lines.iter().filter(|l| **l == "READY=1").count(),
        2,
        "start and reload"
    );
    assert!(first("READY=1") < first("WATCHDOG=1"));
    assert!(first("WATCHDOG=1") < first("STOPPING=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_passed_socket_fails_no_request_and_keeps_generations() {
    let mut h = Harness::start("login_at_start = false").await;
    h.stop().await;
    let socket = h.socket();
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let loaded = h.load(&h.config_text());
    h.running = Some(
        brokerd::daemon::start_with(loaded, Some(listener.try_clone().unwrap()))
            .await
            .unwrap(),
    );
    assert_eq!(session(&h.token("interactive").await)["generation"], 1);

    // Four clients, each a fresh connection per request, for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (socket, stop) = (socket.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut generations) =
                (0u32, Vec::new(), std::collections::BTreeSet::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let reply = match Client::connect(&socket).await {
                    Ok(mut c) => c
                        .call(&json!({"op": "token", "broker": "jainam", "account": "main"}))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match reply {
                    Ok(r) if r["ok"] == true => {
                        ok += 1;
                        generations.insert(r["session"]["generation"].as_u64().unwrap());
                    }
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed, generations)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        let old = h.running.take().unwrap();
        old.stop().await;
        let loaded = h.load(&h.config_text());
        h.running = Some(
            brokerd::daemon::start_with(loaded, Some(listener.try_clone().unwrap()))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, failed, generations) = c.await.unwrap();
        assert!(failed.is_empty(), "no request failed: {failed:?}");
        assert_eq!(
            generations.into_iter().collect::<Vec<_>>(),
            vec![1],
            "no re-login"
        );
        total += ok;
    }
    assert!(total > 40, "requests kept flowing: {total}");
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
    assert!(
        socket.exists(),
        "the passed socket is not removed by the daemon"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_lets_an_in_flight_login_finish_and_persist() {
    let mut h = Harness::start("login_at_start = false").await;
    h.sim.set_latency(Duration::from_millis(1500));
    let waiting = {
        let socket = h.socket();
        tokio::spawn(async move {
            let mut c = Client::connect(&socket).await.unwrap();
            c.call(&json!({"op": "token", "broker": "jainam", "account": "main"}))
                .await
                .unwrap()
        })
    };
    assert!(
        eventually(Duration::from_secs(2), || h
            .sim
            .login_count(Api::Interactive)
            == 1)
        .await
    );
    let started = Instant::now();
    h.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "within the grace"
    );
    let reply = waiting.await.unwrap();
    assert_eq!(
        session(&reply)["generation"],
        1,
        "the waiting client got its answer"
    );
    assert_eq!(
        h.sim.logout_count(Api::Interactive),
        0,
        "sessions are never logged out on stop"
    );
    h.sim.set_latency(Duration::ZERO);
    h.boot().await;
    let after = h.token("interactive").await;
    assert_eq!(
        session(&after)["token"],
        session(&reply)["token"],
        "it was persisted"
    );
    assert_eq!(h.sim.login_count(Api::Interactive), 1);
}

/// The watchdog is fed only while every session's loop goes round: loops
/// that never started, or stopped, count as stuck.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_rule_sees_loops_that_are_not_running() {
    let h = Harness::start("login_at_start = false").await;
    let registry = h.running.as_ref().unwrap().registry.clone();
    let stale = Duration::from_secs(3);
    assert!(
        eventually(Duration::from_secs(2), || brokerd::systemd::stuck_sessions(
            &registry, stale
        )
        .is_empty())
        .await,
        "running loops are alive"
    );
    // Stop one slot's loop (as if it hung): it is reported once its heartbeat ages.
    let market = registry
        .find("jainam", Some("main"), Some("market"))
        .unwrap();
    market.retire();
    let short = Duration::from_millis(1500);
    let stuck = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let s = brokerd::systemd::stuck_sessions(&registry, short);
            if !s.is_empty() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the stopped loop is noticed");
    assert_eq!(stuck, vec!["jainam/main/market".to_string()]);
}
