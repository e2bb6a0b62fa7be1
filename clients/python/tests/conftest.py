"""Fixtures: the real ``brokerd`` binary on a temp dir, with its bundled
broker simulators, and a raw socket helper that counts at the daemon.

The binary is ``$BROKERD_BIN`` (``cargo test`` sets it), else
``<repo>/target/debug/brokerd-demo`` (brokerd with its bundled simulators);
``brokerctl`` likewise (``$BROKERCTL_BIN``).
Nothing here talks to a real broker: every account points at a simulator.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
BROKERD_BIN = Path(os.environ.get("BROKERD_BIN") or REPO / "target/debug/brokerd-demo")
BROKERCTL_BIN = Path(os.environ.get("BROKERCTL_BIN") or REPO / "target/debug/brokerctl")

# Most tests report rejections and force logins in quick succession: the
# login budget and the conflict detector are opened wide (the Rust suite
# tests those rules), so each test sees exactly the logins it causes.
POLICY = """
min_login_interval = "0s"
max_logins_per_hour = 3600
conflict_threshold = 1000
"""


def accounts(jainam_policy: str = "") -> str:
    """The demo's four accounts, pointed at the bundled simulators."""
    return f"""
[[account]]
broker = "jainam"
name = "demo"
{jainam_policy}
{POLICY}
[account.jainam]
root = "simulator"
[account.jainam.interactive]
app_key = "demo-interactive-key"
secret_key = "demo-interactive-secret"
[account.jainam.market]
app_key = "demo-market-key"
secret_key = "demo-market-secret"

# Logs in on the first request: a Kotak login may wait a few seconds for
# a fresh TOTP window, which only the Kotak test should pay for.
[[account]]
broker = "kotak_neo"
name = "demo"
login_at_start = false
{POLICY}
[account.kotak_neo]
login_host = "simulator"
access_token = "demo-kotak-access-token"
mobile = "+919999900001"
ucc = "DEMO1"
mpin = "123456"
totp_seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

[[account]]
broker = "zerodha"
name = "demo"
[account.zerodha]
api_root = "simulator"
login_root = "simulator"
ticker_root = "simulator"
api_key = "demokitekey01"
api_secret = "demo-kite-api-secret"
user_id = "ZD1234"

[[account]]
broker = "breeze"
name = "demo"
[account.breeze]
api_root = "simulator"
login_root = "simulator"
app_key = "demo+breeze=key^01"
secret_key = "demo-breeze-secret-key"
user_id = "BZ1234"
"""


