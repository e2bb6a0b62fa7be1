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
///
/// Each variant says what is wrong ([`SecretError::message`]) and what to
/// do about it ([`SecretError::fix`]); `Display` joins the two, and
/// `check-config` shows them apart. One text per rule, whoever reports it.
#[derive(Debug)]
pub enum SecretError {
    /// The environment variable is not set (or not unicode).
    EnvMissing(String),
    /// The file could not be read.
    File {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `cred:` used outside systemd.
    NoCredentialsDirectory(String),
    /// The resolved value is empty.
    Empty(String),
    /// The file holding the secret lets users other than its owner in
    /// (see [`SecretRef::forbidden_mode_bits`]).
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The bits the rule refuses for this kind of reference.
        forbidden: u32,
    },
}

impl SecretError {
    /// What is wrong: names the reference or file, never a value.
    pub fn message(&self) -> String {
        match self {
            Self::EnvMissing(name) => {
                format!("environment variable {name} (from env:{name}) is not set")
            }
            Self::File { path, source } => format!("cannot read {}: {source}", path.display()),
            Self::NoCredentialsDirectory(name) => format!(
                "cred:{name} needs $CREDENTIALS_DIRECTORY, which is not set \
                 (systemd sets it for services with LoadCredential=)"
            ),
            Self::Empty(what) => format!("the secret from {what} is empty"),
            Self::Permissions {
                path,
                mode,
                forbidden,
            } => mode_message(path, *mode, *forbidden),
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::EnvMissing(name) => format!(
                "set {name} in the daemon's environment (systemd: Environment= or EnvironmentFile=), \
                 or reference the secret with file: or cred: instead"
            ),
            Self::File { .. } => {
                "check the path, and that the daemon's user can read the file".to_string()
            }
            Self::NoCredentialsDirectory(name) => format!(
                "under systemd add LoadCredential={name}:/path/to/file to the unit; when checking by hand \
                 run with CREDENTIALS_DIRECTORY set to a folder holding {name} (e.g. /etc/credstore); \
                 outside systemd use env: or file:"
            ),
            Self::Empty(_) => {
                "put the secret there, or point the reference somewhere else".to_string()
            }
            Self::Permissions { path, .. } => mode_fix(path),
        }
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message(), self.fix())
    }
}

impl std::error::Error for SecretError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::File { source, .. } => Some(source),
            Self::EnvMissing(_)
            | Self::NoCredentialsDirectory(_)
            | Self::Empty(_)
            | Self::Permissions { .. } => None,
        }
    }
}

/// The problem text of a secret file (or key file) whose mode has
/// `forbidden` bits set. Shared by broker secrets and the storage key.
pub fn mode_message(path: &Path, mode: u32, forbidden: u32) -> String {
    let bad = mode & forbidden;
    let who = match (bad & 0o070 != 0, bad & 0o007 != 0) {
        (true, true) => "its group and others",
        (true, false) => "its group",
        (false, true) | (false, false) => "others",
    };
    format!(
        "{} has mode {mode:04o}, which lets {who} at a secret",
        path.display()
    )
}

/// The fix of [`mode_message`].
pub fn mode_fix(path: &Path) -> String {
    format!(
        "run `chmod 600 {}` (owned by the daemon's user)",
        path.display()
    )
}

/// Reads a secret file, refusing it when its mode has `forbidden` bits set.
/// The mode is checked on the open handle, so it is that of the file read.
pub fn read_private_file(path: &Path, forbidden: u32, limit: u64) -> Result<Vec<u8>, SecretError> {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let io_error = |source| SecretError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    // A device or a pipe (`/dev/zero`, a mistyped path) is never a secret
    // file, and its mode would suggest a wrong fix (chmod on a device).
    if !meta.is_file() {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(SecretError::Permissions {
            path: path.to_path_buf(),
            mode,
            forbidden,
        });
    }
    let mut contents = Vec::new();
    file.take(limit)
        .read_to_end(&mut contents)
        .map_err(io_error)?;
    Ok(contents)
}

/// Longest secret file read: secrets are short, and a mistaken path (a log,
/// `/dev/zero`) must not be slurped whole.
const MAX_SECRET_FILE_LEN: u64 = 64 * 1024;

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

    /// Permission bits the file behind this reference must not have; 0 for
    /// references that are not files.
    ///
    /// Refused, not warned about: a secret others can read is already
    /// leaked to every local account, and the daemon must not make that
    /// its normal state. `file:` refuses every group and other bit, like a
    /// key file. `cred:` refuses only the other bits: systemd grants the
    /// unit's user read access to a credential with a POSIX ACL where it
    /// can, and an ACL's mask shows up as the group bits (0440), while the
    /// credentials folder is private to the unit anyway.
    pub fn forbidden_mode_bits(&self) -> u32 {
        match self {
            Self::File(_) => 0o077,
            Self::Cred(_) => 0o007,
            Self::Env(_) | Self::Literal(_) => 0,
        }
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
                let bytes =
                    read_private_file(&path, self.forbidden_mode_bits(), MAX_SECRET_FILE_LEN + 1)?;
                if bytes.len() as u64 > MAX_SECRET_FILE_LEN {
                    return Err(SecretError::File {
                        path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "larger than 64 KiB, which no secret is (is it the right file?)",
                        ),
                    });
                }
                let text = String::from_utf8(bytes).map_err(|_| SecretError::File {
                    path,
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the file is not UTF-8 text",
                    ),
                })?;
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
        write_private(&p, "value\n");
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
        write_private(&creds.path().join("k"), "from-cred\r\n");
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
        assert_eq!(err.message(), "the secret from env:EMPTY is empty");
    }

    #[test]
    fn fake_env_debug_shows_names_not_values() {
        let env = SecretEnv::fake([("TOKEN".to_string(), "hunter2".to_string())], None);
        let shown = format!("{env:?}");
        assert!(shown.contains("TOKEN"));
        assert!(!shown.contains("hunter2"));
    }

    fn write_private(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn secret_files_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "hunter2-mode\n").unwrap();
        let set = |mode| {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        set(0o640);
        let err = SecretRef::File(p.clone()).resolve().unwrap_err();
        assert!(matches!(err, SecretError::Permissions { mode: 0o640, .. }));
        let text = err.to_string();
        assert!(
            text.contains("0640") && text.contains("its group"),
            "{text}"
        );
        assert!(
            text.contains(&format!("chmod 600 {}", p.display())),
            "{text}"
        );
        assert!(!text.contains("hunter2"));
        // A credential may show an ACL mask as group bits, never other bits.
        let env = SecretEnv::fake([], Some(dir.path().to_path_buf()));
        assert!(SecretRef::Cred("s".into()).resolve_in(&env).is_ok());
        set(0o604);
        let err = SecretRef::Cred("s".into()).resolve_in(&env).unwrap_err();
        assert!(err.message().contains("lets others at"), "{err}");
        set(0o600);
        assert!(SecretRef::File(p.clone()).resolve().is_ok());
    }

    #[test]
    fn fingerprint_is_short_and_stable() {
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
        assert_eq!(fingerprint("abc").len(), 12);
    }
}
