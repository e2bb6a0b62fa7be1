//! Socket benchmark: `token` round trips against the real `brokerd` binary,
//! compared with a plain line-echo server (the floor any line protocol over a
//! Unix socket can reach on this machine).
//!
//! `cargo bench --bench socket` prints p50/p99 latency and throughput at 1 and
//! 64 clients for both servers, the token/echo p50 ratio, the daemon's CPU
//! time per request, and its memory when idle and after load. Run without
//! `--bench` (as `cargo test --benches` does) it makes a short smoke run whose
//! figures mean nothing.
//!
//! Both servers run as child processes so they are measured the same way:
//! the echo server is this binary re-executed with `BROKERD_BENCH_ECHO` set.
//! The clients run in this process, so clients and servers share the cores.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokerd::protocol::{Hello, Request, Token};
use brokerd_sim::xts::{XtsSim, XtsSimConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use common::{ChildGuard, memory_kib, mib, wait_ready};

/// Set in the re-executed child: the socket path the echo server binds.
const ECHO_ENV: &str = "BROKERD_BENCH_ECHO";

/// The request every token client sends, built from the wire types (the
/// line is `{"op":"token","broker":"jainam","account":"bench"}`, as it was
/// when the benchmark spelt it out). Account "bench" is the only one in the
/// generated config.
fn token_request() -> String {
    Request::Token(Token {
        broker: Some("jainam".into()),
        account: Some("bench".into()),
        ..Token::default()
    })
    .to_line()
}

/// The aims of the issue this benchmark answers.
const AIM_P50_RATIO: f64 = 1.5;
const AIM_TOKEN_OPS_64: f64 = 150_000.0;

fn main() {
    if let Some(path) = std::env::var_os(ECHO_ENV) {
        echo_server(Path::new(&path));
        return;
    }
    // cargo bench passes --bench; cargo test --benches does not, and then a
    // full ~30 s measurement would only slow the test run down.
    let full = std::env::args().any(|a| a == "--bench");
    let timing = if full {
        Timing {
            warm_up: Duration::from_secs(1),
            slice_warm_up: Duration::from_millis(200),
            measure: Duration::from_secs(5),
            slices: 5,
        }
    } else {
        Timing {
            warm_up: Duration::from_millis(100),
            slice_warm_up: Duration::from_millis(50),
            measure: Duration::from_millis(300),
            slices: 2,
        }
    };
    // Default worker count (one per core), like the daemon's own runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(timing, full));
}

#[derive(Clone, Copy)]
struct Timing {
    /// Unrecorded time before a target's first slice.
    warm_up: Duration,
    /// Unrecorded time at the start of each later slice (new connections).
    slice_warm_up: Duration,
    /// Recorded time per (clients, target), split over `slices`.
    measure: Duration,
    slices: u32,
}

// ---------------------------------------------------------------------------
// The echo server (child process)

/// Line echo: read a line, write it back. Deliberately the same shape as the
/// daemon's connection loop minus the request handling, so the difference
/// between the two is what the daemon does per request.
fn echo_server(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let listener = UnixListener::bind(path).expect("echo server binds its socket");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                let mut line = String::new();
                loop {
                    line.clear();
                    match read.read_line(&mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if write.write_all(line.as_bytes()).await.is_err()
                        || write.flush().await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
}

fn config_text(dir: &Path, root: &str) -> String {
    let d = dir.display();
    format!(
        r#"
[daemon]
socket = "{d}/brokerd.sock"
state_dir = "{d}/state"
key = "file:{d}/keys/brokerd.key"
create_key_if_missing = true
log_format = "human"

[daemon.limits]
# 64 benchmark clients plus the probes; the default is higher already, set
# here so the benchmark does not depend on it.
max_connections = 256
# Every client is this process's uid.
max_connections_per_uid = 256

[[account]]
broker = "jainam"
name = "bench"
login_at_start = true

[account.jainam]
root = "{root}"
# The simulator's demo credentials (literal on purpose: a throwaway daemon).
[account.jainam.interactive]
app_key = "demo-interactive-key"
secret_key = "demo-interactive-secret"
[account.jainam.market]
app_key = "demo-market-key"
secret_key = "demo-market-secret"
"#
    )
}

// ---------------------------------------------------------------------------
// /proc readings

/// CPU time of all live threads of `pid`, from `schedstat` (nanoseconds,
/// finer than the 10 ms ticks of `/proc/PID/stat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

// ---------------------------------------------------------------------------
// Load

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Echo,
    Token,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Token => "token",
        }
    }
}

