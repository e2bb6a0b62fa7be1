"""Sessions from the real daemon: tokens, the cache, renewals, invalidate,
many threads, events. Every count is the daemon's own (its ``metrics``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from typing import List

import pytest

from brokerd_client import Client, Event, Session, Unavailable

from conftest import BROKERCTL_BIN, Daemon, eventually

# What Jainam answers for a dead token (docs/protocol.md).
INVALID_TOKEN = {"type": "error", "code": "e-session-0007", "description": "Invalid Token"}


def daemon_session(d: Daemon, broker: str, api: str = "interactive") -> dict:
    reply = d.call({"op": "token", "broker": broker, "api": api, "wait_secs": 40})
    assert reply["ok"], reply
    return reply["session"]


def cached_client(d: Daemon, broker: str = "jainam", api: str = "interactive") -> Client:
    """A client whose subscription is up and whose cache holds the session."""
    c = Client(socket=d.socket)
    c.session(broker, api=api)
    assert eventually(lambda: c.subscribed, timeout=5), "the subscription did not come up"
    c.session(broker, api=api)
    return c


def test_a_token_from_each_unattended_broker(daemon: Daemon):
    with Client(socket=daemon.socket) as c:
        interactive = c.session("jainam")
        market = c.session("jainam", api="market")
        neo = c.session("kotak_neo", wait=40)  # may wait for a fresh TOTP window
    for s, broker, api in [(interactive, "jainam", "interactive"), (market, "jainam", "market"), (neo, "kotak_neo", "interactive")]:
        served = daemon_session(daemon, broker, api)
        assert (s.broker, s.account, s.api) == (broker, "demo", api)
        assert (s.token, s.generation) == (served["token"], served["generation"])
        assert s.headers == served["headers"] and s.fields == served["fields"]
        assert s.remaining() > 60
        assert s.token not in repr(s)
    assert interactive.headers["Authorization"] == interactive.token
    assert interactive.fields["client_codes"] == ["DEMO01"]
    assert market.fields["app_version"] == "1.0.0"
    assert {"Auth", "Sid", "neo-fin-key", "Authorization"} <= set(neo.headers)
    assert neo.fields["base_url"].startswith("http://127.0.0.1:")


def test_cached_sessions_cost_no_round_trip(daemon: Daemon):
    c = cached_client(daemon)
    before = daemon.token_requests("jainam")
    sessions = {c.session("jainam") for _ in range(500)}
    assert len(sessions) == 1
    assert daemon.token_requests("jainam") == before, "a cached session() asked the daemon"
    # A different session is not answered from another's cache entry.
    market = c.session("jainam", api="market")
    assert market.api == "market" and daemon.token_requests("jainam", "market") >= 1
    c.close()


def test_min_valid_longer_than_the_cached_session_asks_the_daemon(daemon: Daemon):
    c = cached_client(daemon)
    s = c.session("jainam")
    before = daemon.token_requests("jainam")
    with pytest.raises(Unavailable) as e:
        c.session("jainam", min_valid=s.remaining() + 3600)
    assert e.value.code == "unavailable"
    assert daemon.token_requests("jainam") == before + 1
    # The cached entry still serves callers that need less.
    assert c.session("jainam") == s
    assert daemon.token_requests("jainam") == before + 1
    c.close()


def test_a_forked_child_does_not_trust_the_parents_cache(daemon: Daemon):
    c = cached_client(daemon)
    s = c.session("jainam")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            before = daemon.token_requests("jainam")
            subscribed = c.subscribed
            again = c.session("jainam")  # asks the daemon on a connection of its own
            asked = daemon.token_requests("jainam") - before
            report = f"{subscribed} {asked} {again.generation}"
            os.write(write, report.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        report = f.read().decode()
    os.waitpid(pid, 0)
    assert report == f"False 1 {s.generation}"
    # The parent's cache and pooled connections are untouched.
    before = daemon.token_requests("jainam")
    assert c.session("jainam") == s and c.subscribed
    assert c.status()[0]["broker"] == "jainam"
    assert daemon.token_requests("jainam") == before
    c.close()


def test_a_renewal_elsewhere_drops_the_cached_session(daemon: Daemon):
    c = cached_client(daemon)
    old = c.session("jainam")
    other = Client(socket=daemon.socket)
    new = other.invalidate(old, reason=INVALID_TOKEN, http_status=400)
    assert new.generation > old.generation
    # No invalidate on c: only the `renewed` event can make it ask again.
    assert eventually(lambda: c.session("jainam").generation == new.generation, timeout=5)
    assert c.session("jainam").token == daemon_session(daemon, "jainam")["token"]
    other.close()
    c.close()


def test_a_forced_login_by_brokerctl_drops_the_cached_session(daemon: Daemon):
    c = cached_client(daemon, api="market")
    old = c.session("jainam", api="market")
    out = subprocess.run(
        [str(BROKERCTL_BIN), "--socket", daemon.socket, "login", "jainam", "--api", "market"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    now = daemon.status_of("jainam", "market")["generation"]
    assert now > old.generation
    assert eventually(lambda: c.session("jainam", api="market").generation == now, timeout=5)
    c.close()


def test_invalidate_returns_a_new_generation_after_exactly_one_login(daemon: Daemon):
    c = cached_client(daemon)
    s = c.session("jainam")
    logins = daemon.logins("jainam")
    new = c.invalidate(s, reason=INVALID_TOKEN, http_status=400)
    assert new.generation > s.generation and new.token != s.token
    assert daemon.logins("jainam") == logins + 1
    # A late report of the same generation is answered without a login.
    again = c.invalidate(s, reason=INVALID_TOKEN)
    assert again == new
    assert daemon.logins("jainam") == logins + 1
    # The new session is the one session() gives now, from the cache.
    before = daemon.token_requests("jainam")
    assert eventually(lambda: c.session("jainam") == new, timeout=5)
    assert c.session("jainam") == new
    assert daemon.token_requests("jainam") - before <= 1
    c.close()


def test_fifty_threads_right_after_start_cause_one_login(make_daemon):
    d = make_daemon(jainam_policy="login_at_start = false")
    assert d.logins("jainam") == 0
    c = Client(socket=d.socket)
    start = threading.Barrier(50)
    got: List[Session] = []
    failed: List[BaseException] = []

    def work() -> None:
        start.wait()
        try:
            for _ in range(20):
                got.append(c.session("jainam"))
        except BaseException as e:  # noqa: BLE001 (asserted below)
            failed.append(e)

    threads = [threading.Thread(target=work) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not failed, failed[:3]
    assert len(got) == 1000
    assert len({(s.generation, s.token) for s in got}) == 1
    assert d.logins("jainam") == 1
    c.close()


def test_events_are_yielded_as_they_happen(daemon: Daemon):
    c = Client(socket=daemon.socket)
    seen: List[Event] = []

    def watch() -> None:
        for ev in c.events(brokers=["jainam"]):
            seen.append(ev)

    threading.Thread(target=watch, daemon=True).start()
    # Events are not replayed, and nothing says when the daemon has taken
    # the subscription: renew until a renewal is seen.
    s = c.session("jainam")
    for _ in range(50):
        s = c.invalidate(s, reason=INVALID_TOKEN)
        if eventually(lambda: any(e.api == "interactive" and e.generation == s.generation for e in seen), timeout=0.2):
            break
    ev = next(e for e in seen if e.api == "interactive" and e.generation == s.generation)
    assert (ev.kind, ev.broker, ev.account, ev.api) == ("renewed", "jainam", "demo", "interactive")
    assert ev.expires_at == s.expires_at and ev.login_url is None
    assert all(e.broker == "jainam" for e in seen)
    c.close()


def test_heartbeats_keep_the_stream_alive_and_are_not_yielded(make_daemon):
    d = make_daemon(limits_extra='heartbeat = "20ms"')
    d.wait_active("jainam", "interactive")
    d.wait_active("jainam", "market")
    c = Client(socket=d.socket)
    # The daemon does send them: a raw subscription sees several quickly.
    with socket.socket(socket.AF_UNIX) as raw:
        raw.connect(d.socket)
        raw.sendall(b'{"op":"subscribe","brokers":["jainam"]}\n')
        reader = raw.makefile("rb")
        reader.readline()
        # Other events (the market session's login) may come first.
        kinds = [json.loads(reader.readline())["event"] for _ in range(20)]
        assert kinds.count("heartbeat") >= 3, kinds
    seen: List[Event] = []

    def watch() -> None:
        for ev in c.events(brokers=["jainam"]):
            seen.append(ev)

    threading.Thread(target=watch, daemon=True).start()
    s = c.session("jainam")
    for _ in range(50):
        s = c.invalidate(s, reason=INVALID_TOKEN)
        if eventually(lambda: any(e.generation == s.generation for e in seen), timeout=0.2):
            break
    assert any(e.kind == "renewed" and e.generation == s.generation for e in seen), seen
    # Dozens of heartbeats went by meanwhile; none reached the caller.
    assert [e for e in seen if e.kind == "heartbeat"] == []
    c.close()