def raw_call(path: str, request: Dict[str, Any], timeout: float = 30) -> Dict[str, Any]:
    """One request on a fresh connection, without the client under test."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps(request).encode() + b"\n")
        line = s.makefile("rb").readline()
    return json.loads(line)


def eventually(cond: Callable[[], bool], timeout: float = 10, every: float = 0.01) -> bool:
    """Polls ``cond`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(every)
    return cond()


class Daemon:
    """The real daemon as a child process on ``root``; restartable on the
    same state dir and socket path."""

    def __init__(self, root: Path, jainam_policy: str = "", daemon_extra: str = "", limits_extra: str = "") -> None:
        self.root = root
        self.socket = str(root / "run/brokerd.sock")
        self.config = root / "brokerd.toml"
        self.log = root / "daemon.log"
        self.proc: Optional[subprocess.Popen] = None
        self.config.write_text(
            f"""
[daemon]
socket = "{self.socket}"
state_dir = "{root}/state"
key = "file:{root}/keys/brokerd.key"
create_key_if_missing = true
log_format = "json"
{daemon_extra}
[daemon.limits]
default_wait = "10s"
shutdown_grace = "5s"
{limits_extra}

[simulator]
listen = "127.0.0.1:0"
{accounts(jainam_policy)}
"""
        )

    def start(self) -> None:
        """Starts the daemon and waits until it answers ``hello``."""
        assert BROKERD_BIN.exists(), f"no brokerd-demo binary at {BROKERD_BIN}: run `cargo build --bin brokerd-demo` or set BROKERD_BIN"
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(BROKERD_BIN), "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={k: v for k, v in os.environ.items() if k not in ("BROKERD_KEY", "BROKERD_SOCKET")},
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, f"brokerd exited:\n{self.log_text()}"
            try:
                return raw_call(self.socket, {"op": "hello"}, timeout=1).get("ok") is True
            except OSError:
                return False

        assert eventually(ready, timeout=20, every=0.02), f"brokerd did not come up:\n{self.log_text()}"

    def stop(self) -> None:
        """SIGTERM, then waits for the process to exit."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"brokerd did not stop on SIGTERM:\n{self.log_text()}")
        finally:
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    # -- what the daemon counts ---------------------------------------------

    def call(self, request: Dict[str, Any], timeout: float = 30) -> Dict[str, Any]:
        return raw_call(self.socket, request, timeout)

    def metric(self, name: str, broker: str, api: str = "interactive", extra: str = "") -> int:
        """One per-session counter from the ``metrics`` op."""
        text = self.call({"op": "metrics"})["text"]
        labels = f'broker="{broker}",account="demo",api="{api}"{extra}'
        m = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\d+)$", text, re.M)
        assert m, f"no {name}{{{labels}}} in the metrics:\n{text}"
        return int(m.group(1))

    def metric_total(self, name: str) -> int:
        """A daemon-wide metric without labels (``brokerd_connections``)."""
        text = self.call({"op": "metrics"})["text"]
        m = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
        assert m, f"no {name} in the metrics:\n{text}"
        return int(m.group(1))

    def logins(self, broker: str, api: str = "interactive") -> int:
        """Successful broker logins of one session, as the daemon counts them."""
        return self.metric("brokerd_logins_total", broker, api, ',result="ok"')

    def token_requests(self, broker: str, api: str = "interactive") -> int:
        """``token`` requests the daemon received for one session."""
        return self.metric("brokerd_token_requests_total", broker, api)

    def status_of(self, broker: str, api: str = "interactive") -> Dict[str, Any]:
        for entry in self.call({"op": "status"})["accounts"]:
            if entry["broker"] == broker and entry["api"] == api:
                return entry
        raise AssertionError(f"{broker}/{api} is not in status")

    def wait_active(self, broker: str, api: str = "interactive", timeout: float = 15) -> None:
        """Waits until the session is ``active`` (its login at start is done)."""
        assert eventually(lambda: self.status_of(broker, api)["state"] == "active", timeout), (
            f"{broker}/{api} is not active: {self.status_of(broker, api)}"
        )

    def simulator_url(self, broker: str) -> str:
        """A bundled simulator's base URL, from the daemon's startup log."""
        for line in reversed(self.log.read_text().splitlines()):
            if "simulators listening" in line:
                return str(json.loads(line)[broker] if broker in json.loads(line) else json.loads(line)["fields"][broker])
        raise AssertionError(f"no simulator address in the log:\n{self.log_text()}")


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own folder: the SDKs write into the working
    directory (breeze_connect and neo_api_client create ``logs/`` when
    imported), and nothing of a test run belongs in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A running daemon with Jainam (logged in at start), Kotak Neo (logs in
    on first use), Zerodha and Breeze (waiting for a browser login)."""
    d = Daemon(tmp_path)
    d.start()
    d.wait_active("jainam", "interactive")
    d.wait_active("jainam", "market")
    yield d
    d.stop()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """A factory for daemons with other settings; each is stopped at the end."""
    made = []

    def make(**kwargs: Any) -> Daemon:
        root = Path(kwargs.pop("root", tmp_path / f"d{len(made)}"))
        root.mkdir(parents=True, exist_ok=True)
        d = Daemon(root, **kwargs)
        made.append(d)
        d.start()
        return d

    yield make
    for d in made:
        d.stop()
