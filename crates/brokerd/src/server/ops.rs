//! One request line in, one reply line out: parsing, access checks and the
//! dispatch of each operation to the session layer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use serde_json::value::RawValue;

use super::Shared;
use super::peer::Peer;
use super::protocol::{self, Request};
use crate::brokers::BrokerId;
use crate::session::{ErrorCode, Report, RequestError, Slot};

/// What the connection loop does after a request.
pub enum Outcome {
    /// Write this line.
    Reply(String),
    /// Write this line, then stream events (only these brokers when given).
    Subscribe(String, Option<Vec<String>>),
}

/// Handles one line.
pub async fn handle(line: &str, shared: &Shared, peer: &Peer) -> Outcome {
    let req: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => {
            let id = protocol::salvage_id(line);
            let err = RequestError::new(ErrorCode::BadRequest, format!("not a valid request: {e}"));
            return Outcome::Reply(protocol::error_reply(id.as_deref(), &err));
        }
    };
    let id = req.id;
    match dispatch(&req, shared, peer).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Reply(protocol::error_reply(id, &err)),
    }
}

async fn dispatch(
    req: &Request<'_>,
    shared: &Shared,
    peer: &Peer,
) -> Result<Outcome, RequestError> {
    let id = req.id;
    let reply = |v: serde_json::Value| Ok(Outcome::Reply(protocol::ok_reply(id, v)));
    match req.op.as_ref() {
        "hello" => reply(json!({
            "daemon": "brokerd",
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": protocol::PROTOCOL_VERSION,
        })),
        "status" => {
            let accounts: Vec<_> = shared
                .registry
                .slots()
                .iter()
                .filter(|s| peer.allowed(&s.access(), shared.daemon_uid))
                .map(|s| protocol::status_json(&s.status()))
                .collect();
            reply(json!({ "accounts": accounts }))
        }
        "metrics" => {
            // Like status: a peer sees only the accounts it may use.
            let statuses: Vec<_> = shared
                .registry
                .slots()
                .iter()
                .filter(|s| peer.allowed(&s.access(), shared.daemon_uid))
                .map(|s| s.status())
                .collect();
            reply(json!({ "text": shared.metrics.render(&statuses) }))
        }
        "subscribe" => {
            if let Some(unknown) = req
                .brokers
                .iter()
                .flatten()
                .find(|b| BrokerId::parse(b).is_none())
            {
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "unknown broker {unknown:?} in \"brokers\"; brokers are kotak_neo, breeze, zerodha, jainam, angel_one"
                    ),
                ));
            }
            Ok(Outcome::Subscribe(
                protocol::ok_reply(id, json!({})),
                req.brokers.clone(),
            ))
        }
        "token" => {
            let slot = &find(req, shared, peer)?;
            let live = slot
                .token(min_valid(req, slot), wait(req, shared, slot))
                .await?;
            Ok(session(id, slot, &live))
        }
        "invalidate" => {
            let slot = &find(req, shared, peer)?;
            let generation = req.generation.ok_or_else(|| {
                RequestError::new(
                    ErrorCode::BadRequest,
                    "invalidate needs \"generation\": the generation the broker rejected",
                )
            })?;
            let reason = req.reason_text();
            let report = Report {
                http_status: req.http_status,
                reason: reason.as_deref(),
            };
            let live = slot
                .invalidate(
                    generation,
                    report,
                    min_valid(req, slot),
                    wait(req, shared, slot),
                )
                .await?;
            Ok(session(id, slot, &live))
        }
        "login" => {
            // An operator's action: it bypasses the login budget, so a
            // trading program allowed on the account must not be able to
            // loop on it (programs report dead sessions with `invalidate`).
            if !peer.allowed(&shared.daemon_access, shared.daemon_uid) {
                return Err(RequestError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "uid {} may not force a login; root, the daemon's user and [daemon] allowed_uids/allowed_gids \
                         may. A program whose session was rejected sends `invalidate` with its generation",
                        peer.uid
                    ),
                ));
            }
            let slot = &find(req, shared, peer)?;
            // The operator may have fixed a secret since the daemon read it:
            // read it again, so a rejected secret is never what gets sent.
            if slot.locked_out() {
                shared.registry.reread_credentials(slot).await?;
            }
            let live = slot.force_login(wait(req, shared, slot)).await?;
            Ok(session(id, slot, &live))
        }
        "logout" => {
            let slot = &find(req, shared, peer)?;
            slot.logout().await?;
            reply(json!({}))
        }
        "reload" => {
            if !peer.allowed(&shared.daemon_access, shared.daemon_uid) {
                return Err(RequestError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "uid {} may not reload brokerd; root, the daemon's user and [daemon] allowed_uids/allowed_gids may",
                        peer.uid
                    ),
                ));
            }
            let Some(reload) = &shared.reload else {
                return Err(RequestError::new(
                    ErrorCode::Unavailable,
                    "reloading is not available",
                ));
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let sent = reload.send((req.forget_removed.unwrap_or(false), tx)).await;
            let outcome = match (sent, rx.await) {
                (Ok(()), Ok(outcome)) => outcome,
                _ => {
                    return Err(RequestError::new(
                        ErrorCode::Unavailable,
                        "the daemon is shutting down",
                    ));
                }
            };
            match outcome {
                Ok(o) => reply(json!({
                    "added": o.report.added,
                    "removed": o.report.removed,
                    "changed": o.report.changed,
                    "unchanged": o.report.unchanged,
                    "needs_restart": o.needs_restart,
                })),
                Err(problems) => Err(RequestError::new(ErrorCode::BadRequest, problems)),
            }
        }
        "history" => reply(super::history::answer(req, shared, peer).await?),
        "rotate_key" => reply(super::rotate::answer(req, shared, peer).await?),
        "login_url" => {
            let slot = &find(req, shared, peer)?;
            let url = slot.login_url().ok_or_else(|| not_interactive(slot))?;
            reply(json!({
                "login_url": url,
                "redirect_url": shared.callback.as_ref().map(|c| c.redirect_url(slot.key().broker, &slot.key().account)),
            }))
        }
        "submit" => {
            let slot = &find(req, shared, peer)?;
            let submission = submission(req, slot)?;
            let live = slot
                .submit(submission, req.state.as_deref(), wait(req, shared, slot))
                .await?;
            Ok(session(id, slot, &live))
        }
        "sign" => {
            let slot = &find(req, shared, peer)?;
            let (body, echo) = match &req.body {
                Some(serde_json::Value::String(text)) => (text.clone(), false),
                Some(serde_json::Value::Null) | None => {
                    return Err(RequestError::new(
                        ErrorCode::BadRequest,
                        "sign needs \"body\": the exact JSON text you will send (\"{}\" for none)",
                    ));
                }
                Some(value) => (value.to_string(), true),
            };
            let (live, headers) = slot.sign(&body, min_valid(req, slot)).await?;
            let headers: serde_json::Map<_, _> = headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                .collect();
            let mut answer = json!({ "generation": live.generation, "headers": headers });
            if echo {
                // A JSON value was serialised here: the caller must send
                // exactly these bytes, since the checksum covers them.
                answer["body"] = serde_json::Value::String(body);
            }
            reply(answer)
        }
        other => Err(RequestError::new(
            ErrorCode::UnknownOp,
            format!(
                "unknown op {other:?}; ops are hello, status, token, invalidate, login, logout, login_url, submit, \
                 sign, subscribe, metrics, reload, history, rotate_key"
            ),
        )),
    }
}