/// What one client connection measured.
struct TaskResult {
    latencies_ns: Vec<u64>,
    bad_replies: u64,
    reply_bytes: usize,
}

/// What one (clients, target) pair measured over all its slices.
struct RunResult {
    clients: usize,
    target: Target,
    latencies_ns: Vec<u64>,
    measured: Duration,
    bad_replies: u64,
    io_errors: usize,
    reply_bytes: usize,
    /// p50 of each slice, to show how much placement moves the figures.
    slice_p50s_ns: Vec<u64>,
    server_cpu_ns: u64,
    client_cpu_ns: u64,
}

impl RunResult {
    fn new(clients: usize, target: Target) -> Self {
        Self {
            clients,
            target,
            latencies_ns: Vec::new(),
            measured: Duration::ZERO,
            bad_replies: 0,
            io_errors: 0,
            reply_bytes: 0,
            slice_p50s_ns: Vec::new(),
            server_cpu_ns: 0,
            client_cpu_ns: 0,
        }
    }

    fn ops(&self) -> usize {
        self.latencies_ns.len()
    }

    fn ops_per_sec(&self) -> f64 {
        self.ops() as f64 / self.measured.as_secs_f64().max(1e-9)
    }

    /// Needs `latencies_ns` sorted.
    fn p50_ns(&self) -> u64 {
        percentile(&self.latencies_ns, 50.0)
    }

    fn p99_ns(&self) -> u64 {
        percentile(&self.latencies_ns, 99.0)
    }

    fn per_op_us(&self, ns: u64) -> f64 {
        ns as f64 / self.ops().max(1) as f64 / 1e3
    }

    fn failed(&self) -> bool {
        self.bad_replies > 0 || self.io_errors > 0
    }
}

/// One closed-loop client: request, wait for the reply, next request.
/// Latencies are kept only for requests started inside the measured window.
async fn client(
    stream: UnixStream,
    request: Arc<str>,
    target: Target,
    warm_end: Instant,
    end: Instant,
) -> std::io::Result<TaskResult> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut reply = String::with_capacity(1024);
    // A 1 s slice is a few thousand requests per connection at 64 clients
    // and a few tens of thousands at 1: start big enough that a slice rarely
    // reallocates while it measures.
    let mut latencies_ns = Vec::with_capacity(1 << 16);
    let mut bad_replies = 0;
    let mut reply_bytes = 0;
    let mut started = Instant::now();
    while started < end {
        write.write_all(request.as_bytes()).await?;
        reply.clear();
        if read.read_line(&mut reply).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        let done = Instant::now();
        let ok = match target {
            Target::Echo => reply == *request,
            // Cheap on purpose: parsing JSON here would slow the client and
            // blur the comparison with echo.
            Target::Token => reply.contains("\"ok\":true"),
        };
        reply_bytes = reply.len();
        if started >= warm_end {
            latencies_ns.push(done.duration_since(started).as_nanos() as u64);
            bad_replies += u64::from(!ok);
        }
        started = done;
    }
    Ok(TaskResult {
        latencies_ns,
        bad_replies,
        reply_bytes,
    })
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One slice: `clients` fresh connections, `warm_up` unrecorded, then
/// `measure` recorded into `into`.
async fn slice(
    path: &Path,
    server_pid: u32,
    warm_up: Duration,
    measure: Duration,
    into: &mut RunResult,
) {
    let request: Arc<str> = format!("{}\n", token_request()).into();
    // Connect everyone first so connection setup is not in any latency.
    let mut streams = Vec::with_capacity(into.clients);
    for _ in 0..into.clients {
        streams.push(
            UnixStream::connect(path)
                .await
                .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display())),
        );
    }
    let warm_end = Instant::now() + warm_up;
    let end = warm_end + measure;
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(client(s, request.clone(), into.target, warm_end, end)))
        .collect();
    // CPU is sampled at the window's edges; the few requests in flight at
    // either edge are noise against hundreds of thousands.
    tokio::time::sleep_until(warm_end.into()).await;
    let (server_cpu0, client_cpu0) = (cpu_ns(server_pid), cpu_ns(std::process::id()));
    tokio::time::sleep_until(end.into()).await;
    let (server_cpu1, client_cpu1) = (cpu_ns(server_pid), cpu_ns(std::process::id()));
    into.server_cpu_ns += server_cpu1.saturating_sub(server_cpu0);
    into.client_cpu_ns += client_cpu1.saturating_sub(client_cpu0);
    into.measured += measure;

    let mut this = Vec::new();
    for t in tasks {
        match t.await.expect("client task") {
            Ok(r) => {
                this.extend_from_slice(&r.latencies_ns);
                into.bad_replies += r.bad_replies;
                into.reply_bytes = into.reply_bytes.max(r.reply_bytes);
            }
            Err(e) => {
                eprintln!("{} client failed: {e}", into.target.name());
                into.io_errors += 1;
            }
        }
    }
    this.sort_unstable();
    into.slice_p50s_ns.push(percentile(&this, 50.0));
    into.latencies_ns.extend_from_slice(&this);
}

