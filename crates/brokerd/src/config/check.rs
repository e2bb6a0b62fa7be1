//! The typed readers every table uses, and the collector of problems and
//! warnings. Nothing stops at the first problem: a bad value is reported and
//! replaced by its default so the rest of the file is still checked (the
//! result is thrown away if any problem was found).

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use super::raw::{
    RawAccount, RawAngelOne, RawAppKeyPair, RawDaemon, RawJainam, RawKotakNeo, RawLimits,
};
use super::{ConfigProblem, FILE_KEY};
use crate::secret::{Secret, SecretEnv, SecretError, SecretRef};

/// Where problems and warnings accumulate while one file is checked.
pub(super) struct Check<'a> {
    base_dir: &'a Path,
    env: &'a SecretEnv,
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
}

impl<'a> Check<'a> {
    /// Starts checking a file whose relative paths are relative to
    /// `base_dir` and whose secrets resolve in `env`.
    pub(super) fn new(base_dir: &'a Path, env: &'a SecretEnv) -> Self {
        Self {
            base_dir,
            env,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The problems and warnings found.
    pub(super) fn finish(self) -> (Vec<ConfigProblem>, Vec<String>) {
        (self.problems, self.warnings)
    }
}

/// Appends `name` to a key path.
pub(super) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// The last segment of a key path, for examples in fixes.
fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// The section where a key is known, for a key found in the wrong one.
/// Asks serde rather than keeping a second list of key names: every raw
/// field is an `Option<Value>`, so a one-key table reads without error
/// exactly when the struct has that key.
fn home_of(name: &str) -> Option<String> {
    fn has<T: DeserializeOwned>(name: &str) -> bool {
        let mut probe = Table::new();
        probe.insert(name.to_string(), Value::Boolean(true));
        probe.try_into::<T>().is_ok()
    }
    let homes: Vec<&str> = [
        (has::<RawDaemon>(name), "[daemon]"),
        (has::<RawLimits>(name), "[daemon.limits]"),
        (has::<RawAccount>(name), "[[account]]"),
        (has::<RawJainam>(name), "[account.jainam]"),
        (
            has::<RawAppKeyPair>(name),
            "[account.jainam.interactive] / [account.jainam.market]",
        ),
        (has::<RawKotakNeo>(name), "[account.kotak_neo]"),
        (has::<RawAngelOne>(name), "[account.angel_one]"),
    ]
    .into_iter()
    .filter_map(|(known, home)| known.then_some(home))
    .collect();
    (!homes.is_empty()).then(|| homes.join(" or "))
}

/// The field name in serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(&rest[..rest.find('`')?])
}

/// Removes `.` and `..` without touching the file system: the files may not
/// exist yet (state directory on first start, socket).
pub(super) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // ".." of the root is the root, as in the kernel.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                // A relative path climbing above its start keeps its "..".
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The text of a problem about an unresolvable secret: names the reference,
/// never a value (a [`SecretError`] cannot hold one).
pub(super) fn secret_error_text(e: &SecretError) -> (String, String) {
    (e.message(), e.fix())
}

impl Check<'_> {
    pub(super) fn problem(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(ConfigProblem::new(key, message, fix));
    }

    pub(super) fn warn(&mut self, key: &str, message: impl fmt::Display) {
        self.warnings.push(format!("{key}: {message}"));
    }

    /// Names the TOML type only, never the value: the value may be a secret.
    pub(super) fn wrong_type(&mut self, key: &str, want: &str, got: &Value, fix: &str) {
        self.problem(key, format!("must be {want}, not {}", got.type_str()), fix);
    }

