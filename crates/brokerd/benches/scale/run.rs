//! One N: the config of N accounts, a cold start and a restart of the
//! daemon on it, and what each cost at the simulator.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};

use brokerd::brokers::Api;
use brokerd_sim::xts::{RateLimit, XtsSim, XtsSimConfig, XtsSimPattern, peak_in_window};

use crate::Settings;
use crate::common::memory_kib;
use crate::daemon::{Daemon, Home, LogSummary, first_token, open_fds, threads, wait_states};

/// The account names of the scale config, and the simulator ids behind them.
pub fn account_name(i: usize) -> String {
    format!("s{i:04}")
}

/// `n` Jainam accounts with both sessions, keys by the simulator's scale
/// pattern, secrets in files (as `cred:` would be in production).
pub fn scale_config(home: &Home, n: usize, root: &str) -> String {
    let pattern = XtsSimPattern::scale();
    let mut text = home.daemon_section();
    if n == 0 {
        text.push_str("# no accounts: the baseline\n");
    }
    for i in 1..=n {
        let name = account_name(i);
        let user = pattern.user(&i.to_string()).expect("a valid id");
        let ia_key = home.secret(&format!("{name}.ia_key"), &user.interactive_app_key);
        let ia_secret = home.secret(&format!("{name}.ia_secret"), &user.interactive_secret_key);
        let md_key = home.secret(&format!("{name}.md_key"), &user.market_app_key);
        let md_secret = home.secret(&format!("{name}.md_secret"), &user.market_secret_key);
        let _ = write!(
            text,
            r#"
[[account]]
broker = "jainam"
name = "{name}"
[account.jainam]
root = "{root}"
[account.jainam.interactive]
app_key = "{ia_key}"
secret_key = "{ia_secret}"
[account.jainam.market]
app_key = "{md_key}"
secret_key = "{md_secret}"
"#
        );
    }
    text
}

/// The figures of one start (cold or restart).
pub struct Start {
    pub ready: Option<Duration>,
    pub ready_msg_bytes: usize,
    pub first_token: Option<Duration>,
    pub all_active: Result<Duration, String>,
    pub logins: u64,
    /// When the first and the last of `logins` reached the simulator.
    pub login_span: Option<(Duration, Duration)>,
    pub checks: u64,
    pub peak_per_sec: usize,
    /// The most session checks in any one second.
    pub peak_checks_per_sec: usize,
    /// When the simulator had answered the last of the expected session
    /// checks (a restart: every stored session), from spawn.
    pub all_checked: Option<Duration>,
    pub peak_in_flight: usize,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub fds: Option<usize>,
    pub peak_fds: usize,
    pub threads: u64,
    pub log: LogSummary,
}

impl Start {
    pub fn new() -> Self {
        Self {
            ready: None,
            ready_msg_bytes: 0,
            first_token: None,
            all_active: Err("not run".into()),
            logins: 0,
            login_span: None,
            checks: 0,
            peak_per_sec: 0,
            peak_checks_per_sec: 0,
            all_checked: None,
            peak_in_flight: 0,
            rss_kib: 0,
            hwm_kib: 0,
            fds: None,
            peak_fds: 0,
            threads: 0,
            log: LogSummary {
                lines: 0,
                warn: 0,
                error: 0,
                top: Vec::new(),
            },
        }
    }
}

/// Everything measured at one N.
pub struct Row {
    pub n: usize,
    pub cold: Start,
    /// Logins per session at the simulator (min, max) over every
    /// configured session; accounts never seen count 0.
    pub per_session: (u64, u64),
    /// Sessions whose login count was not exactly one.
    pub not_one: usize,
    pub rate_limited: u64,
    pub stop: Option<Duration>,
    pub restart: Start,
    pub failures: Vec<String>,
}

