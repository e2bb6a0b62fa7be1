//! brokerctl's commands. The binary only parses arguments and calls [`run`].

mod history;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::client::{self, Client};
use crate::store::{EncryptionKey, write_key_file};

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
    /// kotak_neo, breeze, zerodha or jainam.
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
        #[arg(long, value_parser = history::parse_since)]
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
    /// Make a new encryption key (base64 of 32 random bytes).
    Keygen {
        /// Write it to this file (mode 0600, must not exist) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs one command; errors are one line for the operator.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Command::Keygen { out } = &args.command {
        return keygen(out.as_deref());
    }
    let path = client::socket_path(args.socket.as_deref(), args.config.as_deref())
        .map_err(anyhow::Error::msg)?;
    let mut conn = Client::connect(&path).await?;
    let request = match &args.command {
        Command::Status { .. } => json!({"op": "status"}),
        Command::Metrics => json!({"op": "metrics"}),
        Command::Reload { forget_removed } => {
            json!({"op": "reload", "forget_removed": forget_removed})
        }
        Command::Watch { brokers } if brokers.is_empty() => json!({"op": "subscribe"}),
        Command::Watch { brokers } => json!({"op": "subscribe", "brokers": brokers}),
        Command::Token {
            target,
            min_valid,
            wait,
            ..
        } => with_target(
            json!({"op": "token", "min_valid_secs": min_valid, "wait_secs": wait}),
            target,
        ),
        Command::Invalidate {
            target,
            generation,
            reason,
            http_status,
            wait,
        } => with_target(
            json!({"op": "invalidate", "generation": generation, "reason": reason, "http_status": http_status, "wait_secs": wait}),
            target,
        ),
        Command::Login { target, wait } => {
            with_target(json!({"op": "login", "wait_secs": wait}), target)
        }
        Command::Logout { target } => with_target(json!({"op": "logout"}), target),
        Command::LoginUrl { target } => with_target(json!({"op": "login_url"}), target),
        Command::Submit {
            target,
            value,
            state,
            wait,
        } => {
            let value = match value.as_deref() {
                Some(v) if v != "-" => v.to_string(),
                _ => read_stdin()?,
            };
            let field = if target.broker == "breeze" {
                "api_session"
            } else {
                "request_token"
            };
            with_target(
                json!({"op": "submit", field: value, "state": state, "wait_secs": wait}),
                target,
            )
        }
        Command::Sign { target, body } => {
            let body = if body == "-" {
                read_stdin()?
            } else {
                body.clone()
            };
            with_target(json!({"op": "sign", "body": body}), target)
        }
        Command::History {
            broker,
            account,
            api,
            since,
            limit,
            ..
        } => without_nulls(json!({
            "op": "history", "broker": broker, "account": account, "api": api,
            "since_secs": since, "limit": limit,
        })),
        Command::RotateKey { new } => {
            // The daemon has its own working folder: send an absolute path.
            let file = new
                .as_deref()
                .map(std::path::absolute)
                .transpose()
                .map_err(|e| anyhow::anyhow!("cannot resolve the --new path: {e}"))?;
            without_nulls(json!({"op": "rotate_key", "new_key_file": file}))
        }
        Command::Keygen { .. } => unreachable!("handled above"),
    };
    let reply = conn.call(&request).await?;
    if reply["ok"] != json!(true) {
        let code = reply["error"]["code"].as_str().unwrap_or("error");
        let message = reply["error"]["message"].as_str().unwrap_or("no message");
        let retry = reply["error"]["retry_after_secs"]
            .as_u64()
            .map(|s| format!(" (retry in {s}s)"))
            .unwrap_or_default();
        eprintln!("brokerctl: {code}: {message}{retry}");
        if let Some(url) = reply["error"]["login_url"].as_str() {
            eprintln!("log in at: {url}");
        }
        return Ok(ExitCode::FAILURE);
    }
    match &args.command {
        Command::Status { json: true } => {
            println!("{}", serde_json::to_string_pretty(&reply["accounts"])?)
        }
        Command::Status { json: false } => print!("{}", render::status_table(&reply["accounts"])),
        Command::Metrics => print!("{}", reply["text"].as_str().unwrap_or("")),
        Command::History { json: true, .. } => {
            println!("{}", serde_json::to_string_pretty(&reply)?)
        }
        Command::History { json: false, .. } => print!("{}", history::table(&reply)),
        Command::RotateKey { new } => {
            println!(
                "rotated the storage key {} -> {}: {} session(s) re-encrypted; the key file now \
                 holds the new key",
                reply["old_key_id"].as_str().unwrap_or("?"),
                reply["new_key_id"].as_str().unwrap_or("?"),
                reply["sessions"]
            );
            let unreadable = reply["unreadable"].as_array().map_or(0, Vec::len);
            if unreadable > 0 {
                println!(
                    "{unreadable} stored session(s) were unreadable before and stay so (a login \
                     replaces them): {}",
                    reply["unreadable"]
                );
            }
            if let Some(path) = new {
                println!(
                    "{} is now a second copy of the key: delete it (shred -u {})",
                    path.display(),
                    path.display()
                );
            }
        }
        Command::Reload { .. } => {
            let list = |k: &str| {
                reply[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            println!(
                "reloaded: added [{}], removed [{}], changed [{}], unchanged {}",
                list("added"),
                list("removed"),
                list("changed"),
                reply["unchanged"]
            );
            let restart = list("needs_restart");
            if !restart.is_empty() {
                println!("restart brokerd to apply: {restart}");
            }
        }
        Command::Logout { target } => println!("logged out {}", target.broker),
        Command::LoginUrl { .. } => {
            println!("{}", reply["login_url"].as_str().unwrap_or(""));
            if let Some(redirect) = reply["redirect_url"].as_str() {
                eprintln!("(the broker app's redirect URL must be {redirect})");
            }
        }
        Command::Submit { .. } => {
            let s = &reply["session"];
            println!(
                "{}/{} logged in as {}: generation {}, valid until {}",
                s["broker"].as_str().unwrap_or("?"),
                s["account"].as_str().unwrap_or("?"),
                s["fields"]["user_id"].as_str().unwrap_or("?"),
                s["generation"],
                s["expires_at"].as_str().unwrap_or("?")
            );
        }
        Command::Sign { .. } => {
            println!("{}", serde_json::to_string_pretty(&reply["headers"])?)
        }
        Command::Watch { .. } => {
            while let Some(event) = conn.next().await? {
                println!("{event}");
            }
        }
        Command::Token {
            field: Some(name), ..
        } => match render::field(&reply["session"], name) {
            Some(v) => println!("{v}"),
            None => {
                eprintln!("brokerctl: the session has no field {name:?}");
                return Ok(ExitCode::FAILURE);
            }
        },
        Command::Token { export: true, .. } => {
            print!("{}", render::export_lines(&reply["session"]))
        }
        _ => println!("{}", serde_json::to_string_pretty(&reply["session"])?),
    }
    Ok(ExitCode::SUCCESS)
}

fn with_target(mut request: Value, target: &Target) -> Value {
    request["broker"] = json!(target.broker);
    if let Some(a) = &target.account {
        request["account"] = json!(a);
    }
    if let Some(a) = &target.api {
        request["api"] = json!(a);
    }
    without_nulls(request)
}

/// Drops nulls so the daemon applies its defaults.
fn without_nulls(mut request: Value) -> Value {
    if let Value::Object(map) = &mut request {
        map.retain(|_, v| !v.is_null());
    }
    request
}

/// A value piped in (so it stays out of the process list and shell history).
fn read_stdin() -> anyhow::Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
    let text = text.trim().to_string();
    if text.is_empty() {
        anyhow::bail!("nothing on stdin: pass the value as an argument or pipe it in");
    }
    Ok(text)
}

fn keygen(out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let key = EncryptionKey::generate();
    match out {
        Some(path) => {
            write_key_file(path, &key)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote key {} to {} (mode 0600)", key.id(), path.display());
        }
        None => println!("{}", key.to_base64().expose()),
    }
    Ok(ExitCode::SUCCESS)
}
