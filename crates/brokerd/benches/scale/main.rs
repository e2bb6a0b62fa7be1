//! Scale benchmark: the real `brokerd` binary with N Jainam accounts (an
//! interactive and a market session each) against the XTS simulator in
//! multi-account mode, whose every login and session check answers after a
//! latency. For each N it measures a cold start (spawn to READY=1, to the
//! first `token`, to every session active), the logins each account cost
//! at the simulator (must be exactly one per session), the peak logins per
//! second and in flight there, a restart on the same state directory
//! (SIGTERM, start again: READY, first `token`, all active, and the logins
//! and checks it caused), and the daemon's memory. N = 0 runs first as the
//! baseline of the same run, and the demo configuration gives the idle
//! memory of a small desk.
//!
//! `cargo bench -p brokerd --bench scale`. Settings by environment:
//!
//! - `BROKERD_SCALE_N`: the account counts, default `10,100,1000`;
//! - `BROKERD_SCALE_LATENCY_MS`: the simulator's latency per login and per
//!   session check, default 50;
//! - `BROKERD_SCALE_TIMEOUT_S`: how long each wait (READY, all active,
//!   stop) may take before it is reported as not reached, default 300;
//! - `BROKERD_SCALE_SIM_RATE`: logins per second the simulator admits
//!   (HTTP 429 beyond), default off;
//! - `BROKERD_SCALE_DAEMON_NOFILE`: the daemon's open-file limit, default
//!   8192 (`LimitNOFILE=` of `systemd/brokerd.service`);
//! - `BROKERD_SCALE_DEMO=0` leaves out the demo configuration's row;
//! - `BROKERD_SCALE_KEEP=1` keeps each run's folder (config, daemon logs)
//!   and prints where it is.
//!
//! Run without `--bench` (as `cargo test --benches` does) it makes a short
//! smoke run (N = 3, no demo row) whose figures mean nothing. It exits
//! non-zero when an account needed other than one login per session, when
//! a restart logged in, or when a wait was not reached: the figures are
//! printed first.

// Shared with benches/socket.rs, one folder up.
#[path = "../common/mod.rs"]
mod common;
mod daemon;
mod demo;
mod report;
mod run;

use std::time::{Duration, Instant};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let settings = Settings::from_env(full);
    raise_own_nofile();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let failures = runtime.block_on(bench(&settings));
    if !failures.is_empty() {
        println!();
        println!("SCALE BENCHMARK FAILED:");
        for f in &failures {
            println!("  FAIL: {f}");
        }
        std::process::exit(1);
    }
}

/// What the environment asked for.
struct Settings {
    full: bool,
    counts: Vec<usize>,
    latency: Duration,
    timeout: Duration,
    sim_rate: Option<u32>,
    daemon_nofile: u64,
    demo: bool,
}

impl Settings {
    fn from_env(full: bool) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| {
            var(name).map_or(default, |v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}"))
            })
        };
        let default_counts = if full { "10,100,1000" } else { "3" };
        let counts = var("BROKERD_SCALE_N")
            .unwrap_or_else(|| default_counts.into())
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("BROKERD_SCALE_N: {n:?} is not a count"))
            })
            .collect();
        Self {
            full,
            counts,
            latency: Duration::from_millis(number("BROKERD_SCALE_LATENCY_MS", 50)),
            timeout: Duration::from_secs(number("BROKERD_SCALE_TIMEOUT_S", 300)),
            sim_rate: var("BROKERD_SCALE_SIM_RATE")
                .map(|_| number("BROKERD_SCALE_SIM_RATE", 0) as u32),
            daemon_nofile: number("BROKERD_SCALE_DAEMON_NOFILE", 8192),
            demo: full && var("BROKERD_SCALE_DEMO").is_none_or(|v| v != "0"),
        }
    }
}

/// The simulator's connections live in this process: one per login in
/// flight. Raise the soft open-file limit to the hard one.
fn raise_own_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            println!("note: could not raise this process's open-file limit: {e}");
        }
    }
}
async fn bench(settings: &Settings) -> Vec<String> {
    report::settings(settings);
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    // N = 0 first: the baseline of this run.
    let mut counts = vec![0];
    counts.extend(settings.counts.iter().copied().filter(|n| *n > 0));
    for n in counts {
        println!("running N = {n} ...");
        let started = Instant::now();
        let row = run::run_n(n, settings).await;
        println!("  done in {:.1} s", started.elapsed().as_secs_f64());
        for f in &row.failures {
            println!("  FAIL: {f}");
        }
        failures.extend(row.failures.iter().cloned());
        rows.push(row);
    }
    let demo = if settings.demo {
        println!("running the demo configuration ...");
        Some(demo::demo_memory(settings).await)
    } else {
        None
    };
    report::tables(&rows, settings);
    if let Some(demo) = &demo {
        report::demo(demo);
        if let Err(e) = demo {
            failures.push(format!(
                "demo configuration: {}",
                e.lines().next().unwrap_or("")
            ));
        }
    }
    failures
}