pub async fn run_n(n: usize, settings: &Settings) -> Row {
    let home = Home::new();
    let sim = XtsSim::start(XtsSimConfig {
        users: Vec::new(),
        pattern: Some(XtsSimPattern::scale()),
        ..XtsSimConfig::default()
    })
    .await
    .expect("simulator starts");
    sim.set_login_latency(settings.latency);
    sim.set_check_latency(settings.latency);
    if let Some(rate) = settings.sim_rate {
        sim.set_login_rate_limit(Some(RateLimit {
            logins: rate,
            per: Duration::from_secs(1),
        }));
    }
    std::fs::write(home.config(), scale_config(&home, n, &sim.base_url())).expect("write config");
    let sessions = 2 * n;
    let all_active = move |s: &BTreeMap<String, usize>| {
        s.get("active").copied().unwrap_or(0) == sessions && s.values().sum::<usize>() == sessions
    };
    let mut failures = Vec::new();

    // Cold start.
    let mut daemon = Daemon::spawn(&home, 0, settings.daemon_nofile);
    let cold = measure_start(
        &mut daemon,
        &home,
        0,
        n,
        &sim,
        settings,
        &all_active,
        &mut failures,
        "cold start",
        0,
    )
    .await;
    let apis = [Api::Interactive, Api::Market];
    let counts: Vec<u64> = apis
        .iter()
        .flat_map(|api| {
            let per = sim.logins_per_account(*api);
            (1..=n)
                .map(|i| per.get(&format!("SCALE{i}")).copied().unwrap_or(0))
                .collect::<Vec<_>>()
        })
        .collect();
    let per_session = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    let not_one = counts.iter().filter(|c| **c != 1).count();
    if not_one > 0 {
        failures.push(format!(
            "N={n}: {not_one} of {sessions} sessions did not log in exactly once at cold start \
             (logins per session min {} max {})",
            per_session.0, per_session.1
        ));
    }

    // Restart on the same state directory.
    let stop = daemon.stop(settings.timeout).await;
    if stop.is_none() {
        failures.push(format!(
            "N={n}: the daemon did not stop within {:?} of SIGTERM",
            settings.timeout
        ));
    }
    drop(daemon);
    let mut daemon = Daemon::spawn(&home, 1, settings.daemon_nofile);
    let restart = measure_start(
        &mut daemon,
        &home,
        1,
        n,
        &sim,
        settings,
        &all_active,
        &mut failures,
        "restart",
        // Every stored session is checked, before READY or after it.
        if cold.all_active.is_ok() { sessions } else { 0 },
    )
    .await;
    // Only a finished cold start stored a valid session for every one.
    if restart.logins > 0 && cold.all_active.is_ok() {
        failures.push(format!(
            "N={n}: the restart logged in {} times (every stored session was valid)",
            restart.logins
        ));
    }
    let _ = daemon.stop(settings.timeout).await;
    drop(daemon);
    let rate_limited = sim.rate_limited_logins();
    sim.shutdown().await;
    Row {
        n,
        cold,
        per_session,
        not_one,
        rate_limited,
        stop,
        restart,
        failures,
    }
}

/// Measures one start of `daemon`: READY, first token, every session
/// active, what it cost at the simulator, and memory once active.
#[allow(clippy::too_many_arguments)]
pub async fn measure_start(
    daemon: &mut Daemon,
    home: &Home,
    run: usize,
    n: usize,
    sim: &XtsSim,
    settings: &Settings,
    all_active: &impl Fn(&BTreeMap<String, usize>) -> bool,
    failures: &mut Vec<String>,
    what: &str,
    checks_expected: usize,
) -> Start {
    let _ = sim.take_peak_logins_in_flight();
    let mut start = Start::new();
    let limit = settings.timeout;
    match daemon.ready(limit).await {
        Some((t, bytes)) => {
            start.ready = Some(t);
            start.ready_msg_bytes = bytes;
        }
        None => failures.push(format!("N={n} {what}: no READY=1 within {limit:?}")),
    }
    let spawned = daemon.spawned;
    let socket = home.socket();
    if n > 0 {
        start.first_token = first_token(&socket, &account_name(1), spawned, limit).await;
        if start.first_token.is_none() {
            failures.push(format!("N={n} {what}: no token within {limit:?}"));
        }
    }
    let mut peak_fds = 0;
    start.all_active =
        wait_states(daemon, &socket, spawned, limit, &mut peak_fds, all_active).await;
    if let Err(e) = &start.all_active {
        failures.push(format!("N={n} {what}: not every session active: {e}"));
    }
    start.peak_fds = peak_fds;
    // This daemon's requests: the previous one had exited before the spawn.
    let spawned_at = daemon.spawned_at;
    let since = |t: DateTime<Utc>| (t - spawned_at).to_std().unwrap_or_default();
    let since_spawn = |of: fn(&XtsSim, Api) -> Vec<DateTime<Utc>>| {
        let mut times: Vec<DateTime<Utc>> = [Api::Interactive, Api::Market]
            .into_iter()
            .flat_map(|api| of(sim, api))
            .filter(|t| *t >= spawned_at)
            .collect();
        times.sort_unstable();
        times
    };
    // Checks may go on after every session is active (in the background).
    while checks_expected > 0 && since_spawn(XtsSim::check_times).len() < checks_expected {
        if spawned.elapsed() > limit {
            failures.push(format!(
                "N={n} {what}: not every stored session was checked within {limit:?}"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logins = since_spawn(XtsSim::login_times);
    let checks = since_spawn(XtsSim::check_times);
    if checks_expected > 0 && checks.len() >= checks_expected {
        start.all_checked = checks.last().map(|t| since(*t));
    }
    let second = Duration::from_secs(1);
    start.logins = logins.len() as u64;
    start.checks = checks.len() as u64;
    start.peak_per_sec = peak_in_window(&logins, second);
    start.peak_checks_per_sec = peak_in_window(&checks, second);
    start.login_span = logins
        .first()
        .zip(logins.last())
        .map(|(a, b)| (since(*a), since(*b)));
    start.peak_in_flight = sim.take_peak_logins_in_flight();
    // Let the start's work (tasks ending, buffers freed) settle first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = daemon.pid();
    (start.rss_kib, start.hwm_kib) = memory_kib(pid);
    start.fds = open_fds(pid);
    start.threads = threads(pid);
    start.log = LogSummary::read(&home.log(run));
    start
}
