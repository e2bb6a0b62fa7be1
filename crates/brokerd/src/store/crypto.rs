//! The store's encryption key, its AEAD (AES-256-GCM), and where the key
//! comes from: `BROKERD_KEY`, else the `daemon.key` reference.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::secret::{Secret, SecretEnv, SecretError, SecretRef};

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
///
/// [`KeyError::message`] says what is wrong and [`KeyError::fix`] what to
/// do; `Display` joins them. The daemon's start and `check-config` both
/// show these texts (through `preflight`), so each rule has one wording.
#[derive(Debug)]
pub enum KeyError {
    /// Neither `BROKERD_KEY` nor `daemon.key` is set.
    Missing,
    /// `daemon.key` names a file that does not exist.
    FileMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// The key text is not base64 (and, for a file, not 32 raw bytes either).
    NotBase64 {
        /// Where the key came from (`BROKERD_KEY`, `env:NAME`, a file path).
        origin: String,
    },
    /// The key decodes to the wrong number of bytes.
    WrongLength {
        /// Where the key came from.
        origin: String,
        /// The decoded length.
        len: usize,
    },
    /// The key file lets its group or others in (the rule of every secret
    /// file: [`SecretRef::forbidden_mode_bits`]).
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The bits refused for this kind of reference.
        forbidden: u32,
    },
    /// `daemon.key` holds the key itself instead of naming where it lives.
    LiteralInConfig,
    /// An `env:` or `cred:` reference could not be resolved.
    Reference(SecretError),
    /// Reading or writing the key file failed.
    Io {
        /// "read" or "create".
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
}

impl KeyError {
    /// What is wrong. Names where the key comes from, never the key.
    pub fn message(&self) -> String {
        match self {
            Self::Missing => "no encryption key configured".to_string(),
            Self::FileMissing { path } => format!("key file {} does not exist", path.display()),
            Self::NotBase64 { origin } => {
                format!("the encryption key from {origin} is not valid base64 (nor 32 raw bytes)")
            }
            Self::WrongLength { origin, len } => format!(
                "the encryption key from {origin} is {len} bytes long; it must be exactly 32"
            ),
            Self::Permissions {
                path,
                mode,
                forbidden,
            } => format!(
                "key file {}",
                crate::secret::mode_message(path, *mode, *forbidden)
            ),
            Self::LiteralInConfig => "daemon.key holds the key itself instead of naming where \
                                      it lives, and config files get copied around"
                .to_string(),
            Self::Reference(e) => e.message(),
            Self::Io {
                action,
                path,
                source,
            } => format!("cannot {action} key file {}: {source}", path.display()),
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::Missing => "set daemon.key (file:/path, cred:NAME or env:NAME) or BROKERD_KEY \
                              (base64 of 32 random bytes); make a key with `brokerctl keygen`"
                .to_string(),
            Self::FileMissing { path } => format!(
                "make a key with `brokerctl keygen --out {}` (it writes mode 0600), or set \
                 create_key_if_missing = true",
                path.display()
            ),
            Self::NotBase64 { .. } | Self::WrongLength { .. } => {
                "a key is 32 random bytes in base64, as written by `brokerctl keygen`; \
                 point daemon.key at such a file"
                    .to_string()
            }
            Self::Permissions { path, .. } => crate::secret::mode_fix(path),
            Self::LiteralInConfig => "move the key into a file with mode 0600 and write \
                                      key = \"file:/path\" (or cred:NAME, env:NAME)"
                .to_string(),
            Self::Reference(e) => e.fix(),
            Self::Io { path, .. } => format!(
                "point daemon.key at the key file written by `brokerctl keygen`, and let the \
                 daemon's user reach it (now: {})",
                path.display()
            ),
        }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message(), self.fix())
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Reference(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::Missing
            | Self::FileMissing { .. }
            | Self::NotBase64 { .. }
            | Self::WrongLength { .. }
            | Self::Permissions { .. }
            | Self::LiteralInConfig => None,
        }
    }
}

impl From<SecretError> for KeyError {
    fn from(e: SecretError) -> Self {
        Self::Reference(e)
    }
}

/// Where the key comes from, found without reading or creating a file.
enum KeySource {
    /// Text to decode, and where it came from (`BROKERD_KEY`, `env:NAME`).
    Text(Secret, String),
    /// A key file, the mode bits it must not have, and whether the daemon
    /// may create it (a `file:` key; a credential is systemd's).
    File {
        path: PathBuf,
        forbidden: u32,
        creatable: bool,
    },
}

