"""Error codes map to the exception classes: every code of docs/protocol.md's
table explicitly, and the daemon's real answers arrive as those classes."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from brokerd_client import AuthRequired, BrokerdError, Client, Forbidden, LockedOut, Session, Unavailable
from brokerd_client.errors import CODE_CLASSES, error_from_wire

from conftest import REPO, Daemon



def documented_codes() -> set:
    """The codes in the error table of docs/protocol.md."""
    text = (REPO / "docs/protocol.md").read_text()
    table = text.split("### Error codes", 1)[1].split("\n\n", 2)[1]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))


def test_every_documented_code_is_mapped_explicitly():
    codes = documented_codes()
    assert "store_unavailable" in codes and "ip_not_allowed" in codes, codes
    assert codes == set(CODE_CLASSES), "docs/protocol.md and CODE_CLASSES disagree"


@pytest.mark.parametrize(
    "code, cls",
    [
        ("locked_out", LockedOut),
        ("forbidden", Forbidden),
        ("unavailable", Unavailable),
        ("store_unavailable", Unavailable),
        ("auth_required", AuthRequired),
        ("bad_request", BrokerdError),
        ("conflict", BrokerdError),
        ("timeout", BrokerdError),
        ("ip_not_allowed", BrokerdError),
        ("some_future_code", BrokerdError),
    ],
)
def test_codes_map_to_classes_with_the_daemons_words(code, cls):
    e = error_from_wire({"code": code, "message": "the daemon's words", "retry_after_secs": 2, "login_url": "http://x/login"})
    assert type(e) is cls
    assert (e.code, e.message, e.retry_after) == (code, "the daemon's words", 2.0)
    assert str(e) == f"{code}: the daemon's words"
    if cls is AuthRequired:
        assert e.login_url == "http://x/login"
    assert not hasattr(e, "login_url") or cls is AuthRequired


def test_without_retry_after_it_is_none():
    e = error_from_wire({"code": "unavailable", "message": "m"})
    assert isinstance(e, Unavailable) and e.retry_after is None


def test_the_daemons_request_errors(daemon: Daemon):
    with Client(socket=daemon.socket) as c:
        with pytest.raises(BrokerdError) as e:
            c.session("jainam", account="nope")
        assert type(e.value) is BrokerdError and e.value.code == "unknown_account"
        assert 'no jainam account "nope"' in e.value.message

        with pytest.raises(BrokerdError) as e:
            c.session("jainam", api="quotes")
        assert type(e.value) is BrokerdError and e.value.code == "bad_request"
        assert "unknown api" in e.value.message

        real = c.session("jainam")
        never = Session(real.broker, real.account, real.api, real.generation + 50, "x", real.expires_at, None, {}, {})
        with pytest.raises(BrokerdError) as e:
            c.invalidate(never)
        assert e.value.code == "bad_request" and "never issued" in e.value.message


def test_auth_required_carries_the_login_url(daemon: Daemon):
    with Client(socket=daemon.socket) as c:
        for broker, key in [("zerodha", "api_key=demokitekey01"), ("breeze", "api_key=demo%2Bbreeze%3Dkey%5E01")]:
            with pytest.raises(AuthRequired) as e:
                c.session(broker, wait=0)
            assert e.value.code == "auth_required"
            assert f"{broker}/demo/interactive: a person must log in" in e.value.message
            assert key in e.value.login_url
            assert e.value.login_url == daemon.call({"op": "login_url", "broker": broker})["login_url"]
        with pytest.raises(AuthRequired) as e:
            c.sign("breeze", "{}")
        assert e.value.login_url and "apiuser/login" in e.value.login_url


def test_unavailable_carries_retry_after_from_a_failing_login(daemon: Daemon):
    """The simulator answers the market login with 503s: the daemon backs off
    and says when it tries again."""
    import urllib.request

    sim = daemon.simulator_url("jainam")
    assert daemon.call({"op": "logout", "broker": "jainam", "api": "market"})["ok"]
    req = urllib.request.Request(f"{sim}/_sim/fail_next?api=market&mode=503&n=20", method="POST")
    urllib.request.urlopen(req, timeout=5).close()
    with Client(socket=daemon.socket) as c:
        with pytest.raises(Unavailable) as e:
            c.session("jainam", api="market", wait=3)
    assert e.value.code == "unavailable", e.value
    assert e.value.retry_after is not None and e.value.retry_after >= 1
    assert "503" in e.value.message


def as_nobody(socket_path: str) -> str:
    """Runs a client in a forked child that dropped to uid/gid 65534
    (nobody) after this interpreter was loaded; returns what it saw."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                Client(socket=socket_path).session("jainam")
                seen = "no error"
            except Forbidden as e:
                seen = f"Forbidden {e.code} {e.message}"
            except BaseException as e:  # noqa: BLE001 (reported to the parent)
                seen = f"{type(e).__name__} {e}"
            os.write(write, seen.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        seen = f.read().decode()
    os.waitpid(pid, 0)
    return seen


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_a_user_not_on_the_allow_lists_gets_forbidden(make_daemon):
    # The client runs as nobody, so the folders on its way to the socket
    # must let it through, and the socket's group is nobody's.
    root = Path(tempfile.mkdtemp(prefix="brokerd-forbidden-"))
    d = None
    try:
        root.chmod(0o755)
        d = make_daemon(root=root, daemon_extra='socket_group = "nogroup"')
        seen = as_nobody(d.socket)
        assert seen.startswith("Forbidden forbidden uid 65534 is not allowed"), seen
    finally:
        if d is not None:
            d.stop()
        shutil.rmtree(root, ignore_errors=True)
