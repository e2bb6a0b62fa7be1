//! The command lines of both binaries (`args`, `daemon_args`) and brokerctl's
//! commands: the brokerctl binary only parses arguments and calls [`run`].

mod args;
mod daemon_args;
mod exec;
mod history;
mod render;

pub use args::{Args, Command, Target};
pub use daemon_args::{DaemonArgs, DaemonCommand};

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::client::{self, Client};
use crate::store::{EncryptionKey, write_key_file};

/// Runs one command; errors are one line for the operator.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Command::Keygen { out } = &args.command {
        return keygen(out.as_deref());
    }
    let path = client::socket_path(args.socket.as_deref(), args.config.as_deref())
        .map_err(anyhow::Error::msg)?;
    if let Command::Exec {
        target,
        on_renew,
        grace,
        min_valid,
        wait,
        command,
    } = args.command
    {
        let request = with_target(
            json!({"op": "token", "min_valid_secs": min_valid, "wait_secs": wait}),
            &target,
        );
        let exec = exec::Exec {
            request,
            on_renew,
            grace: std::time::Duration::from_secs(grace),
            command,
        };
        return exec::run(&path, exec).await;
    }
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
        Command::Keygen { .. } | Command::Exec { .. } => unreachable!("handled above"),
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
                // Heartbeats keep the stream checked, they tell a person nothing.
                if event["event"] != "heartbeat" {
                    println!("{event}");
                }
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
