//! The `rotate_key` operation: operators only (as `login` and `reload`).
//! The request carries a path, never a key: the daemon reads the new key's
//! file itself, with the key file's rules, or makes the key.

use std::path::Path;

use super::Shared;
use super::peer::Peer;
use crate::protocol::{RotateKey, RotateKeyAnswer};
use crate::session::{ErrorCode, RequestError};
use crate::store::rotation::{NewKey, RotationError};

/// Answers a `rotate_key` request:
/// `{"old_key_id", "new_key_id", "sessions", "unreadable": [...]}`.
pub async fn answer(
    req: &RotateKey<'_>,
    shared: &Shared,
    peer: &Peer,
) -> Result<RotateKeyAnswer, RequestError> {
    if !peer.allowed(&shared.daemon_access, shared.daemon_uid) {
        return Err(RequestError::new(
            ErrorCode::Forbidden,
            format!(
                "uid {} may not rotate the storage key; root, the daemon's user and [daemon] \
                 allowed_uids/allowed_gids may",
                peer.uid
            ),
        ));
    }
    let new = match req.new_key_file.as_deref() {
        None => NewKey::Generate,
        Some(path) if Path::new(path).is_absolute() => NewKey::File(Path::new(path)),
        Some(path) => {
            return Err(RequestError::new(
                ErrorCode::BadRequest,
                format!(
                    "new_key_file {path:?} is not an absolute path; the daemon reads it from its \
                     own working folder (brokerctl makes paths absolute)"
                ),
            ));
        }
    };
    match shared.key_rotation.rotate(new).await {
        Ok(done) => Ok(RotateKeyAnswer {
            new_key_id: done.new_key_id,
            old_key_id: done.old_key_id,
            sessions: done.outcome.sessions,
            unreadable: done.outcome.unreadable,
        }),
        Err(e) => {
            let code = match &e {
                RotationError::Refused { .. } => ErrorCode::BadRequest,
                RotationError::Store(s) if s.is_disk_full() => ErrorCode::StoreUnavailable,
                RotationError::Store(_) | RotationError::Unfinished { .. } => {
                    ErrorCode::Unavailable
                }
            };
            Err(RequestError::new(code, e.to_string()))
        }
    }
}
