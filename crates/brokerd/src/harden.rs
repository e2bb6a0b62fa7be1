//! Keeping the daemon's secrets out of process introspection. brokerd holds
//! every session and the storage key in memory, so at start (once, from the
//! `brokerd` binary) it turns off core dumps and marks itself non-dumpable:
//! no core file lands on disk, and other processes of its own user cannot
//! `ptrace` it or read `/proc/<pid>/mem` or `/proc/<pid>/environ` (root
//! still can). It also says when the storage key comes from an environment
//! variable, which no process can take back out of `/proc/<pid>/environ`.

use rustix::process::{
    DumpableBehavior, Resource, Rlimit, getrlimit, set_dumpable_behavior, setrlimit,
};

use crate::secret::SecretRef;

/// The variable that overrides `daemon.key` (see [`crate::store::load_key`]).
pub const KEY_VAR: &str = "BROKERD_KEY";

/// Turns off core dumps (`RLIMIT_CORE` 0, soft and hard) and marks the
/// process non-dumpable (`PR_SET_DUMPABLE` 0). Returns what could not be
/// done, one message per problem; empty when both hold. Not fatal: a daemon
/// that keeps sessions valid is worth more than one that refuses to start
/// because a sandbox filtered a call, and the caller logs the problems.
///
/// Call it once, before secrets are loaded. In-process tests that start the
/// daemon through [`crate::daemon::start`] do not call it, so the test
/// process keeps its core dumps for debugging.
pub fn process() -> Vec<String> {
    let mut problems = Vec::new();
    // Not dumpable: also what keeps a same-user process from attaching a
    // debugger, which would read the sessions straight out of memory.
    if let Err(e) = set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        problems.push(format!(
            "cannot mark the process non-dumpable (prctl PR_SET_DUMPABLE): {e}; \
             a debugger of the same user could read the sessions from memory"
        ));
    }
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    if let Err(e) = setrlimit(Resource::Core, zero) {
        // A seccomp filter may refuse the call; a limit that the service
        // manager already set to 0 (LimitCORE=0 in the unit) is then enough.
        if getrlimit(Resource::Core).current != Some(0) {
            problems.push(format!(
                "cannot turn off core dumps (setrlimit RLIMIT_CORE): {e}; \
                 set LimitCORE=0 in the unit or `ulimit -c 0` before starting brokerd"
            ));
        }
    }
    problems
}

/// The warning for a storage key read from an environment variable, or
/// `None` when it comes from a file or credential. `overridden` says whether
/// [`KEY_VAR`] supplied the key (it wins over `daemon.key`).
///
/// Given whenever it applies, tests included: the daemon cannot tell a test
/// from a deployment, and a warning in a test's log costs nothing. brokerd
/// removes [`KEY_VAR`] from its own environment at start, but the kernel
/// keeps the environment the process started with in `/proc/<pid>/environ`
/// for as long as it runs (readable by root, and by the daemon's own user
/// unless the process is non-dumpable), so only a file keeps it out.
pub fn env_key_warning(overridden: bool, configured: Option<&SecretRef>) -> Option<String> {
    let name = if overridden {
        KEY_VAR
    } else {
        match configured {
            Some(SecretRef::Env(name)) => name.as_str(),
            Some(SecretRef::File(_) | SecretRef::Cred(_) | SecretRef::Literal(_)) | None => {
                return None;
            }
        }
    };
    Some(format!(
        "the storage key comes from the environment variable {name}: the environment a \
         process started with stays readable in /proc/<pid>/environ for as long as it runs \
         (removing the variable does not erase it there). Keep the key in a file instead: \
         key = \"cred:brokerd-key\" with LoadCredential= under systemd, or \
         key = \"file:/etc/brokerd/key\" (mode 0600); then unset {name}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_for_the_override_and_for_env_references_only() {
        let env = SecretRef::Env("MY_KEY".into());
        let file = SecretRef::File("/etc/brokerd/key".into());
        let cred = SecretRef::Cred("brokerd-key".into());
        // The override wins over whatever the config names.
        for configured in [None, Some(&env), Some(&file), Some(&cred)] {
            let w = env_key_warning(true, configured).expect("override warns");
            assert!(w.contains("BROKERD_KEY") && w.contains("/proc/<pid>/environ"));
            assert!(w.contains("cred:brokerd-key"), "names the fix: {w}");
        }
        let w = env_key_warning(false, Some(&env)).expect("env: key warns");
        assert!(w.contains("MY_KEY") && !w.contains("BROKERD_KEY"), "{w}");
        assert_eq!(env_key_warning(false, Some(&file)), None);
        assert_eq!(env_key_warning(false, Some(&cred)), None);
        assert_eq!(env_key_warning(false, None), None);
    }
}
