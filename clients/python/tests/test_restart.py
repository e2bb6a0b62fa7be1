"""A daemon restart under a running client: the cache is bypassed while the
subscription is down, and the client reconnects by itself."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import List

import pytest

from brokerd_client import Client, Event, Session, Unavailable

from conftest import Daemon, eventually


def broker_accepts(d: Daemon, s: Session) -> bool:
    """Whether the (new) Jainam simulator accepts the session's headers on a
    profile call, as a trading program would use them."""
    url = f"{d.simulator_url('jainam')}/interactive/user/profile?clientID={s.fields['client_codes'][0]}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=s.headers), timeout=5) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    return body.get("type") == "success"


def test_the_client_rides_through_a_daemon_restart(daemon: Daemon):
    c = Client(socket=daemon.socket)
    before = c.session("jainam")
    assert eventually(lambda: c.subscribed, timeout=5)
    assert broker_accepts(daemon, c.session("jainam"))

    daemon.stop()
    assert eventually(lambda: not c.subscribed, timeout=5), "the subscription did not notice the stop"
    # The cached session is not handed out while no event can retire it:
    # the call goes to the socket, where nothing answers.
    with pytest.raises(Unavailable) as e:
        c.session("jainam", wait=0.3)
    assert e.value.code == "unreachable"

    daemon.start()
    # The new simulator rejects the stored token, so the daemon logs in again.
    assert eventually(lambda: daemon.status_of("jainam")["generation"] > before.generation
                      and daemon.status_of("jainam")["state"] == "active", timeout=15)
    after = c.session("jainam")
    assert after.generation > before.generation
    assert after.token == daemon.call({"op": "token", "broker": "jainam"})["session"]["token"]
    assert broker_accepts(daemon, after)

    # The subscription is back, and with it the cache.
    assert eventually(lambda: c.subscribed, timeout=5)
    c.session("jainam")
    requests = daemon.token_requests("jainam")
    for _ in range(100):
        assert c.session("jainam") == after
    assert daemon.token_requests("jainam") == requests
    c.close()


def test_a_call_made_while_the_daemon_is_down_waits_for_it(daemon: Daemon):
    c = Client(socket=daemon.socket)
    c.session("jainam")
    daemon.stop()
    got: List[Session] = []
    failed: List[BaseException] = []

    def call() -> None:
        try:
            got.append(c.session("jainam", wait=20))
        except BaseException as e:  # noqa: BLE001 (asserted below)
            failed.append(e)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)  # the call is now retrying the connection
    assert t.is_alive() and not got and not failed
    daemon.start()
    t.join(timeout=30)
    assert not failed, failed
    assert got and got[0].token == daemon.call({"op": "token", "broker": "jainam"})["session"]["token"]
    c.close()


def test_events_continue_after_a_restart_and_say_what_was_lost(daemon: Daemon):
    c = Client(socket=daemon.socket)
    seen: List[Event] = []

    def watch() -> None:
        for ev in c.events(brokers=["jainam"]):
            seen.append(ev)

    threading.Thread(target=watch, daemon=True).start()
    # Wait until the stream demonstrably runs (a renewal reaches it).
    s = c.session("jainam")
    for _ in range(50):
        s = c.invalidate(s)
        if eventually(lambda: any(e.api == "interactive" and e.generation == s.generation for e in seen), timeout=0.2):
            break
    assert any(e.api == "interactive" and e.generation == s.generation for e in seen)

    daemon.restart()
    assert eventually(lambda: any(e.kind == "lagged" for e in seen), timeout=10), seen
    lagged = next(e for e in seen if e.kind == "lagged")
    assert lagged.missed is None and lagged.broker is None
    # And the stream goes on: a renewal after the restart arrives.
    s = c.session("jainam")
    for _ in range(50):
        s = c.invalidate(s)
        if eventually(lambda: any(e.api == "interactive" and e.generation == s.generation for e in seen), timeout=0.2):
            break
    assert any(e.kind == "renewed" and e.api == "interactive" and e.generation == s.generation for e in seen)
    c.close()