/// The one place that decides where the key comes from. Priority:
/// `env_value` (the `BROKERD_KEY` variable, passed in by the caller so tests
/// need not touch the process environment; blank counts as unset, as
/// `BROKERD_KEY=` in a unit file conventionally means "no value"), else
/// `config_ref` (`daemon.key`), else [`KeyError::Missing`].
fn locate(
    env_value: Option<&str>,
    config_ref: Option<&SecretRef>,
    env: &SecretEnv,
) -> Result<KeySource, KeyError> {
    if let Some(text) = env_value.filter(|v| !v.trim().is_empty()) {
        return Ok(KeySource::Text(
            Secret::new(text),
            "BROKERD_KEY".to_string(),
        ));
    }
    match config_ref {
        None => Err(KeyError::Missing),
        Some(SecretRef::Literal(_)) => Err(KeyError::LiteralInConfig),
        Some(reference @ SecretRef::Env(name)) => Ok(KeySource::Text(
            reference.resolve_in(env)?,
            format!("env:{name}"),
        )),
        Some(reference @ SecretRef::File(path)) => Ok(KeySource::File {
            path: path.clone(),
            forbidden: reference.forbidden_mode_bits(),
            creatable: true,
        }),
        Some(reference @ SecretRef::Cred(_)) => Ok(KeySource::File {
            path: reference
                .path_in(env)?
                .expect("a cred: reference always resolves to a path"),
            forbidden: reference.forbidden_mode_bits(),
            creatable: false,
        }),
    }
}

/// Loads the store key: from `env_value` (`BROKERD_KEY`), else `config_ref`
/// (`daemon.key`), resolved in the daemon's own environment.
///
/// With `create_if_missing`, a `file:` reference to a file that does not exist
/// gets a fresh key written to it (mode 0600, parent folders 0700).
pub fn load_key(
    env_value: Option<&str>,
    config_ref: Option<&SecretRef>,
    create_if_missing: bool,
) -> Result<EncryptionKey, KeyError> {
    match locate(env_value, config_ref, &SecretEnv::process())? {
        KeySource::Text(text, origin) => decode_base64_key(text.expose(), &origin),
        KeySource::File {
            path,
            forbidden,
            creatable,
        } if creatable && create_if_missing => load_or_create_file(&path, forbidden),
        KeySource::File {
            path, forbidden, ..
        } => read_key_file(&path, forbidden),
    }
}

/// What [`load_key`] would do, without creating anything: `Ok(None)` when
/// it would load a valid key, `Ok(Some(path))` when it would create the key
/// file `path` (its folder is for the caller to check), or the error
/// [`load_key`] would return. `env` stands in for the daemon's environment.
pub fn check_key(
    env_value: Option<&str>,
    config_ref: Option<&SecretRef>,
    create_if_missing: bool,
    env: &SecretEnv,
) -> Result<Option<PathBuf>, KeyError> {
    match locate(env_value, config_ref, env)? {
        KeySource::Text(text, origin) => decode_base64_key(text.expose(), &origin).map(|_| None),
        KeySource::File {
            path,
            forbidden,
            creatable,
        } => match read_key_file(&path, forbidden) {
            Ok(_) => Ok(None),
            Err(KeyError::FileMissing { path }) if creatable && create_if_missing => Ok(Some(path)),
            Err(e) => Err(e),
        },
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

fn load_or_create_file(path: &Path, forbidden: u32) -> Result<EncryptionKey, KeyError> {
    match read_key_file(path, forbidden) {
        Err(KeyError::FileMissing { .. }) => {
            let key = EncryptionKey::generate();
            match write_key_file(path, &key) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), key_id = key.id(), "created a new encryption key");
                    Ok(key)
                }
                // Another process created it between our read and write: use theirs.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    read_key_file(path, forbidden)
                }
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

/// Reads a key file, refusing it when `mode & forbidden_bits != 0` (the
/// rule of every secret file, [`crate::secret::read_private_file`]).
pub(crate) fn read_key_file(path: &Path, forbidden_bits: u32) -> Result<EncryptionKey, KeyError> {
    let contents = match crate::secret::read_private_file(path, forbidden_bits, MAX_KEY_FILE_LEN) {
        Ok(c) => c,
        // ENOTDIR: a file where a folder on the way should be; the key is
        // missing all the same, and a creation names the culprit.
        Err(SecretError::File { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(KeyError::FileMissing {
                path: path.to_path_buf(),
            });
        }
        Err(SecretError::Permissions {
            path,
            mode,
            forbidden,
        }) => {
            return Err(KeyError::Permissions {
                path,
                mode,
                forbidden,
            });
        }
        Err(SecretError::File { source, .. }) => {
            return Err(KeyError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
        Err(
            e @ (SecretError::EnvMissing(_)
            | SecretError::NoCredentialsDirectory(_)
            | SecretError::Empty(_)),
        ) => return Err(KeyError::Reference(e)),
    };
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
