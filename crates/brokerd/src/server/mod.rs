//! The Unix socket server: binding (with stale-socket detection), the
//! accept loop with a connection cap and a per-uid cap, and per-connection
//! service.

mod conn;
mod drain;
pub mod history;
pub mod metrics;
mod ops;
pub mod peer;
pub mod protocol;
pub mod quota;
mod rotate;
pub mod socket_dir;
mod writer;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::Limits;
use crate::session::{Access, ErrorCode, Registry, RequestError};
pub use metrics::ServerMetrics;

/// What every connection shares.
#[derive(Debug)]
pub struct Shared {
    /// The slots.
    pub registry: Arc<Registry>,
    /// Request metrics.
    pub metrics: ServerMetrics,
    /// Socket limits.
    pub limits: Limits,
    /// The daemon's own uid (always allowed).
    pub daemon_uid: u32,
    /// Daemon-wide allow-list (for `hello`, `status`, `metrics`, `reload`).
    pub daemon_access: Access,
    /// Where `reload` requests go (to the daemon's reloader).
    pub reload: Option<tokio::sync::mpsc::Sender<crate::reload::ReloadRequest>>,
    /// The callback listener's settings, to tell operators which redirect
    /// URL to register.
    pub callback: Option<crate::config::CallbackConfig>,
    /// Rotates the storage key (`rotate_key`).
    pub key_rotation: Arc<crate::store::rotation::KeyRotator>,
}

/// Why the socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A live daemon answers on the path.
    #[error(
        "another brokerd (pid {pid}) is serving {path}; stop it first (systemctl stop brokerd) or use another socket path"
    )]
    InUse {
        /// The path.
        path: String,
        /// Its pid, or "unknown".
        pid: String,
    },
    /// The socket's folder could not be created for the socket's group.
    #[error(
        "cannot create the socket folder {dir} (mode 0750, group of daemon.socket_group): {source}; \
         the daemon's user must be a member of that group, or create the folder beforehand \
         (systemd: RuntimeDirectory=brokerd with Group= set to the socket group; by hand: \
         mkdir DIR && chgrp GROUP DIR && chmod 0750 DIR)"
    )]
    Folder {
        /// The folder.
        dir: String,
        /// The error.
        source: std::io::Error,
    },
    /// Filesystem trouble.
    #[error("cannot create the socket {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Binds the socket at `path`: creates its folder when missing (0750, in
/// the socket's group `gid`, see [`socket_dir::create`]), replaces a stale
/// socket file, refuses when a live daemon answers, sets the socket's mode
/// and group.
pub async fn bind(path: &Path, mode: u32, gid: Option<u32>) -> Result<UnixListener, BindError> {
    let shown = path.display().to_string();
    let io = |source| BindError::Io {
        path: shown.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        socket_dir::create(dir, gid).map_err(|source| BindError::Folder {
            dir: dir.display().to_string(),
            source,
        })?;
    }
    if path.exists() {
        match UnixStream::connect(path).await {
            Ok(stream) => {
                let pid = stream
                    .peer_cred()
                    .ok()
                    .and_then(|c| c.pid())
                    .map_or("unknown".into(), |p| p.to_string());
                return Err(BindError::InUse { path: shown, pid });
            }
            // Nobody listens: a socket left behind by a killed daemon.
            Err(_) => std::fs::remove_file(path).map_err(io)?,
        }
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
    }
    Ok(listener)
}

/// Accepts connections until `cancel`; each runs on `tracker`.
///
/// The peer's credentials are read here, once, so that the per-uid cap is
/// applied before a connection task exists (and its groups are read close
/// to the connect, before its pid can be reused).
pub async fn run(
    listener: UnixListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    // Semaphore: a connection holds a permit for its whole life; at the cap
    // new ones get a clear error instead of queueing unseen.
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    let quota = quota::UidQuota::new(shared.limits.max_connections_per_uid);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE: wait a little instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "cannot read peer credentials; closing");
                continue;
            }
        };
        // The per-uid cap first: a uid at its quota is told so, even when
        // the daemon-wide cap is reached too.
        let Some(counted) = quota.try_acquire(cred.uid()) else {
            shared
                .metrics
                .connections_refused_per_uid
                .fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "too many connections from uid {}; retry shortly",
                cred.uid()
            );
            refuse(&tracker, stream, &message, &shared.limits);
            continue;
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                // Groups only for a connection that is served: a flood of
                // refused ones costs one syscall each.
                let peer = match peer::Peer::from_cred(&stream, cred) {
                    Ok(peer) => peer,
                    Err(e) => {
                        debug!(error = %e, "cannot read the peer's groups; closing");
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                let cancel = cancel.clone();
                tracker.spawn(async move {
                    shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
                    conn::serve(stream, peer, &shared, cancel).await;
                    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
                    drop((permit, counted));
                });
            }
            Err(_) => {
                drop(counted);
                shared
                    .metrics
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                refuse(
                    &tracker,
                    stream,
                    "too many connections; retry shortly",
                    &shared.limits,
                );
            }
        }
    }
}

/// Longest wait for the one `unavailable` line of a refused connection: the
/// line goes into an empty socket buffer, so it only waits on a broken peer.
const REFUSAL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes one `unavailable` line (retry in 1 s) and closes, on its own task
/// and with a deadline, so the accept loop never waits for a client.
fn refuse(tracker: &TaskTracker, mut stream: UnixStream, message: &str, limits: &Limits) {
    let err = RequestError::new(ErrorCode::Unavailable, message)
        .retry_after(std::time::Duration::from_secs(1));
    let line = protocol::error_reply(None, &err) + "\n";
    let deadline = limits.write_timeout.min(REFUSAL_DEADLINE);
    tracker.spawn(async move {
        let _ = tokio::time::timeout(deadline, stream.write_all(line.as_bytes())).await;
    });
}
