//! The command lines of both binaries (`args`, `daemon_args`) and brokerctl's
//! commands: the brokerctl binary only parses arguments and calls [`run`].

mod args;
mod daemon_args;
mod exec;
mod history;
mod render;

pub use args::{Args, Command, Target};
pub use daemon_args::{DaemonArgs, DaemonCommand};

use std::borrow::Cow;
use std::process::ExitCode;

use serde_json::json;

use crate::client::{self, Client};
use crate::protocol::{self, Request};
use crate::secret::Secret;
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
        let (broker, account, api) = owned(&target);
        let request = Request::Token(protocol::Token {
            broker,
            account,
            api,
            min_valid_secs: min_valid,
            wait_secs: wait,
        });
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
        Command::Status { .. } => Request::Status(protocol::Status {}),
        Command::Metrics => Request::Metrics(protocol::Metrics {}),
        Command::Reload { forget_removed } => Request::Reload(protocol::Reload {
            forget_removed: Some(*forget_removed),
        }),
        Command::Watch { brokers } => Request::Subscribe(protocol::Subscribe {
            brokers: (!brokers.is_empty()).then(|| brokers.clone()),
        }),
        Command::Token {
            target,
            min_valid,
            wait,
            ..
        } => {
            let (broker, account, api) = owned(target);
            Request::Token(protocol::Token {
                broker,
                account,
                api,
                min_valid_secs: *min_valid,
                wait_secs: *wait,
            })
        }
        Command::Invalidate {
            target,
            generation,
            reason,
            http_status,
            wait,
        } => {
            let (broker, account, api) = owned(target);
            Request::Invalidate(protocol::Invalidate {
                broker,
                account,
                api,
                generation: Some(*generation),
                reason: reason.clone().map(serde_json::Value::String),
                http_status: *http_status,
                min_valid_secs: None,
                wait_secs: *wait,
            })
        }
        Command::Login { target, wait } => {
            let (broker, account, api) = owned(target);
            Request::Login(protocol::Login {
                broker,
                account,
                api,
                wait_secs: *wait,
            })
        }
        Command::Logout { target } => {
            let (broker, account, api) = owned(target);
            Request::Logout(protocol::Logout {
                broker,
                account,
                api,
            })
        }
        Command::LoginUrl { target } => {
            let (broker, account, api) = owned(target);
            Request::LoginUrl(protocol::LoginUrl {
                broker,
                account,
                api,
            })
        }
        Command::Submit {
            target,
            value,
            state,
            wait,
        } => {
            let value = Secret::new(match value.as_deref() {
                Some(v) if v != "-" => v.to_string(),
                _ => read_stdin()?,
            });
            // Each broker's browser login brings back its own field; the
            // daemon names the right one when a person mixes them up.
            let breeze = target.broker == "breeze";
            let (broker, account, api) = owned(target);
            Request::Submit(protocol::Submit {
                broker,
                account,
                api,
                request_token: (!breeze).then(|| value.clone()),
                api_session: breeze.then_some(value),
                state: state.clone().map(Secret::new),
                wait_secs: *wait,
            })
        }
        Command::Sign { target, body } => {
            let body = if body == "-" {
                read_stdin()?
            } else {
                body.clone()
            };
            let (broker, account, api) = owned(target);
            Request::Sign(protocol::Sign {
                broker,
                account,
                api,
                body: Some(serde_json::Value::String(body)),
                min_valid_secs: None,
            })
        }
        Command::History {
            broker,
            account,
            api,
            since,
            limit,
            ..
        } => Request::History(protocol::History {
            broker: broker.clone().map(Cow::Owned),
            account: account.clone().map(Cow::Owned),
            api: api.clone().map(Cow::Owned),
            since_secs: *since,
            limit: *limit,
        }),
        Command::RotateKey { new } => {
            // The daemon has its own working folder: send an absolute path.
            let file = new
                .as_deref()
                .map(std::path::absolute)
                .transpose()
                .map_err(|e| anyhow::anyhow!("cannot resolve the --new path: {e}"))?;
            Request::RotateKey(protocol::RotateKey {
                new_key_file: file.map(|f| Cow::Owned(f.to_string_lossy().into_owned())),
            })
        }
        Command::Keygen { .. } | Command::Exec { .. } => unreachable!("handled above"),
    };
    let reply = conn.request(&request).await?;
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

/// The account fields of a request, from the command line's target.
type Owned = (
    Option<Cow<'static, str>>,
    Option<Cow<'static, str>>,
    Option<Cow<'static, str>>,
);

fn owned(target: &Target) -> Owned {
    (
        Some(Cow::Owned(target.broker.clone())),
        target.account.clone().map(Cow::Owned),
        target.api.clone().map(Cow::Owned),
    )
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
