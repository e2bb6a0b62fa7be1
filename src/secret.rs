//! Secrets: a string type that never prints itself, and the `env:` / `file:` /
//! `cred:` references by which the configuration names where a secret lives.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A secret value (token, password, app secret, TOTP seed, key).
///
/// `Debug` and `Display` print a mask, so a secret cannot reach a log line,
/// an error message or a panic by accident. Reading it is an explicit call
/// to [`Secret::expose`], which is easy to grep for.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where the value goes on the wire or into
    /// the encrypted store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Short SHA-256 fingerprint, the only form in which a token may be logged.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// First 12 hex characters of the SHA-256 of `value`: enough to tell two
/// tokens apart in logs, useless to an attacker.
pub fn fingerprint(value: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(value.as_bytes());
    hex::encode(&digest[..6])
}

/// Where a secret comes from, as written in the configuration.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:NAME` — an environment variable of the daemon.
    Env(String),
    /// `file:/path` — the whole file, trailing newline trimmed.
    File(PathBuf),
    /// `cred:NAME` — a systemd credential, `$CREDENTIALS_DIRECTORY/NAME`.
    Cred(String),
    /// Anything else: the secret written into the config file itself
    /// (accepted, with a warning, because config files get copied around).
    Literal(Secret),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(n) => write!(f, "env:{n}"),
            Self::File(p) => write!(f, "file:{}", p.display()),
            Self::Cred(n) => write!(f, "cred:{n}"),
            Self::Literal(_) => f.write_str("<literal secret>"),
        }
    }
}

/// Why a secret reference could not be resolved. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not unicode).
    #[error("environment variable {0} is not set; export it in the daemon's environment")]
    EnvMissing(String),
    /// The file could not be read.
    #[error(
        "cannot read secret file {path}: {source}; check the path and that the daemon's user can read it"
    )]
    File {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `cred:` used outside systemd.
    #[error(
        "cred:{0} needs $CREDENTIALS_DIRECTORY (set by systemd LoadCredential=); use env: or file: when not running under systemd"
    )]
    NoCredentialsDirectory(String),
    /// The resolved value is empty.
    #[error("the secret from {0} is empty")]
    Empty(String),
}

impl SecretRef {
    /// Parses a reference. Never fails: an unprefixed string is a literal.
    pub fn parse(raw: &str) -> Self {
        if let Some(name) = raw.strip_prefix("env:") {
            Self::Env(name.to_string())
        } else if let Some(path) = raw.strip_prefix("file:") {
            Self::File(PathBuf::from(path))
        } else if let Some(name) = raw.strip_prefix("cred:") {
            Self::Cred(name.to_string())
        } else {
            Self::Literal(Secret::new(raw))
        }
    }

    /// True for a secret written into the config itself.
    pub fn is_literal(&self) -> bool {
        matches!(self, Self::Literal(_))
    }

    /// Makes a relative `file:` path relative to `base` (the config's folder).
    pub fn rebase(&mut self, base: &Path) {
        if let Self::File(p) = self
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// The path a `file:` or `cred:` reference points at, if any.
    pub fn path(&self) -> Result<Option<PathBuf>, SecretError> {
        match self {
            Self::File(p) => Ok(Some(p.clone())),
            Self::Cred(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
                Ok(Some(PathBuf::from(dir).join(name)))
            }
            _ => Ok(None),
        }
    }

    /// Reads the secret now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let value = match self {
            Self::Literal(s) => return Ok(s.clone()),
            Self::Env(name) => {
                std::env::var(name).map_err(|_| SecretError::EnvMissing(name.clone()))?
            }
            Self::File(_) | Self::Cred(_) => {
                let path = self.path()?.expect("file and cred references have a path");
                let text = std::fs::read_to_string(&path)
                    .map_err(|source| SecretError::File { path, source })?;
                text.trim_end_matches(['\n', '\r']).to_string()
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty(format!("{self:?}")));
        }
        Ok(Secret::new(value))
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Ok(Self::parse(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_mask_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        let r = SecretRef::parse("hunter2-very-secret");
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn parses_prefixes() {
        assert_eq!(SecretRef::parse("env:X"), SecretRef::Env("X".into()));
        assert_eq!(
            SecretRef::parse("file:/a/b"),
            SecretRef::File("/a/b".into())
        );
        assert_eq!(SecretRef::parse("cred:k"), SecretRef::Cred("k".into()));
        assert!(SecretRef::parse("abc").is_literal());
    }

    #[test]
    fn resolves_file_and_reports_missing_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "value\n").unwrap();
        let got = SecretRef::File(p).resolve().unwrap();
        assert_eq!(got.expose(), "value");
        let err = SecretRef::Env("BROKERD_TEST_SURELY_UNSET_VAR".into())
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("BROKERD_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
        assert_eq!(fingerprint("abc").len(), 12);
    }
}
