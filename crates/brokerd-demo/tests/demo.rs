//! The README's first command: brokerd-demo on `config/demo.toml` (with its
//! state, key and socket moved to a temporary folder and the callback on any
//! free port), answered over the real socket, then reloaded with SIGHUP,
//! which must read the file through the demo's rewrite again. And brokerd's
//! own reader refuses the same file, naming brokerd-demo.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `config/demo.toml` with everything it writes moved under `dir`.
fn demo_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let moved = text
        .replace(
            "socket = \"../target/brokerd-demo/run/brokerd.sock\"",
            &format!("socket = \"{}/run/brokerd.sock\"", dir.display()),
        )
        .replace(
            "state_dir = \"../target/brokerd-demo/state\"",
            &format!("state_dir = \"{}/state\"", dir.display()),
        )
        .replace(
            "key = \"file:../target/brokerd-demo/state/demo.key\"",
            &format!("key = \"file:{}/state/demo.key\"", dir.display()),
        )
        .replace("listen = \"127.0.0.1:8765\"", "listen = \"127.0.0.1:0\"");
    assert_eq!(
        moved.matches(&*dir.display().to_string()).count(),
        3,
        "config/demo.toml changed shape; update this test:\n{text}"
    );
    let path = dir.join("demo.toml");
    std::fs::write(&path, moved).unwrap();
    path
}

struct Demo {
    child: Child,
    log: PathBuf,
    socket: PathBuf,
}

impl Demo {
    fn start(dir: &Path) -> Self {
        let config = demo_config(dir);
        let log = dir.join("demo.log");
        let child = Command::new(env!("CARGO_BIN_EXE_brokerd-demo"))
            .arg("--config")
            .arg(&config)
            .env_remove("BROKERD_KEY")
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            socket: dir.join("run/brokerd.sock"),
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn call(&self, request: Value) -> Value {
        let mut c = brokerd::client::Client::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.logs()));
        c.call(&request).await.unwrap()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("brokerd-demo exited with {status}:\n{}", self.logs());
            }
            if self.socket.exists() && brokerd::client::Client::connect(&self.socket).await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("brokerd-demo did not come up:\n{}", self.logs());
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_its_simulated_accounts_and_reloads_through_its_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    demo.wait_ready().await;
    assert!(
        demo.logs().contains("bundled broker simulators listening"),
        "{}",
        demo.logs()
    );

    let token = demo
        .call(json!({"op": "token", "broker": "jainam", "wait_secs": 20}))
        .await;
    let root = token["session"]["fields"]["api_root"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"));
    // The session came from the bundled simulator, on loopback.
    assert!(root.starts_with("http://127.0.0.1:"), "{token}");
    let generation = token["session"]["generation"].as_u64().unwrap();
    // Angel One logs in by itself too (a TOTP login: up to a window's wait).
    let angel = demo
        .call(json!({"op": "token", "broker": "angel_one", "wait_secs": 60}))
        .await;
    let angel_root = angel["session"]["fields"]["api_root"]
        .as_str()
        .unwrap_or_else(|| panic!("{angel}"));
    assert!(angel_root.starts_with("http://127.0.0.1:"), "{angel}");

    // The interactive accounts wait for a person at the simulators' pages.
    let url = demo
        .call(json!({"op": "login_url", "broker": "zerodha"}))
        .await;
    let link = url["login_url"].as_str().unwrap_or_else(|| panic!("{url}"));
    assert!(link.starts_with("http://127.0.0.1:"), "{url}");

    // A reload reads the file again: through the rewrite, or brokerd would
    // refuse [simulator] and "simulator" and keep the old configuration.
    demo.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    let done =
        |logs: &str| logs.contains("configuration reloaded") || logs.contains("reload refused");
    while !done(&demo.logs()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = demo.logs();
    assert!(logs.contains("configuration reloaded"), "{logs}");
    assert!(!logs.contains("reload refused"), "{logs}");
    // Nothing changed, so the session is the same generation.
    let again = demo
        .call(json!({"op": "token", "broker": "jainam", "wait_secs": 5}))
        .await;
    assert_eq!(
        again["session"]["generation"].as_u64(),
        Some(generation),
        "{again}"
    );

    demo.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            assert!(status.success(), "{status}:\n{}", demo.logs());
            break;
        }
        assert!(Instant::now() < deadline, "did not stop:\n{}", demo.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn brokerd_itself_refuses_the_demo_config_and_names_brokerd_demo() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let errors = brokerd::config::Config::load(&config).unwrap_err();
    let simulator = errors
        .0
        .iter()
        .find(|p| p.key == "simulator")
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(simulator.fix.contains("brokerd-demo"), "{simulator}");
    // And every "simulator" URL is named, not silently taken as a host.
    assert!(
        errors.0.iter().any(|p| p.key.ends_with("jainam.root")),
        "{errors}"
    );
}
