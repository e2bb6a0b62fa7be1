//! The store's encryption key, its AEAD (AES-256-GCM), and where the key
//! comes from: `BROKERD_KEY`, else the `daemon.key` reference.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::secret::{Secret, SecretError, SecretRef};

/// AES-256 key length in bytes.
const KEY_LEN: usize = 32;
/// GCM's standard 96-bit nonce; random per write, so 2^32 writes per key stay
/// far below the collision bound.
pub(crate) const NONCE_LEN: usize = 12;
/// A key file is at most a line of base64; refusing to read more keeps a
/// mistaken path (a log, `/dev/zero`) from being slurped whole.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Accepts keys with or without `=` padding: operators paste keys around and
/// padding is the first thing to get lost.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The 32-byte AES-256-GCM key that encrypts session material at rest.
///
/// `Debug` prints only the key id, so the key cannot reach a log by accident.
pub struct EncryptionKey {
    bytes: [u8; KEY_LEN],
    cipher: Aes256Gcm,
    id: String,
}

impl EncryptionKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// Parses base64 of exactly 32 bytes; surrounding whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_base64_key(text, "the given text")
    }

    /// The key as standard base64 (what `brokerctl keygen` prints).
    pub fn to_base64(&self) -> Secret {
        Secret::new(general_purpose::STANDARD.encode(self.bytes))
    }

    /// `k` + the first 8 hex digits of the key's SHA-256: names the key in
    /// rows, logs and errors without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let digest = Sha256::digest(bytes);
        Self {
            bytes,
            cipher: Aes256Gcm::new(&bytes.into()),
            id: format!("k{}", hex::encode(&digest[..4])),
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce, binding `aad`.
    /// Returns `(nonce, ciphertext-with-tag)`.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        // Fails only for plaintexts beyond GCM's 64 GiB limit.
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .ok()?;
        Some((nonce.to_vec(), ciphertext))
    }

    /// Decrypts and authenticates; `None` when the nonce is malformed, the key
    /// is wrong, or the ciphertext or `aad` differ from what was sealed.
    pub(crate) fn open(&self, nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        // Checked here because `Nonce::from_slice` panics on a wrong length,
        // and the nonce comes from the database.
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        self.cipher.decrypt(Nonce::from_slice(&nonce), payload).ok()
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why no usable encryption key could be loaded. Never contains key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Neither `BROKERD_KEY` nor `daemon.key` is set.
    #[error(
        "no encryption key configured: set BROKERD_KEY (base64 of 32 random bytes) or daemon.key \
         (file:/path, cred:NAME or env:NAME); make a key with `brokerctl keygen`"
    )]
    Missing,
    /// `daemon.key` names a file that does not exist.
    #[error(
        "key file {} does not exist; make a key with `brokerctl keygen` and save it there with mode 0600",
        path.display()
    )]
    FileMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// The key text is not base64 (and, for a file, not 32 raw bytes either).
    #[error(
        "the encryption key from {origin} is not valid base64; a key is 32 random bytes in base64, \
         as written by `brokerctl keygen`"
    )]
    NotBase64 {
        /// Where the key came from (`BROKERD_KEY`, `env:NAME`, a file path).
        origin: String,
    },
    /// The key decodes to the wrong number of bytes.
    #[error(
        "the encryption key from {origin} is {len} bytes long; it must be exactly 32 \
         (make one with `brokerctl keygen`)"
    )]
    WrongLength {
        /// Where the key came from.
        origin: String,
        /// The decoded length.
        len: usize,
    },
    /// The key file is readable by group or others.
    #[error(
        "key file {} has mode {mode:04o}, which lets group or others read it; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `daemon.key` holds the key itself instead of naming where it lives.
    #[error(
        "daemon.key must say where the key lives (file:/path, cred:NAME or env:NAME), not contain \
         it: config files get copied around; move the key into a file with mode 0600"
    )]
    LiteralInConfig,
    /// An `env:` or `cred:` reference could not be resolved.
    #[error(transparent)]
    Reference(#[from] SecretError),
    /// Reading or writing the key file failed.
    #[error("cannot {action} key file {}: {source}", path.display())]
    Io {
        /// "read" or "create".
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

/// Loads the store key. Priority: `env_value` (the `BROKERD_KEY` variable,
/// passed in by the caller so tests need not touch the process environment),
/// else `config_ref` (`daemon.key`), else [`KeyError::Missing`].
///
/// With `create_if_missing`, a `file:` reference to a file that does not exist
/// gets a fresh key written to it (mode 0600, parent folders 0700).
/// A set-but-blank `env_value` counts as unset, as `BROKERD_KEY=` in a unit
/// file conventionally means "no value".
pub fn load_key(
    env_value: Option<&str>,
    config_ref: Option<&SecretRef>,
    create_if_missing: bool,
) -> Result<EncryptionKey, KeyError> {
    if let Some(text) = env_value.filter(|v| !v.trim().is_empty()) {
        return decode_base64_key(text, "BROKERD_KEY");
    }
    match config_ref {
        None => Err(KeyError::Missing),
        Some(SecretRef::Literal(_)) => Err(KeyError::LiteralInConfig),
        Some(reference @ SecretRef::Env(name)) => {
            let value = reference.resolve()?;
            decode_base64_key(value.expose(), &format!("env:{name}"))
        }
        Some(SecretRef::File(path)) => load_or_create_file(path, create_if_missing),
        Some(reference @ SecretRef::Cred(_)) => {
            let path = reference
                .path()?
                .expect("a cred: reference always resolves to a path");
            // systemd grants the unit's user read access to a credential with
            // a POSIX ACL where it can, and an ACL's mask shows up as the
            // group bits (0440). The credentials folder is private to the
            // unit anyway, so only "others" bits are refused here.
            read_key_file(&path, 0o007)
        }
    }
}

/// Writes `key` as base64 plus a newline to a new file with mode 0600,
/// creating missing parent folders with mode 0700. Refuses to overwrite an
/// existing file, because replacing a key makes every stored session unreadable.
pub fn write_key_file(path: &Path, key: &EncryptionKey) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = file
        .write_all(format!("{}\n", key.to_base64().expose()).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        // A truncated key file would fail every later start with a confusing
        // "not base64"; better that it not exist.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    // The new directory entry must survive a crash too, or the daemon would
    // come back with sessions encrypted under a key that no longer exists.
    fs::File::open(parent)?.sync_all()
}

fn load_or_create_file(path: &Path, create_if_missing: bool) -> Result<EncryptionKey, KeyError> {
    match read_key_file(path, 0o077) {
        Err(KeyError::FileMissing { .. }) if create_if_missing => {
            let key = EncryptionKey::generate();
            match write_key_file(path, &key) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), key_id = key.id(), "created a new encryption key");
                    Ok(key)
                }
                // Another process created it between our read and write: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key_file(path, 0o077),
                Err(source) => Err(KeyError::Io {
                    action: "create",
                    path: path.to_path_buf(),
                    source,
                }),
            }
        }
        other => other,
    }
}