/// Measures echo and token at `clients`, alternating short slices between
/// the two targets instead of one long run each: with clients and servers
/// sharing the cores, where the scheduler places the threads moves latency
/// a lot (bimodally at 1 client) and sticks for seconds, so back-to-back
/// long runs could compare a lucky placement with an unlucky one. Fresh
/// connections each slice re-draw the placement for both targets alike.
async fn run_pair(
    targets: [(Target, &Path, u32); 2],
    clients: usize,
    timing: Timing,
) -> [RunResult; 2] {
    let mut results = targets.map(|(target, _, _)| RunResult::new(clients, target));
    let per_slice = timing.measure / timing.slices;
    for i in 0..timing.slices {
        for ((_, path, pid), result) in targets.iter().zip(results.iter_mut()) {
            let warm_up = if i == 0 {
                timing.warm_up
            } else {
                timing.slice_warm_up
            };
            slice(path, *pid, warm_up, per_slice, result).await;
        }
    }
    for r in &mut results {
        r.latencies_ns.sort_unstable();
    }
    results
}

// ---------------------------------------------------------------------------
// The benchmark

async fn bench(timing: Timing, full: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("brokerd.log");

    // The simulator serves the daemon's one login at start; it lives on this
    // process's runtime and is idle during the measurements.
    let sim = XtsSim::start(XtsSimConfig::default())
        .await
        .expect("simulator starts");
    let config_path = dir.path().join("brokerd.toml");
    std::fs::write(&config_path, config_text(dir.path(), &sim.base_url())).expect("write config");

    let log = std::fs::File::create(&log_path).expect("create daemon log");
    let mut daemon = ChildGuard {
        name: "brokerd",
        child: Command::new(env!("CARGO_BIN_EXE_brokerd"))
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn brokerd"),
    };
    let echo_sock = dir.path().join("echo.sock");
    let mut echo = ChildGuard {
        name: "echo server",
        child: Command::new(std::env::current_exe().expect("own path"))
            .env(ECHO_ENV, &echo_sock)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn echo server"),
    };

    let daemon_sock = dir.path().join("brokerd.sock");
    let show_log = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        format!("\nbrokerd log:\n{text}")
    };
    let limit = Duration::from_secs(30);
    wait_ready(
        &mut daemon,
        &daemon_sock,
        &Request::Hello(Hello {}).to_line(),
        "\"ok\":true",
        limit,
        show_log,
    )
    .await;
    wait_ready(
        &mut daemon,
        &daemon_sock,
        &token_request(),
        "\"ok\":true",
        limit,
        show_log,
    )
    .await;
    wait_ready(
        &mut echo,
        &echo_sock,
        &token_request(),
        "token",
        limit,
        String::new,
    )
    .await;

    // Let startup work (store, first refresh scheduling) settle first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (idle_rss, idle_hwm) = memory_kib(daemon.pid());
    let (echo_rss, _) = memory_kib(echo.pid());
    let log_before = std::fs::metadata(&log_path).map_or(0, |m| m.len());

    let mut results = Vec::new();
    for clients in [1, 64] {
        let targets = [
            (Target::Echo, echo_sock.as_path(), echo.pid()),
            (Target::Token, daemon_sock.as_path(), daemon.pid()),
        ];
        results.extend(run_pair(targets, clients, timing).await);
        echo.assert_alive();
        daemon.assert_alive();
    }
    let (load_rss, load_hwm) = memory_kib(daemon.pid());
    let log_after = std::fs::metadata(&log_path).map_or(0, |m| m.len());

    report(
        &results,
        timing,
        full,
        (idle_rss, idle_hwm, load_rss, load_hwm, echo_rss),
        log_after.saturating_sub(log_before),
    );
    drop(echo);
    drop(daemon);
    sim.shutdown().await;
}

