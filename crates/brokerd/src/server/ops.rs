//! One request line in, one reply line out: parsing, access checks and the
//! dispatch of each operation to the session layer.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use super::Shared;
use super::peer::Peer;
use super::protocol;
use crate::brokers::BrokerId;
use crate::protocol::{
    Answer, Empty, HelloAnswer, LoginUrlAnswer, MetricsAnswer, ReloadAnswer, Request, SignAnswer,
    StatusAnswer, Target,
};
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
    let parsed = match protocol::parse(line) {
        Ok(p) => p,
        Err(e) => return Outcome::Reply(protocol::error_reply(e.id.as_deref(), &e.error)),
    };
    let id = parsed.id;
    match dispatch(id, &parsed.request, shared, peer).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Reply(protocol::error_reply(id, &err)),
    }
}

async fn dispatch(
    id: Option<&RawValue>,
    req: &Request<'_>,
    shared: &Shared,
    peer: &Peer,
) -> Result<Outcome, RequestError> {
    let reply = |answer: Answer| Ok(Outcome::Reply(protocol::ok_reply(id, answer)));
    let op = req.op();
    match req {
        Request::Hello(_) => reply(Answer::Hello(HelloAnswer {
            daemon: "brokerd".to_string(),
            protocol: protocol::PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
            store: shared.registry.store().backend().to_string(),
        })),
        Request::Status(_) => {
            let accounts: Vec<_> = shared
                .registry
                .slots()
                .iter()
                .filter(|s| peer.allowed(&s.access(), shared.daemon_uid))
                .map(|s| protocol::status_entry(&s.status()))
                .collect();
            reply(Answer::Status(StatusAnswer { accounts }))
        }
        Request::Metrics(_) => {
            // Like status: a peer sees only the accounts it may use.
            let statuses: Vec<_> = shared
                .registry
                .slots()
                .iter()
                .filter(|s| peer.allowed(&s.access(), shared.daemon_uid))
                .map(|s| s.status())
                .collect();
            reply(Answer::Metrics(MetricsAnswer {
                text: shared
                    .metrics
                    .render(&statuses, &shared.registry.pacer().hosts()),
            }))
        }
        Request::Subscribe(sub) => {
            if let Some(unknown) = sub
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
                protocol::ok_reply(id, Answer::Empty(Empty {})),
                sub.brokers.clone(),
            ))
        }
        Request::Token(t) => {
            let slot = &find(op, t.target(), shared, peer)?;
            let live = slot
                .token(
                    min_valid(t.min_valid_secs, slot),
                    wait(t.wait_secs, false, shared, slot),
                )
                .await?;
            Ok(session(id, slot, &live))
        }
        Request::Invalidate(inv) => {
            let slot = &find(op, inv.target(), shared, peer)?;
            let generation = inv.generation.ok_or_else(|| {
                RequestError::new(
                    ErrorCode::BadRequest,
                    "invalidate needs \"generation\": the generation the broker rejected",
                )
            })?;
            let reason = inv.reason_text();
            let report = Report {
                http_status: inv.http_status,
                reason: reason.as_deref(),
            };
            let live = slot
                .invalidate(
                    generation,
                    report,
                    min_valid(inv.min_valid_secs, slot),
                    wait(inv.wait_secs, false, shared, slot),
                )
                .await?;
            Ok(session(id, slot, &live))
        }
        Request::Login(login) => {
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
            let slot = &find(op, login.target(), shared, peer)?;
            // The operator may have fixed a secret since the daemon read it:
            // read it again, so a rejected secret is never what gets sent.
            if slot.locked_out() {
                shared.registry.reread_credentials(slot).await?;
            }
            let live = slot
                .force_login(wait(login.wait_secs, false, shared, slot))
                .await?;
            Ok(session(id, slot, &live))
        }
        Request::Logout(logout) => {
            let slot = &find(op, logout.target(), shared, peer)?;
            slot.logout().await?;
            reply(Answer::Empty(Empty {}))
        }
        Request::Reload(r) => {
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
            let sent = reload.send((r.forget_removed.unwrap_or(false), tx)).await;
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
                Ok(o) => reply(Answer::Reload(ReloadAnswer {
                    added: o.report.added,
                    changed: o.report.changed,
                    needs_restart: o.needs_restart,
                    removed: o.report.removed,
                    unchanged: o.report.unchanged,
                })),
                Err(problems) => Err(RequestError::new(ErrorCode::BadRequest, problems)),
            }
        }
        Request::History(h) => reply(Answer::History(
            super::history::answer(h, shared, peer).await?,
        )),
        Request::RotateKey(r) => reply(Answer::RotateKey(
            super::rotate::answer(r, shared, peer).await?,
        )),
        Request::LoginUrl(l) => {
            let slot = &find(op, l.target(), shared, peer)?;
            if let Some(elsewhere) = slot.link_elsewhere() {
                return Err(elsewhere);
            }
            let url = slot.login_url().ok_or_else(|| not_interactive(slot))?;
            reply(Answer::LoginUrl(LoginUrlAnswer {
                login_url: url,
                redirect_url: shared
                    .callback
                    .as_ref()
                    .map(|c| c.redirect_url(slot.key().broker, &slot.key().account)),
            }))
        }
        Request::Submit(sub) => {
            let slot = &find(op, sub.target(), shared, peer)?;
            let submission = submission(sub, slot)?;
            let live = slot
                .submit(
                    submission,
                    sub.state.as_ref().map(crate::secret::Secret::expose),
                    wait(sub.wait_secs, true, shared, slot),
                )
                .await?;
            Ok(session(id, slot, &live))
        }
        Request::Sign(sign) => {
            let slot = &find(op, sign.target(), shared, peer)?;
            let (body, echo) = match &sign.body {
                Some(serde_json::Value::String(text)) => (text.clone(), false),
                Some(serde_json::Value::Null) | None => {
                    return Err(RequestError::new(
                        ErrorCode::BadRequest,
                        "sign needs \"body\": the exact JSON text you will send (\"{}\" for none)",
                    ));
                }
                Some(value) => (value.to_string(), true),
            };
            let (live, headers) = slot
                .sign(&body, min_valid(sign.min_valid_secs, slot))
                .await?;
            reply(Answer::Sign(SignAnswer {
                // A JSON value was serialised here: the caller must send
                // exactly these bytes, since the checksum covers them.
                body: echo.then_some(body),
                generation: live.generation,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            }))
        }
    }
}

