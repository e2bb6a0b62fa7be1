//! What one login produces: the secret material and the plain facts.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The secret part of a session: stored only encrypted, never logged.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct Material {
    /// The token a client puts on its requests.
    pub token: Secret,
    /// Headers ready to put on a broker request (they carry the token).
    pub headers: BTreeMap<String, Secret>,
    /// Broker-specific values an official SDK needs with the token (user
    /// id, client codes, `api_root` on every session, websocket URLs ...),
    /// per broker as tabled in docs/protocol.md. Never a secret or a copy of
    /// the token; stored encrypted because Kotak's session id is here.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Secrets the daemon keeps for itself and never hands to a client
    /// (Angel One's refresh token: a client holding it could renew the
    /// session and replace the daemon's tokens). Stored encrypted with the
    /// rest, absent from the socket's session object; empty for most
    /// brokers, and absent from rows stored before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub private: BTreeMap<String, Secret>,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("token", &self.token.fingerprint())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field("private", &self.private.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The non-secret facts of a session, stored in plain columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    /// When the broker will stop accepting the token.
    pub expires_at: DateTime<Utc>,
    /// When the login that produced it finished.
    pub obtained_at: DateTime<Utc>,
    /// The broker's user id for the account, when it tells us.
    pub user_id: Option<String>,
    /// The app key's own expiry (Jainam `application_expiry_date`), verbatim.
    pub app_expiry: Option<String>,
}

/// What one successful login produces.
#[derive(Clone, Debug, PartialEq)]
pub struct NewSession {
    /// Secret part.
    pub material: Material,
    /// Non-secret part.
    pub meta: SessionMeta,
}