    /// Reads a (sub-)table into its raw struct. Each unknown key is reported
    /// and dropped, then the table is read again, so one typo neither hides
    /// the next one nor stops the rest of the table from being checked.
    /// `None` when the value is not a table at all.
    pub(super) fn table<T: DeserializeOwned + Default>(
        &mut self,
        value: Option<Value>,
        key: &str,
        how: &str,
    ) -> Option<T> {
        let mut table = match value {
            None => return Some(T::default()),
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.wrong_type(key, "a table", &other, &format!("write it as {how}"));
                return None;
            }
        };
        loop {
            let message = match table.clone().try_into::<T>() {
                Ok(raw) => return Some(raw),
                Err(e) => e.message().trim().to_string(),
            };
            match unknown_field(&message).map(str::to_string) {
                Some(name) if table.remove(&name).is_some() => {
                    let fix = match home_of(&name) {
                        Some(home) => format!(
                            "{name} belongs in {home}: in TOML a key belongs to the nearest [header] \
                             above it, so move it up, above the sub-table headers of that section"
                        ),
                        None => "remove it or correct its spelling \
                                 (config/brokerd.example.toml documents every key)"
                            .to_string(),
                    };
                    self.problem(join(key, &name), format!("unknown key: {message}"), fix);
                }
                // Every leaf is a `toml::Value`, so serde can only object to
                // key names; anything else is reported as-is on the table.
                _ => {
                    let at = if key.is_empty() { FILE_KEY } else { key };
                    self.problem(at, message, "compare with config/brokerd.example.toml");
                    return None;
                }
            }
        }
    }

    /// How many problems have been recorded so far.
    pub(super) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    /// A string that must be present; `example` shows the key written out.
    pub(super) fn required_string(
        &mut self,
        value: Option<Value>,
        key: &str,
        example: &str,
    ) -> Option<String> {
        if value.is_none() {
            self.problem(key, "is required", format!("add {example}"));
            return None;
        }
        self.string(value, key)
    }

    pub(super) fn string(&mut self, value: Option<Value>, key: &str) -> Option<String> {
        match value? {
            Value::String(s) => Some(s),
            other => {
                let fix = format!("quote it: {} = \"...\"", leaf(key));
                self.wrong_type(key, "a string", &other, &fix);
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, value: Option<Value>, key: &str, default: bool) -> bool {
        match value {
            None => default,
            Some(Value::Boolean(b)) => b,
            Some(other) => {
                let k = leaf(key);
                let fix = format!("write {k} = true or {k} = false, without quotes");
                self.wrong_type(key, "true or false", &other, &fix);
                default
            }
        }
    }

    /// A whole number in `range`.
    pub(super) fn uint(
        &mut self,
        value: Option<Value>,
        key: &str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let range_text = format!(
            "use a whole number from {} to {}",
            range.start(),
            range.end()
        );
        match value {
            None => default,
            Some(Value::Integer(n)) => match u64::try_from(n) {
                Ok(n) if range.contains(&n) => n,
                _ => {
                    self.problem(key, format!("{n} is out of range"), range_text);
                    default
                }
            },
            Some(other) => {
                let fix = format!("{range_text}, without quotes");
                self.wrong_type(key, "a whole number", &other, &fix);
                default
            }
        }
    }

    /// A list of uids or gids.
    pub(super) fn ids(&mut self, value: Option<Value>, key: &str) -> Vec<u32> {
        let items = match value {
            None => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                let fix = format!("write a list of numbers, e.g. {} = [1000, 1001]", leaf(key));
                self.wrong_type(key, "a list of numeric ids", &other, &fix);
                return Vec::new();
            }
        };
        let mut ids = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            match item {
                // u32::MAX is (uid_t)-1, "no user", which no peer can have.
                Value::Integer(n) if (0..i64::from(u32::MAX)).contains(&n) => ids.push(n as u32),
                Value::Integer(n) => self.problem(
                    item_key,
                    format!("{n} is not a valid id"),
                    "use a numeric uid/gid as shown by `id -u USER` / `getent group NAME`",
                ),
                other => self.wrong_type(
                    &item_key,
                    "a numeric id",
                    &other,
                    "use numbers (see `id -u USER`), not names",
                ),
            }
        }
        ids
    }

    /// A humantime duration with a unit. A bare number is refused rather
    /// than guessed: "30" could mean seconds or minutes.
    pub(super) fn duration(
        &mut self,
        value: Option<Value>,
        key: &str,
        default: Duration,
    ) -> Duration {
        match value {
            None => default,
            Some(Value::String(s)) => match humantime::parse_duration(s.trim()) {
                Ok(d) => d,
                Err(e) => {
                    self.problem(
                        key,
                        format!("{s:?} is not a duration: {e}"),
                        "write a number with a unit (ms, s, m, h, d), e.g. \"30s\", \"10m\", \"90d\"",
                    );
                    default
                }
            },
            Some(Value::Integer(n)) => {
                self.problem(
                    key,
                    format!("{n} has no unit"),
                    format!("write it with a unit, e.g. \"30s\" (\"{n}s\" if you meant seconds)"),
                );
                default
            }
            Some(other) => {
                self.wrong_type(
                    key,
                    "a duration string",
                    &other,
                    "write it with a unit, e.g. \"30s\"",
                );
                default
            }
        }
    }

    pub(super) fn nonzero(&mut self, d: Duration, key: &str, example: &str) {
        if d.is_zero() {
            self.problem(
                key,
                "must be longer than zero",
                format!("use e.g. {example}"),
            );
        }
    }

    /// Resolves a path against the config's folder.
    pub(super) fn resolve(&self, path: &Path) -> PathBuf {
        normalize(&self.base_dir.join(path))
    }

    /// A path, resolved. `~` is refused because nothing expands it (the
    /// daemon runs without a shell and usually without a home).
    pub(super) fn path(&mut self, value: Option<Value>, key: &str, default: &str) -> PathBuf {
        let text = self
            .string(value, key)
            .unwrap_or_else(|| default.to_string());
        if text.is_empty() {
            self.problem(
                key,
                "is empty",
                format!("write a path, or remove the key for the default {default}"),
            );
        } else if text.starts_with('~') {
            self.problem(
                key,
                "~ is not expanded",
                "write the full path, e.g. /home/USER/...",
            );
        }
        self.resolve(Path::new(&text))
    }

    /// A secret reference, checked for shape and with a relative `file:`
    /// path resolved; not read. `None` when absent or malformed.
    pub(super) fn secret_ref(&mut self, value: Option<Value>, key: &str) -> Option<SecretRef> {
        let value = value?;
        let Value::String(text) = value else {
            let fix = format!(
                "write it as a reference in quotes, e.g. {} = \"cred:NAME\"",
                leaf(key)
            );
            self.wrong_type(key, "a string", &value, &fix);
            return None;
        };
        let mut reference = SecretRef::parse(&text);
        match &mut reference {
            SecretRef::Env(name) if !valid_env_name(name) => {
                self.problem(
                    key,
                    format!("env:{name} does not name an environment variable"),
                    "write env:NAME with letters, digits and _ only, e.g. env:JAINAM_SECRET_KEY",
                );
                return None;
            }
            SecretRef::Cred(name) if !valid_cred_name(name) => {
                self.problem(
                    key,
                    format!("cred:{name} is not a credential name"),
                    "write cred:NAME with the name given to LoadCredential= (no '/')",
                );
                return None;
            }
            SecretRef::File(path) if path.as_os_str().is_empty() => {
                self.problem(key, "file: names no file", "write file:/path/to/secret");
                return None;
            }
            SecretRef::File(path) => *path = self.resolve(path),
            _ => {}
        }
        Some(reference)
    }

    /// A required secret: its reference checked and resolved now, so a
    /// missing variable or file is reported before the daemon starts.
    pub(super) fn secret(&mut self, value: Option<Value>, key: &str) -> Option<Secret> {
        if value.is_none() {
            self.problem(
                key,
                "is required",
                format!(
                    "add {} = \"cred:NAME\" (or env:NAME, or file:/path)",
                    leaf(key)
                ),
            );
            return None;
        }
        let reference = self.secret_ref(value, key)?;
        if let SecretRef::Literal(s) = &reference {
            if s.is_empty() {
                self.problem(
                    key,
                    "is empty",
                    "write the secret's reference, e.g. \"cred:NAME\"",
                );
                return None;
            }
            // The first character is not secret enough to matter and "$" is
            // the common mistake of expecting shell expansion.
            let hint = if s.expose().starts_with('$') {
                "; it starts with '$' but nothing is expanded, so env:NAME was probably meant"
            } else {
                ""
            };
            self.warn(
                key,
                format_args!(
                    "secret written literally in the config file{hint}; config files get copied and \
                     committed, so prefer env:NAME, file:/path or cred:NAME"
                ),
            );
        }
        match reference.resolve_in(self.env) {
            Ok(secret) => Some(secret),
            Err(e) => {
                let (message, fix) = secret_error_text(&e);
                self.problem(key, message, fix);
                None
            }
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// systemd credential names are file names inside the credentials folder;
/// refusing "/" and ".." keeps a reference from escaping it.
fn valid_cred_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && name.len() <= 255
}
