//! One client connection: length-capped line framing, the idle timeout,
//! in-order replies, and the event stream after `subscribe`.

use std::time::Instant;

use futures::StreamExt;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Shared;
use super::ops::{self, Outcome};
use super::peer::Peer;
use super::protocol;
use crate::session::{ErrorCode, RequestError};

/// How long a connection keeps answering after shutdown began, counted
/// from its last request.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Serves one connection until the peer closes, idles out, or shutdown.
pub async fn serve(stream: UnixStream, shared: &Shared, cancel: CancellationToken) {
    let peer = match Peer::of(&stream) {
        Ok(p) => p,
        Err(e) => return debug!(error = %e, "cannot read peer credentials; closing"),
    };
    let daemon_wide = shared
        .registry
        .slots()
        .iter()
        .any(|s| peer.allowed(&s.access(), shared.daemon_uid))
        || peer.allowed(&shared.daemon_access, shared.daemon_uid);
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
    let mut out = BufWriter::new(write);
    // One timer and one cancellation waiter per connection, re-armed per
    // request, instead of building both afresh for every line (a profile
    // under benches/socket.rs put that at a few percent of the daemon's CPU).
    let idle = tokio::time::sleep(shared.limits.idle_timeout);
    tokio::pin!(idle);
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut draining = false;
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancelled, if !draining => {
                // Shutting down: requests already sent (or arriving right
                // now) are still answered; then the connection closes.
                draining = true;
                idle.as_mut().reset(tokio::time::Instant::now() + DRAIN_GRACE);
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
                let _ = write_line(&mut out, &protocol::error_reply(None, &err)).await;
                break;
            }
            Some(Err(AnyDelimiterCodecError::Io(_))) => break,
        };
        let Ok(line) = std::str::from_utf8(raw.strip_suffix(b"\r").unwrap_or(&raw)) else {
            let err =
                RequestError::new(ErrorCode::BadRequest, "the request line is not valid UTF-8");
            if write_line(&mut out, &protocol::error_reply(None, &err))
                .await
                .is_err()
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
        idle.as_mut()
            .reset(tokio::time::Instant::now() + shared.limits.idle_timeout);
        match outcome {
            Outcome::Reply(reply) => {
                if write_line(&mut out, &reply).await.is_err() {
                    break;
                }
            }
            Outcome::Subscribe(ack, brokers) => {
                let mut events = shared.registry.events().subscribe();
                if write_line(&mut out, &ack).await.is_err() {
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
    let _ = out.shutdown().await;
}

/// Streams events until the client closes or shutdown. Lines the client
/// sends meanwhile are ignored (subscribe turns the connection one-way).
async fn stream_events<R, W>(
    events: &mut tokio::sync::broadcast::Receiver<crate::session::Event>,
    lines: &mut FramedRead<R, AnyDelimiterCodec>,
    out: &mut BufWriter<W>,
    brokers: Option<Vec<String>>,
    peer: &Peer,
    shared: &Shared,
    cancel: &CancellationToken,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            input = lines.next() => if matches!(input, None | Some(Err(_))) { return },
            event = events.recv() => {
                let line = match event {
                    Ok(e) => {
                        let wanted = brokers.as_ref().is_none_or(|b| b.iter().any(|x| x == e.key.broker.as_str()));
                        let visible = shared.registry.find(e.key.broker.as_str(), Some(&e.key.account), Some(e.key.api.as_str()))
                            .is_ok_and(|s| peer.allowed(&s.access(), shared.daemon_uid));
                        if !(wanted && visible) { continue; }
                        protocol::event_json(&e)
                    }
                    // Tell a slow subscriber it missed events, so it re-reads state.
                    Err(RecvError::Lagged(n)) => serde_json::json!({"event": "lagged", "missed": n}).to_string(),
                    Err(RecvError::Closed) => return,
                };
                if write_line(out, &line).await.is_err() { return; }
            }
        }
    }
}

async fn write_line<W: tokio::io::AsyncWrite + Unpin>(
    out: &mut BufWriter<W>,
    line: &str,
) -> std::io::Result<()> {
    out.write_all(line.as_bytes()).await?;
    out.write_all(b"\n").await?;
    out.flush().await
}
