//! Turning a session into a row and back, independent of the database: the
//! encryption, the AAD, and the column encodings. A Postgres backend reuses it.

use chrono::{DateTime, SecondsFormat, Utc};

use super::crypto::EncryptionKey;
use super::keyring::KeyRing;
use super::{StoreError, StoredSession};
use crate::brokers::{Material, NewSession, SessionKey, SessionMeta};

/// A session ready to be written: ciphertext plus plain metadata columns.
pub(crate) struct SealedRow {
    pub generation: i64,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub expires_at: String,
    pub obtained_at: String,
    pub user_id: Option<String>,
    pub app_expiry: Option<String>,
}

/// A `sessions` row as read back. All but `generation` are `None` once the
/// session was forgotten.
#[derive(sqlx::FromRow)]
pub(crate) struct RawRow {
    pub generation: i64,
    pub key_id: Option<String>,
    pub nonce: Option<Vec<u8>>,
    pub ciphertext: Option<Vec<u8>>,
    pub expires_at: Option<String>,
    pub obtained_at: Option<String>,
    pub user_id: Option<String>,
    pub app_expiry: Option<String>,
}

/// The additional authenticated data of a row. Binding the slot, generation
/// and key id means a ciphertext copied to another row, rolled back to
/// another generation, or relabelled with another key id fails to decrypt.
/// Unambiguous although `account` is free text: every other part is from a
/// fixed alphabet without `|`, so the account is whatever lies between them.
fn aad(key: &SessionKey, generation: u64, key_id: &str) -> String {
    aad_of(
        key.broker.as_str(),
        &key.account,
        key.api.as_str(),
        generation,
        key_id,
    )
}

/// [`aad`] from the stored spellings, for rows whose broker this build may
/// not know (a rotation re-encrypts those too).
fn aad_of(broker: &str, account: &str, api: &str, generation: u64, key_id: &str) -> String {
    format!("brokerd-session-v1|{broker}|{account}|{api}|{generation}|{key_id}")
}

/// A stored ciphertext and what it is bound to, as a rotation reads it.
pub(crate) struct Sealed<'a> {
    pub broker: &'a str,
    pub account: &'a str,
    pub api: &'a str,
    pub generation: i64,
    pub key_id: &'a str,
    pub nonce: &'a [u8],
    pub ciphertext: &'a [u8],
}

/// Decrypts `row` with whichever key of `ring` it names and encrypts it
/// again under `target`, without parsing the material (it never leaves
/// this function). `None`: no key of the ring opens it (already unreadable:
/// a foreign key, or tampered with); the row is then left as it is.
pub(crate) fn reseal(
    ring: &KeyRing,
    target: &EncryptionKey,
    row: &Sealed<'_>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let generation = u64::try_from(row.generation).ok()?;
    let key = ring.get(row.key_id)?;
    let aad = |id: &str| aad_of(row.broker, row.account, row.api, generation, id);
    let plaintext = key.open(row.nonce, row.ciphertext, aad(row.key_id).as_bytes())?;
    target.seal(&plaintext, aad(target.id()).as_bytes())
}

/// SQLite and Postgres `BIGINT` are signed; the daemon counts from 1.
pub(crate) fn generation_to_db(generation: u64) -> Result<i64, StoreError> {
    i64::try_from(generation)
        .map_err(|_| StoreError::Invalid(format!("generation {generation} is too large to store")))
}

/// Encrypts the material and lays out the columns of one row.
pub(crate) fn seal(
    key: &EncryptionKey,
    slot: &SessionKey,
    generation: u64,
    session: &NewSession,
) -> Result<SealedRow, StoreError> {
    let encrypt_error = |reason: &str| StoreError::Encrypt {
        key: slot.to_string(),
        reason: reason.to_string(),
    };
    // serde_json's own error text is not used: it can quote input values.
    let plaintext = serde_json::to_vec(&session.material)
        .map_err(|_| encrypt_error("the session material cannot be serialized"))?;
    let (nonce, ciphertext) = key
        .seal(&plaintext, aad(slot, generation, key.id()).as_bytes())
        .ok_or_else(|| encrypt_error("AES-GCM refused the plaintext (too large)"))?;
    Ok(SealedRow {
        generation: generation_to_db(generation)?,
        key_id: key.id().to_string(),
        nonce,
        ciphertext,
        expires_at: time_to_text(session.meta.expires_at),
        obtained_at: time_to_text(session.meta.obtained_at),
        user_id: session.meta.user_id.clone(),
        app_expiry: session.meta.app_expiry.clone(),
    })
}

/// Decodes one row. A damaged or undecryptable session is reported inside
/// [`StoredSession::session`] so the caller still learns the generation;
/// only a row without a usable generation fails as a whole.
pub(crate) fn open(
    keys: &KeyRing,
    slot: &SessionKey,
    row: RawRow,
) -> Result<StoredSession, StoreError> {
    let generation = u64::try_from(row.generation).map_err(|_| StoreError::Corrupt {
        key: slot.to_string(),
        reason: format!("negative generation {}", row.generation),
    })?;
    // No ciphertext: the session was forgotten (logged out).
    let session = row
        .ciphertext
        .is_some()
        .then(|| open_session(keys, slot, generation, row));
    Ok(StoredSession {
        generation,
        session,
        created_by: None,
    })
}

fn open_session(
    keys: &KeyRing,
    slot: &SessionKey,
    generation: u64,
    row: RawRow,
) -> Result<NewSession, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: slot.to_string(),
        reason,
    };
    let decrypt_error = |reason: String| StoreError::Decrypt {
        key: slot.to_string(),
        reason,
    };
    let (Some(ciphertext), Some(row_key_id), Some(nonce), Some(expires_at), Some(obtained_at)) = (
        row.ciphertext,
        row.key_id,
        row.nonce,
        row.expires_at,
        row.obtained_at,
    ) else {
        return Err(corrupt(
            "the row has ciphertext but lacks its key id, nonce or times".into(),
        ));
    };
    let Some(key) = keys.get(&row_key_id) else {
        return Err(decrypt_error(format!(
            "it was encrypted with key {row_key_id}, but the configured key is {}; configure key \
             {row_key_id} again, or log in to replace the session",
            keys.ids().join(", readable ")
        )));
    };
    let plaintext = key
        .open(&nonce, &ciphertext, aad(slot, generation, &row_key_id).as_bytes())
        .ok_or_else(|| {
            decrypt_error(format!(
                "authentication with key {row_key_id} failed: the ciphertext was altered, or copied \
                 from another session or generation"
            ))
        })?;
    // Only the error's position is reported: its message can quote the
    // decrypted (secret) text.
    let material: Material = serde_json::from_slice(&plaintext).map_err(|e| {
        corrupt(format!(
            "the decrypted material does not parse ({:?} error at byte column {})",
            e.classify(),
            e.column()
        ))
    })?;
    let meta = SessionMeta {
        expires_at: text_to_time(&expires_at).map_err(|r| corrupt(format!("expires_at {r}")))?,
        obtained_at: text_to_time(&obtained_at).map_err(|r| corrupt(format!("obtained_at {r}")))?,
        user_id: row.user_id,
        app_expiry: row.app_expiry,
    };
    Ok(NewSession { material, meta })
}

/// Fixed-width RFC 3339 UTC with nanoseconds: sorts as text and round-trips.
fn time_to_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn text_to_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

/// Unix milliseconds back to a time; `None` only for absurd values.
pub(crate) fn millis_to_time(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}