fn session(id: Option<&RawValue>, slot: &Slot, live: &crate::session::Live) -> Outcome {
    Outcome::Reply(protocol::session_reply(
        id,
        protocol::session_json(slot.key(), live),
    ))
}

fn find(req: &Request<'_>, shared: &Shared, peer: &Peer) -> Result<Arc<Slot>, RequestError> {
    let broker = req.broker.as_deref().ok_or_else(|| {
        RequestError::new(
            ErrorCode::BadRequest,
            format!("{} needs \"broker\"", req.op),
        )
    })?;
    let slot = shared
        .registry
        .find(broker, req.account.as_deref(), req.api.as_deref())?;
    if !peer.allowed(&slot.access(), shared.daemon_uid) {
        return Err(RequestError::new(
            ErrorCode::Forbidden,
            format!(
                "uid {} may not use {}; add it to the account's allowed_uids or allowed_gids",
                peer.uid,
                slot.key()
            ),
        ));
    }
    Ok(slot)
}

fn min_valid(req: &Request<'_>, slot: &Slot) -> Duration {
    req.min_valid_secs
        .map_or_else(|| slot.default_min_valid(), Duration::from_secs)
}

/// How long a request may wait. Interactive brokers answer at once unless
/// asked to wait: their next session needs a person, who may be hours away.
fn wait(req: &Request<'_>, shared: &Shared, slot: &Slot) -> Duration {
    let default = if slot.interactive() && req.op != "submit" {
        Duration::ZERO
    } else {
        shared.limits.default_wait
    };
    req.wait_secs
        .map_or(default, Duration::from_secs)
        .min(shared.limits.max_wait)
}

fn not_interactive(slot: &Slot) -> RequestError {
    RequestError::new(
        ErrorCode::BadRequest,
        format!(
            "{} logs in by itself and has no browser login; login_url and submit are for zerodha and breeze",
            slot.key().broker
        ),
    )
}

/// The field a broker's browser login brings back, by its broker's name.
fn submission(req: &Request<'_>, slot: &Slot) -> Result<crate::secret::Secret, RequestError> {
    // What this broker's browser login brings back, and whether the other
    // broker's field was sent by mistake.
    let (want, other, value, wrong) = match slot.key().broker {
        BrokerId::Zerodha => (
            "request_token",
            "api_session",
            &req.request_token,
            req.api_session.is_some(),
        ),
        BrokerId::Breeze => (
            "api_session",
            "request_token",
            &req.api_session,
            req.request_token.is_some(),
        ),
        BrokerId::Jainam | BrokerId::KotakNeo | BrokerId::AngelOne => {
            return Err(not_interactive(slot));
        }
    };
    match value.as_deref().map(str::trim) {
        Some(v) if crate::session::plausible_submission(v) => Ok(crate::secret::Secret::new(v)),
        Some(_) => Err(RequestError::new(
            ErrorCode::BadRequest,
            format!("\"{want}\" is empty or malformed; paste the value from the login redirect"),
        )),
        None if wrong => Err(RequestError::new(
            ErrorCode::BadRequest,
            format!("{} takes \"{want}\", not \"{other}\"", slot.key().broker),
        )),
        None => Err(RequestError::new(
            ErrorCode::BadRequest,
            format!("submit for {} needs \"{want}\"", slot.key().broker),
        )),
    }
}
