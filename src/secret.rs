//! Secrets: a string type that never prints itself, and the `env:` / `file:` /
//! `cred:` references by which the configuration names where a secret lives.

use std::collections::HashMap;
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

    /// The path a `file:` or `cred:` reference points at, if any, using the
    /// daemon's own environment for `$CREDENTIALS_DIRECTORY`.
    pub fn path(&self) -> Result<Option<PathBuf>, SecretError> {
        self.path_in(&SecretEnv::process())
    }

    /// The path a `file:` or `cred:` reference points at, if any, taking
    /// `$CREDENTIALS_DIRECTORY` from `env`.
    pub fn path_in(&self, env: &SecretEnv) -> Result<Option<PathBuf>, SecretError> {
        match self {
            Self::File(p) => Ok(Some(p.clone())),
            Self::Cred(name) => {
                let dir = env
                    .credentials_dir()
                    .ok_or_else(|| SecretError::NoCredentialsDirectory(name.clone()))?;
                Ok(Some(dir.join(name)))
            }
            _ => Ok(None),
        }
    }

    /// Reads the secret now, from the daemon's own environment.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        self.resolve_in(&SecretEnv::process())
    }

    /// Reads the secret now, taking environment variables and
    /// `$CREDENTIALS_DIRECTORY` from `env` (tests pass [`SecretEnv::fake`],
    /// because edition 2024 makes `std::env::set_var` unsafe).
    pub fn resolve_in(&self, env: &SecretEnv) -> Result<Secret, SecretError> {
        let value = match self {
            Self::Literal(s) => return Ok(s.clone()),
            Self::Env(name) => env
                .var(name)
                .ok_or_else(|| SecretError::EnvMissing(name.clone()))?,
            Self::File(_) | Self::Cred(_) => {
                let path = self
                    .path_in(env)?
                    .expect("file and cred references have a path");
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

/// Where secret references are resolved: environment variables and the
/// systemd credentials folder. The daemon uses [`SecretEnv::process`]; tests
/// use [`SecretEnv::fake`] so they never have to mutate the process
/// environment (unsafe in edition 2024, and racy across test threads).
#[derive(Clone)]
pub struct SecretEnv {
    source: EnvSource,
}

#[derive(Clone)]
enum EnvSource {
    /// Read the process environment at the moment of use, so a value set by
    /// the service manager after startup is still seen.
    Process,
    Fake {
        vars: HashMap<String, String>,
        credentials_dir: Option<PathBuf>,
    },
}

impl SecretEnv {
    /// The daemon's real environment variables and `$CREDENTIALS_DIRECTORY`.
    pub fn process() -> Self {
        Self {
            source: EnvSource::Process,
        }
    }

    /// A made-up environment: exactly `vars`, and `credentials_dir` standing
    /// in for `$CREDENTIALS_DIRECTORY`.
    pub fn fake(
        vars: impl IntoIterator<Item = (String, String)>,
        credentials_dir: Option<PathBuf>,
    ) -> Self {
        Self {
            source: EnvSource::Fake {
                vars: vars.into_iter().collect(),
                credentials_dir,
            },
        }
    }

    /// The value of an environment variable; `None` when unset or not
    /// unicode.
    pub fn var(&self, name: &str) -> Option<String> {
        match &self.source {
            EnvSource::Process => std::env::var(name).ok(),
            EnvSource::Fake { vars, .. } => vars.get(name).cloned(),
        }
    }

    /// The systemd credentials folder (`$CREDENTIALS_DIRECTORY`), if any.
    pub fn credentials_dir(&self) -> Option<PathBuf> {
        match &self.source {
            EnvSource::Process => std::env::var_os("CREDENTIALS_DIRECTORY")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
            EnvSource::Fake {
                credentials_dir, ..
            } => credentials_dir.clone(),
        }
    }
}

/// Shows variable names only: the values are likely secrets.
impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            EnvSource::Process => f.write_str("SecretEnv::process()"),
            EnvSource::Fake {
                vars,
                credentials_dir,
            } => {
                let mut names: Vec<&String> = vars.keys().collect();
                names.sort();
                f.debug_struct("SecretEnv::fake")
                    .field("vars", &names)
                    .field("credentials_dir", credentials_dir)
                    .finish()
            }
        }
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
    fn resolves_in_a_fake_environment() {
        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("k"), "from-cred\r\n").unwrap();
        let env = SecretEnv::fake(
            [("BROKERD_FAKE".to_string(), "from-env".to_string())],
            Some(creds.path().to_path_buf()),
        );
        let got = SecretRef::Env("BROKERD_FAKE".into()).resolve_in(&env);
        assert_eq!(got.unwrap().expose(), "from-env");
        let got = SecretRef::Cred("k".into()).resolve_in(&env);
        assert_eq!(got.unwrap().expose(), "from-cred");
        let missing = SecretRef::Env("PATH".into()).resolve_in(&env).unwrap_err();
        assert!(matches!(missing, SecretError::EnvMissing(n) if n == "PATH"));
    }

    #[test]
    fn cred_without_credentials_dir_and_empty_values_fail() {
        let env = SecretEnv::fake([("EMPTY".to_string(), String::new())], None);
        let err = SecretRef::Cred("k".into()).resolve_in(&env).unwrap_err();
        assert!(matches!(err, SecretError::NoCredentialsDirectory(n) if n == "k"));
        let err = SecretRef::Env("EMPTY".into()).resolve_in(&env).unwrap_err();
        assert_eq!(err.to_string(), "the secret from env:EMPTY is empty");
    }

    #[test]
    fn fake_env_debug_shows_names_not_values() {
        let env = SecretEnv::fake([("TOKEN".to_string(), "hunter2".to_string())], None);
        let shown = format!("{env:?}");
        assert!(shown.contains("TOKEN"));
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
        assert_eq!(fingerprint("abc").len(), 12);
    }
}
