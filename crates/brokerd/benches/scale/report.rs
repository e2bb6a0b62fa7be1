//! The printed figures: one table for the cold starts, one for the
//! restarts, one for memory and resources, the daemons' logs in brief, and
//! the demo configuration's memory.

use std::time::Duration;

use crate::Settings;
use crate::common::mib;
use crate::daemon::POLL;
use crate::run::Row;

/// Right-aligned columns as wide as their widest cell.
struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&'static str]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn print(&self) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r[c].len())
                    .chain([self.header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:>w$}"))
                .collect();
            println!("  {}", padded.join("  "));
        };
        line(self.header.clone());
        for r in &self.rows {
            line(r.iter().map(String::as_str).collect());
        }
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1e3))
}

fn secs(r: &Result<Duration, String>) -> String {
    match r {
        Ok(d) => format!("{:.2}", d.as_secs_f64()),
        Err(_) => "NOT REACHED".into(),
    }
}

/// `-` at N = 0, where there is no account to ask about.
fn unless_empty(r: &Row, cell: impl FnOnce() -> String) -> String {
    if r.n == 0 { "-".into() } else { cell() }
}

/// The header: what runs against what, with which settings.
pub fn settings(settings: &Settings) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    if !settings.full {
        println!("SMOKE RUN (no --bench argument): the figures below mean nothing");
    }
    println!(
        "brokerd scale benchmark ({cores} cores): N Jainam accounts x 2 sessions (interactive, \
         market), the real brokerd binary against the XTS simulator (multi-account mode, in this \
         process, sharing the cores)"
    );
    println!(
        "simulator latency {} ms per login and per session check; rate limit {}; daemon \
         open-file limit {}; waits time out after {:?}; status polled every {:?}",
        settings.latency.as_millis(),
        settings
            .sim_rate
            .map_or("off".into(), |r| format!("{r} logins/s (429 beyond)")),
        settings.daemon_nofile,
        settings.timeout,
        POLL,
    );
}

/// Every table, from the rows of one run (N = 0 first, the baseline).
pub fn tables(rows: &[Row], settings: &Settings) {
    println!();
    println!(
        "cold start (from spawn: READY=1, first token of s0001/interactive, every session active):"
    );
    let mut t = Table::new(&[
        "N",
        "sessions",
        "ready_ms",
        "token_ms",
        "active_s",
        "logins",
        "first-last_s",
        "per_session",
        "not_1",
        "peak/s",
        "in_flight",
    ]);
    for r in rows {
        t.row(vec![
            r.n.to_string(),
            (2 * r.n).to_string(),
            ms(r.cold.ready),
            unless_empty(r, || ms(r.cold.first_token)),
            secs(&r.cold.all_active),
            r.cold.logins.to_string(),
            r.cold.login_span.map_or("-".into(), |(a, b)| {
                format!("{:.2}-{:.2}", a.as_secs_f64(), b.as_secs_f64())
            }),
            unless_empty(r, || format!("{}-{}", r.per_session.0, r.per_session.1)),
            unless_empty(r, || r.not_one.to_string()),
            r.cold.peak_per_sec.to_string(),
            r.cold.peak_in_flight.to_string(),
        ]);
    }
    t.print();
    println!(
        "  logins: login requests the simulator received; first-last_s: when the first and the \
         last arrived there; per_session: min-max logins of one session (must be 1-1), not_1: sessions \
         that did not log in exactly once; peak/s: \
         most logins in any 1 s window; in_flight: most logins the simulator answered at once"
    );

    println!();
    println!("restart (SIGTERM, then start again on the same state directory):");
    let mut t = Table::new(&[
        "N",
        "stop_ms",
        "ready_ms",
        "token_ms",
        "active_s",
        "logins",
        "checks",
        "all_checked_s",
        "checks/s",
    ]);
    for r in rows {
        t.row(vec![
            r.n.to_string(),
            ms(r.stop),
            ms(r.restart.ready),
            unless_empty(r, || ms(r.restart.first_token)),
            secs(&r.restart.all_active),
            r.restart.logins.to_string(),
            r.restart.checks.to_string(),
            r.restart
                .all_checked
                .map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64())),
            r.restart.peak_checks_per_sec.to_string(),
        ]);
    }
    t.print();
    println!(
        "  checks: session checks (profile, clientConfig) the simulator answered, all_checked_s \
         when it had answered one for every stored session, checks/s the most in any 1 s window; logins must be 0 when the cold start ended with every session \
         active (each one stored and valid)"
    );

    println!();
    println!("daemon memory and resources, 1 s after every session is active:");
    let mut t = Table::new(&[
        "N",
        "rss_MiB",
        "hwm_MiB",
        "KiB/session",
        "restart_rss",
        "restart_hwm",
        "fds",
        "peak_fds",
        "threads",
        "ready_msg_B",
    ]);
    let base = rows.iter().find(|r| r.n == 0).map_or(0, |r| r.cold.rss_kib);
    for r in rows {
        t.row(vec![
            r.n.to_string(),
            format!("{:.1}", mib(r.cold.rss_kib)),
            format!("{:.1}", mib(r.cold.hwm_kib)),
            unless_empty(r, || {
                let grown = r.cold.rss_kib.saturating_sub(base) as f64;
                format!("{:.1}", grown / (2 * r.n) as f64)
            }),
            format!("{:.1}", mib(r.restart.rss_kib)),
            format!("{:.1}", mib(r.restart.hwm_kib)),
            r.cold.fds.map_or("-".into(), |f| f.to_string()),
            r.cold.peak_fds.to_string(),
            r.cold.threads.to_string(),
            r.cold.ready_msg_bytes.to_string(),
        ]);
    }
    t.print();
    println!(
        "  KiB/session: (RSS - RSS at N = 0) / sessions; restart_*: after the restart; fds: open \
         files then, peak_fds: most seen while waiting; ready_msg_B: bytes of the READY=1 notify \
         message of the cold start (its STATUS= line)"
    );

    println!();
    println!("daemon logs: lines / WARN / ERROR, and the commonest WARN or ERROR lines");
    for r in rows {
        for (what, start) in [("cold start", &r.cold), ("restart", &r.restart)] {
            let l = &start.log;
            println!(
                "  N = {:>4} {what:<10}: {} / {} / {}",
                r.n, l.lines, l.warn, l.error
            );
            for (count, kind) in &l.top {
                println!("      {count:>6} x {kind}");
            }
        }
        if settings.sim_rate.is_some() {
            println!("  N = {:>4}: {} logins answered 429", r.n, r.rate_limited);
        }
    }
}

/// The demo configuration's line.
pub fn demo(result: &Result<(u64, u64, Duration), String>) {
    println!();
    match result {
        Ok((rss, hwm, t)) => println!(
            "demo configuration (config/demo.toml: 6 sessions, 4 active, 2 waiting for a person; \
             simulators in this process): daemon RSS {:.1} MiB, VmHWM {:.1} MiB, settled in {:.2} s",
            mib(*rss),
            mib(*hwm),
            t.as_secs_f64()
        ),
        Err(e) => println!("demo configuration: not measured: {e}"),
    }
}
