//! brokerctl's command line: the one definition of its arguments, parsed by
//! the binary and rendered into the man pages and shell completions that
//! `tests/it/cli_assets.rs` keeps under `dist/`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Command line of brokerctl.
#[derive(Debug, Parser)]
#[command(
    name = "brokerctl",
    version,
    about = "Talk to brokerd: status, tokens, logins, events"
)]
pub struct Args {
    /// Socket path (else $BROKERD_SOCKET, else the config's daemon.socket).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Config file to read the socket path from.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which session a command is about.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// kotak_neo, breeze, zerodha, jainam or angel_one.
    pub broker: String,
    /// Account name (optional when the broker has one account).
    #[arg(long)]
    pub account: Option<String>,
    /// interactive (default) or market (Jainam market data).
    #[arg(long)]
    pub api: Option<String>,
}

/// brokerctl subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every account: state, generation, expiry, last login, last error.
    Status {
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A valid session (JSON by default).
    Token {
        /// Which session.
        #[command(flatten)]
        target: Target,
        /// Print one value: token, generation, expires_at, a field name, or a header name.
        #[arg(long, conflicts_with = "export")]
        field: Option<String>,
        /// Print `export NAME='value'` lines for a shell.
        #[arg(long)]
        export: bool,
        /// The session must stay valid this many seconds.
        #[arg(long)]
        min_valid: Option<u64>,
        /// Wait up to this many seconds for a login.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Report that the broker rejected a generation; prints the new session.
    Invalidate {
        /// Which session.
        #[command(flatten)]
        target: Target,
        /// The rejected generation.
        #[arg(long)]
        generation: u64,
        /// What the broker answered: its JSON body or message.
        #[arg(long)]
        reason: Option<String>,
        /// The HTTP status of that answer.
        #[arg(long)]
        http_status: Option<u16>,
        /// Wait up to this many seconds for the new login.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Force a fresh login (also clears locked_out and conflict).
    Login {
        /// Which session.
        #[command(flatten)]
        target: Target,
        /// Wait up to this many seconds for the login.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Print the browser login link (Zerodha, Breeze).
    LoginUrl {
        /// Which session.
        #[command(flatten)]
        target: Target,
    },
    /// Complete a browser login: Zerodha's request_token or Breeze's
    /// API_Session, as an argument or on stdin (`-` or nothing).
    Submit {
        /// Which session.
        #[command(flatten)]
        target: Target,
        /// The request_token (Zerodha) or API_Session (Breeze); `-` reads stdin.
        value: Option<String>,
        /// The `state` the redirect carried, if you copied it.
        #[arg(long)]
        state: Option<String>,
        /// Wait up to this many seconds for another login in progress.
        #[arg(long)]
        wait: Option<u64>,
    },
    /// Breeze: X-Checksum and the other headers for one request body.
    Sign {
        /// Which session.
        #[command(flatten)]
        target: Target,
        /// The exact JSON body you will send (`-` reads stdin; default `{}`).
        #[arg(long, default_value = "{}")]
        body: String,
    },
    /// End the session at the broker and forget it.
    Logout {
        /// Which session.
        #[command(flatten)]
        target: Target,
    },
    /// Print session events as they happen (one JSON line each).
    Watch {
        /// Only these brokers.
        #[arg(long = "broker")]
        brokers: Vec<String>,
    },
    /// Prometheus metrics.
    Metrics,
    /// Re-read the daemon's config file and apply it (like SIGHUP).
    Reload {
        /// Also forget the stored sessions of accounts no longer configured.
        #[arg(long)]
        forget_removed: bool,
    },
    /// The audit trail, newest first: logins, failures, invalidations,
    /// submissions, lock-outs, conflicts, key rotations. Never a secret.
    History {
        /// Only this broker.
        broker: Option<String>,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
        /// Only this api (interactive or market).
        #[arg(long)]
        api: Option<String>,
        /// Only events of the last DURATION (90s, 15m, 2h, 7d).
        #[arg(long, value_parser = super::history::parse_since)]
        since: Option<u64>,
        /// At most this many events (default 50, at most 1000).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the raw JSON reply instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every stored session under a new storage key and make it
    /// the key file's key (no login, no downtime). Operators only.
    RotateKey {
        /// The new key's file (as written by `keygen --out`; mode 0600 and
        /// readable by brokerd's user, which reads it itself). Without it,
        /// brokerd makes the new key.
        #[arg(long)]
        new: Option<PathBuf>,
    },
    /// Run a program with the session in its environment (the `token
    /// --export` variables), and restart or signal it when the session is
    /// renewed. Its exit status is brokerctl's.
    Exec {
        /// Which session.
        #[command(flatten)]
        target: Target,
        /// On a new session: restart (default), signal:NAME (e.g.
        /// signal:HUP; the program fetches the new session itself), or
        /// ignore.
        #[arg(long, default_value = "restart")]
        on_renew: super::exec::OnRenew,
        /// Seconds a restarted program gets between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        grace: u64,
        /// The session must stay valid this many seconds.
        #[arg(long)]
        min_valid: Option<u64>,
        /// Wait up to this many seconds for a login.
        #[arg(long)]
        wait: Option<u64>,
        /// The program and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Make a new encryption key (base64 of 32 random bytes).
    Keygen {
        /// Write it to this file (mode 0600, must not exist) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