fn session(id: Option<&RawValue>, slot: &Slot, live: &crate::session::Live) -> Outcome {
    Outcome::Reply(protocol::session_reply(
        id,
        protocol::session_json(slot.key(), live),
    ))
}

fn find(
    op: &str,
    target: Target<'_>,
    shared: &Shared,
    peer: &Peer,
) -> Result<Arc<Slot>, RequestError> {
    let broker = target.broker.ok_or_else(|| {
        RequestError::new(ErrorCode::BadRequest, format!("{op} needs \"broker\""))
    })?;
    let slot = shared.registry.find(broker, target.account, target.api)?;
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

fn min_valid(min_valid_secs: Option<u64>, slot: &Slot) -> Duration {
    min_valid_secs.map_or_else(|| slot.default_min_valid(), Duration::from_secs)
}

/// How long a request may wait. Interactive brokers answer at once unless
/// asked to wait: their next session needs a person, who may be hours away.
/// A `submit` is that person, so it waits by default like any other.
fn wait(wait_secs: Option<u64>, submit: bool, shared: &Shared, slot: &Slot) -> Duration {
    let default = if slot.interactive() && !submit {
        Duration::ZERO
    } else {
        shared.limits.default_wait
    };
    wait_secs
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
fn submission(
    req: &crate::protocol::Submit<'_>,
    slot: &Slot,
) -> Result<crate::secret::Secret, RequestError> {
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
    match value.as_ref().map(|v| v.expose().trim()) {
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
