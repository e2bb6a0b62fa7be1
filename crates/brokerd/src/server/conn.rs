//! One client connection: length-capped line framing, the idle timeout,
//! in-order replies written within the write deadline, and the event
//! stream (with heartbeats) after `subscribe`.
//!
//! Every deadline here (idle, write, heartbeat, drain) is an I/O deadline on
//! tokio's clock, deliberately not the daemon's injected clock: a socket
//! idles or stalls in real time, and a test moving session time must not
//! close connections.

use std::time::Instant;

use futures::StreamExt;
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Shared;
use super::drain::Drain;
use super::ops::{self, Outcome};
use super::peer::Peer;
use super::protocol;
use super::writer::{LineWriter, WriteError};
use crate::session::{ErrorCode, RequestError};

/// Serves one connection until the peer closes, idles out, stops reading
/// its replies, or shutdown.
pub async fn serve(stream: UnixStream, peer: Peer, shared: &Shared, cancel: CancellationToken) {
    let daemon_wide = shared
        .registry
        .slots()
        .iter()
        .any(|s| peer.allowed(&s.access(), shared.daemon_uid))
        || peer.allowed(&shared.daemon_access, shared.daemon_uid);
    // A peer allowed nowhere can only ever be told `forbidden`: it gets that
    // for its first line and is closed, and it has no longer than a write
    // deadline to send that line, so such peers cannot sit on slots.
    let idle_timeout = if daemon_wide {
        shared.limits.idle_timeout
    } else {
        shared.limits.write_timeout
    };
    let (read, write) = stream.into_split();
    let mut lines = FramedRead::new(
        read,
        // Raw bytes, not LinesCodec: invalid UTF-8 there is a terminal error,
        // but a malformed line must get bad_request and keep the connection.
        AnyDelimiterCodec::new_with_max_length(
            b"\n".to_vec(),
            b"\n".to_vec(),
            shared.limits.max_line_bytes,
        ),
    );
    let mut out = LineWriter::new(write, shared.limits.write_timeout);
    // One timer and one cancellation waiter per connection, re-armed per
    // request, instead of building both afresh for every line (a profile
    // under benches/socket.rs put that at a few percent of the daemon's CPU).
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut drain = Drain::default();
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancelled, if !drain.active() => {
                // Shutting down: requests already sent (or arriving right
                // now) are still answered; then the connection closes.
                drain.begin(tokio::time::Instant::now());
                if let Some(until) = drain.until() {
                    idle.as_mut().reset(until);
                }
                continue;
            }
            _ = &mut idle => break,
            n = lines.next() => n,
        };
        let raw = match next {
            None => break,
            Some(Ok(raw)) => raw,
            Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                let err = RequestError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "request line longer than {} bytes; closing the connection",
                        shared.limits.max_line_bytes
                    ),
                );
                let line = protocol::error_reply(None, &err);
                let _ = send(&mut out, &line, &mut drain, &cancel, shared, peer.uid).await;
                break;
            }
            Some(Err(AnyDelimiterCodecError::Io(_))) => break,
        };
        let Ok(line) = std::str::from_utf8(raw.strip_suffix(b"\r").unwrap_or(&raw)) else {
            let err =
                RequestError::new(ErrorCode::BadRequest, "the request line is not valid UTF-8");
            let line = protocol::error_reply(None, &err);
            if send(&mut out, &line, &mut drain, &cancel, shared, peer.uid)
                .await
                .is_err()
                || !daemon_wide
            {
                break;
            }
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let started = Instant::now();
        let outcome = if daemon_wide {
            ops::handle(line, shared, &peer).await
        } else {
            let err = RequestError::new(
                ErrorCode::Forbidden,
                format!("uid {} is not allowed to use brokerd", peer.uid),
            );
            Outcome::Reply(protocol::error_reply(
                protocol::salvage_id(line).as_deref(),
                &err,
            ))
        };
        shared.metrics.observe(started.elapsed());
        let now = tokio::time::Instant::now();
        drain.extend(now);
        idle.as_mut()
            .reset(drain.until().unwrap_or(now + idle_timeout));
        match outcome {
            Outcome::Reply(reply) => {
                if send(&mut out, &reply, &mut drain, &cancel, shared, peer.uid)
                    .await
                    .is_err()
                    || !daemon_wide
                {
                    break;
                }
            }
            Outcome::Subscribe(ack, brokers) => {
                let mut events = shared.registry.events().subscribe();
                if send(&mut out, &ack, &mut drain, &cancel, shared, peer.uid)
                    .await
                    .is_err()
                {
                    break;
                }
                stream_events(
                    &mut events,
                    &mut lines,
                    &mut out,
                    brokers,
                    &peer,
                    shared,
                    &cancel,
                )
                .await;
                break;
            }
        }
    }
    out.close().await;
}

/// Writes one line within the write deadline; a stalled write is counted
/// and logged (with the peer's uid, never the line) before the caller
/// closes. At debug level: a flood of stalled clients must not flood the
/// journal too; the metric is what an operator watches.
async fn send<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut LineWriter<W>,
    line: &str,
    drain: &mut Drain,
    cancel: &CancellationToken,
    shared: &Shared,
    uid: u32,
) -> Result<(), WriteError> {
    let sent = out.line(line, drain, cancel).await;
    if let Err(WriteError::Stalled) = &sent {
        shared
            .metrics
            .connections_stalled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        debug!(
            uid,
            write_timeout = ?shared.limits.write_timeout,
            "closing a connection that does not read its replies"
        );
    }
    sent
}

/// Streams events until the client closes, stops reading, or shutdown.
/// Lines the client sends meanwhile are ignored (subscribe turns the
/// connection one-way). A heartbeat every `daemon.limits.heartbeat` keeps
/// writing to a quiet stream, so a subscriber that stopped reading is found
/// by the write deadline like any other, instead of by an idle timeout that
/// would also close the quiet streams of healthy subscribers.
async fn stream_events<R, W>(
    events: &mut tokio::sync::broadcast::Receiver<crate::session::Event>,
    lines: &mut FramedRead<R, AnyDelimiterCodec>,
    out: &mut LineWriter<W>,
    brokers: Option<Vec<String>>,
    peer: &Peer,
    shared: &Shared,
    cancel: &CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let period = shared.limits.heartbeat;
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // A stream whose writes were slow sends its next heartbeat a period
    // later, not a burst of the missed ones.
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Never draining: shutdown ends the stream at once (below), and a write
    // it interrupts is shortened to the drain.
    let mut drain = Drain::default();
    loop {
        let line = tokio::select! {
            _ = cancel.cancelled() => return,
            input = lines.next() => if matches!(input, None | Some(Err(_))) { return } else { continue },
            _ = beat.tick() => protocol::HEARTBEAT_EVENT.to_string(),
            event = events.recv() => match event {
                Ok(e) => {
                    let wanted = brokers.as_ref().is_none_or(|b| b.iter().any(|x| x == e.key.broker.as_str()));
                    let visible = shared.registry.find(e.key.broker.as_str(), Some(&e.key.account), Some(e.key.api.as_str()))
                        .is_ok_and(|s| peer.allowed(&s.access(), shared.daemon_uid));
                    if !(wanted && visible) { continue; }
                    protocol::event_json(&e)
                }
                // Tell a slow subscriber it missed events, so it re-reads state.
                Err(RecvError::Lagged(n)) => protocol::lagged_event(n),
                Err(RecvError::Closed) => return,
            },
        };
        if send(out, &line, &mut drain, cancel, shared, peer.uid)
            .await
            .is_err()
        {
            return;
        }
    }
}