/// Reads a key file, refusing it when `mode & forbidden_bits != 0`.
fn read_key_file(path: &Path, forbidden_bits: u32) -> Result<EncryptionKey, KeyError> {
    let io_error = |source: io::Error| KeyError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KeyError::FileMissing {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_error(e)),
    };
    // Checked on the open handle, so the mode is that of the file we read.
    let mode = file.metadata().map_err(io_error)?.permissions().mode() & 0o7777;
    if mode & forbidden_bits != 0 {
        return Err(KeyError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let mut contents = Vec::new();
    file.take(MAX_KEY_FILE_LEN)
        .read_to_end(&mut contents)
        .map_err(io_error)?;
    let origin = path.display().to_string();
    // Base64 first: 32 raw random bytes are never valid base64 of 32 bytes
    // (that takes 43+ characters), so the order cannot misread a key.
    match std::str::from_utf8(&contents).map(|t| decode_base64_key(t, &origin)) {
        Ok(Ok(key)) => Ok(key),
        _ if contents.len() == KEY_LEN => {
            let bytes: [u8; KEY_LEN] = contents
                .as_slice()
                .try_into()
                .expect("length checked just above");
            Ok(EncryptionKey::from_bytes(bytes))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(KeyError::NotBase64 { origin }),
    }
}

fn decode_base64_key(text: &str, origin: &str) -> Result<EncryptionKey, KeyError> {
    // The decode error is dropped on purpose: it quotes the offending
    // character, which is part of the key.
    let decoded = BASE64_LENIENT
        .decode(text.trim())
        .map_err(|_| KeyError::NotBase64 {
            origin: origin.to_string(),
        })?;
    let bytes: [u8; KEY_LEN] =
        decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength {
                origin: origin.to_string(),
                len: decoded.len(),
            })?;
    Ok(EncryptionKey::from_bytes(bytes))
}

#[cfg(test)]
#[path = "crypto_tests.rs"]
mod tests;
