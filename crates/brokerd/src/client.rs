//! A client of the daemon's socket: used by `brokerctl`, the tests and the
//! benchmark. One request line out, one reply line in.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, LinesCodec};

/// Where the socket is when nothing else says.
pub const DEFAULT_SOCKET: &str = "/run/brokerd/brokerd.sock";
/// Where the config is when nothing else says.
pub const DEFAULT_CONFIG: &str = "/etc/brokerd/brokerd.toml";

/// A connection to the daemon.
pub struct Client {
    lines: FramedRead<OwnedReadHalf, LinesCodec>,
    write: OwnedWriteHalf,
}

/// Why a call failed at the transport level.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket trouble.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Closed,
    /// The reply was not JSON.
    #[error("the daemon sent a line that is not JSON: {0}")]
    BadReply(String),
}

impl Client {
    /// Connects to the socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot connect to {}: {e} (is brokerd running?)",
                    path.display()
                ),
            )
        })?;
        let (read, write) = stream.into_split();
        // Replies carry tokens and status tables, never more than a few MiB.
        let lines = FramedRead::new(read, LinesCodec::new_with_max_length(16 << 20));
        Ok(Self { lines, write })
    }

    /// Sends one request and reads its reply.
    pub async fn call(&mut self, request: &Value) -> Result<Value, ClientError> {
        self.send_line(&request.to_string()).await?;
        self.next().await?.ok_or(ClientError::Closed)
    }

    /// Sends one typed request and reads its reply (as JSON: brokerctl
    /// prints parts of it, and [`crate::protocol::Reply::parse`] reads it
    /// typed where that helps).
    pub async fn request(
        &mut self,
        request: &crate::protocol::Request<'_>,
    ) -> Result<Value, ClientError> {
        self.send_line(&request.to_line()).await?;
        self.next().await?.ok_or(ClientError::Closed)
    }

    /// Sends a raw line (tests use it for malformed input).
    pub async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.write.write_all(&buf).await?;
        Ok(())
    }

    /// The next line from the daemon (a reply or an event); `None` at EOF.
    pub async fn next(&mut self) -> Result<Option<Value>, ClientError> {
        match self.lines.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(ClientError::Io(std::io::Error::other(e.to_string()))),
            Some(Ok(line)) => serde_json::from_str(&line)
                .map(Some)
                .map_err(|_| ClientError::BadReply(line)),
        }
    }
}

/// The socket path: `--socket`, else `$BROKERD_SOCKET`, else the config
/// file's `daemon.socket`, else the default.
pub fn socket_path(explicit: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("BROKERD_SOCKET").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let (path, required) = match config {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => socket_from_config(&text, &path),
        Err(e) if required => Err(format!("cannot read {}: {e}", path.display())),
        Err(_) => Ok(PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// Reads only `daemon.socket` (a trading user may not be able to resolve the
/// config's secrets, and does not need to).
fn socket_from_config(text: &str, path: &Path) -> Result<PathBuf, String> {
    let value: toml::Value =
        toml::from_str(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let socket = value
        .get("daemon")
        .and_then(|d| d.get("socket"))
        .and_then(toml::Value::as_str);
    Ok(match socket {
        None => PathBuf::from(DEFAULT_SOCKET),
        Some(s) if Path::new(s).is_absolute() => PathBuf::from(s),
        Some(s) => path.parent().unwrap_or(Path::new(".")).join(s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_from_config_is_relative_to_the_file() {
        let p = socket_from_config(
            "[daemon]\nsocket = \"run/b.sock\"\n",
            Path::new("/etc/x/c.toml"),
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/etc/x/run/b.sock"));
        let p = socket_from_config("[daemon]\n", Path::new("/etc/x/c.toml")).unwrap();
        assert_eq!(p, PathBuf::from(DEFAULT_SOCKET));
    }
}
