//! A private PostgreSQL cluster for tests: started lazily once per test
//! process in a temp folder (Unix socket only, no TCP port, so parallel
//! test processes never collide), one fresh database per test, stopped
//! when the process ends.
//!
//! Shared by the library's store tests and `tests/it` (which includes this
//! file by path); it uses only std and tempfile. Without PostgreSQL's
//! server binaries (`initdb`, `pg_ctl`: on PATH or under
//! /usr/lib/postgresql/*/bin) it answers why, and the tests skip.
//!
//! Clean-up: the shared cluster lives as long as the test process; a
//! watcher (`sh`, started with the cluster) polls the test process and, once
//! it is gone (however it ended, SIGKILL included), stops the server with
//! `pg_ctl stop -m immediate` and removes the folder. A [`PgCluster`]
//! owned by a test (one it restarts) is also stopped by its `Drop`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The port number only names the socket file (`.s.PGSQL.<port>`) in the
/// cluster's own folder: no TCP listener is opened.
const PORT: u16 = 5432;

/// A running cluster in a temp folder.
pub struct PgCluster {
    /// The temp folder: `data/` (the cluster), the socket, `log`.
    root: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    databases: AtomicU32,
    /// Whether `Drop` stops it (a test's own cluster); the shared one is
    /// left to the watcher.
    stop_on_drop: bool,
}

/// The process's shared cluster, started on first use; `Err` says why
/// there is none (the tests then skip).
pub fn shared() -> Result<&'static PgCluster, String> {
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| PgCluster::start(false))
        .as_ref()
        .map_err(Clone::clone)
}

/// A fresh database in the shared cluster: its URL, or why there is none
/// (printed as a skip by the caller).
pub fn fresh_database() -> Result<String, String> {
    shared()?.create_database()
}

/// Prints that a PostgreSQL test was skipped, and why. Written to the
/// process's stderr itself, not through `eprintln!`, which the test harness
/// captures (and shows only for failing tests).
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test} (PostgreSQL): {why}");
}

/// Where the server binaries are: the folder of `initdb` on PATH, else the
/// newest /usr/lib/postgresql/<version>/bin.
fn find_bin() -> Result<PathBuf, String> {
    // PATH may hold links to a few of the programs only (initdb, pg_ctl):
    // the folder they point into has all of them (createdb too).
    if let Some(dir) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .filter_map(|d| std::fs::canonicalize(d.join("initdb")).ok())
        .filter_map(|initdb| initdb.parent().map(Path::to_path_buf))
        .find(|d| ["pg_ctl", "createdb"].iter().all(|p| d.join(p).is_file()))
    {
        return Ok(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|d| d.join("initdb").is_file())
        .ok_or_else(|| {
            "no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin \
             (apt-get install postgresql-15)"
                .to_string()
        })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

impl PgCluster {
    /// initdb + pg_ctl start in a new temp folder. As root, the server runs
    /// as the `postgres` user (initdb refuses root).
    pub fn start(stop_on_drop: bool) -> Result<Self, String> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        let root = tempfile::Builder::new()
            .prefix("brokerd-pg-")
            .tempdir()
            .map_err(|e| format!("temp folder: {e}"))?
            .keep();
        let cluster = Self {
            root,
            bin,
            as_postgres,
            databases: AtomicU32::new(0),
            stop_on_drop,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.root)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err(
                    "chown of the cluster folder to postgres failed (no postgres user?)".into(),
                );
            }
        }
        cluster.watch();
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        cluster.pg_ctl(&["start", "-w", "-t", "60"])?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The folder the server's Unix socket is in.
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The URL of database `name` (user `postgres`, trust authentication:
    /// any password in the URL is ignored by the server).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@localhost:{PORT}/{name}?host={}",
            self.root.display()
        )
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self) -> Result<String, String> {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.run(
            "createdb",
            &[
                "-h",
                &self.root.display().to_string(),
                "-p",
                &PORT.to_string(),
                "-U",
                "postgres",
                &name,
            ],
        )?;
        Ok(self.url(&name))
    }

    /// Stops the server (fast: connections are closed) and leaves it down.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl(&["stop", "-m", "fast", "-w"])
    }

    /// Starts the server again after [`PgCluster::stop`].
    pub fn start_again(&self) -> Result<(), String> {
        self.pg_ctl(&["start", "-w", "-t", "60"])
    }

    /// `pg_ctl restart` (fast: every connection is dropped).
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses='' -c unix_socket_directories='{}' -p {PORT} \
             -c max_connections=400 -c shared_buffers=16MB",
            self.root.display()
        );
        let data = self.data().display().to_string();
        let log = self.root.join("log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log, "-o", &options];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all)
    }

    /// Runs one of the server's programs (as `postgres` when we are root),
    /// with no stdio of ours: a server holding the test's output pipe would
    /// keep whoever reads it waiting.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// A watcher that stops the server and removes the folder once this
    /// process is gone, however it ended.
    fn watch(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = format!(
            "{}{} -D {} stop -m immediate",
            if self.as_postgres {
                "runuser -u postgres -- "
            } else {
                ""
            },
            pg_ctl.display(),
            self.data().display()
        );
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.2; done; {stop} >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            root = self.root.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