fn report(
    results: &[RunResult],
    timing: Timing,
    full: bool,
    (idle_rss, idle_hwm, load_rss, load_hwm, echo_rss): (u64, u64, u64, u64, u64),
    log_growth: u64,
) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let find = |clients, target| {
        results
            .iter()
            .find(|r| r.clients == clients && r.target == target)
            .expect("every run is in the results")
    };
    println!();
    if !full {
        println!("SMOKE RUN (no --bench argument): the figures below mean nothing");
    }
    println!(
        "brokerd socket benchmark ({cores} cores), {:?} measured per row \
         ({} slices of {:?}, alternating echo/token; warm-up {:?} first, {:?} per later slice)",
        timing.measure,
        timing.slices,
        timing.measure / timing.slices,
        timing.warm_up,
        timing.slice_warm_up
    );
    println!(
        "clients (this process) and servers (child processes) share the {cores} cores; \
         each client is closed-loop (next request after the reply)"
    );
    println!(
        "request {} B (same line to both); reply: echo {} B, token {} B",
        token_request().len() + 1,
        find(1, Target::Echo).reply_bytes,
        find(1, Target::Token).reply_bytes,
    );
    println!();
    println!(
        "{:<8} {:<7} {:>8} {:>8} {:>9} {:>17} {:>11} {:>11}  status",
        "clients",
        "target",
        "p50_us",
        "p99_us",
        "ops/s",
        "slice_p50_us",
        "srv_cpu_us",
        "cli_cpu_us"
    );
    for r in results {
        let status = if r.failed() {
            format!(
                "FAILED: {} bad replies, {} connections broke",
                r.bad_replies, r.io_errors
            )
        } else {
            "ok".to_string()
        };
        let lo = r.slice_p50s_ns.iter().min().copied().unwrap_or(0);
        let hi = r.slice_p50s_ns.iter().max().copied().unwrap_or(0);
        println!(
            "{:<8} {:<7} {:>8.1} {:>8.1} {:>9.0} {:>17} {:>11.2} {:>11.2}  {status}",
            r.clients,
            r.target.name(),
            r.p50_ns() as f64 / 1e3,
            r.p99_ns() as f64 / 1e3,
            r.ops_per_sec(),
            format!("{:.1}-{:.1}", lo as f64 / 1e3, hi as f64 / 1e3),
            r.per_op_us(r.server_cpu_ns),
            r.per_op_us(r.client_cpu_ns),
        );
    }
    println!(
        "slice_p50_us: lowest-highest p50 of the slices; srv_cpu_us / cli_cpu_us: CPU time per \
         request of the server process / of this (client) process"
    );
    let ratio = |clients| {
        find(clients, Target::Token).p50_ns() as f64
            / find(clients, Target::Echo).p50_ns().max(1) as f64
    };
    let (r1, r64) = (ratio(1), ratio(64));
    println!();
    println!("token/echo p50 ratio: 1 client {r1:.2}, 64 clients {r64:.2}");
    println!(
        "daemon RSS: idle {:.1} MiB, after load {:.1} MiB, peak (VmHWM, includes startup) {:.1} MiB \
         (VmHWM when idle {:.1} MiB; echo server RSS {:.1} MiB)",
        mib(idle_rss),
        mib(load_rss),
        mib(load_hwm),
        mib(idle_hwm),
        mib(echo_rss)
    );
    println!("daemon log grew by {log_growth} B during the runs");
    println!();
    let token64 = find(64, Target::Token).ops_per_sec();
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    println!(
        "aim: token p50 within {AIM_P50_RATIO}x of echo: {} (1 client {r1:.2}x, 64 clients {r64:.2}x)",
        verdict(r1 <= AIM_P50_RATIO && r64 <= AIM_P50_RATIO)
    );
    println!(
        "aim: >= {AIM_TOKEN_OPS_64:.0} token ops/s at 64 clients: {} ({token64:.0} ops/s)",
        verdict(token64 >= AIM_TOKEN_OPS_64)
    );
    if results.iter().any(RunResult::failed) {
        println!("SOME RUNS HAD FAILURES: their figures do not count");
    }
    if !full {
        println!("(smoke run: verdicts above are not meaningful)");
    }
}
