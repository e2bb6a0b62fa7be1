"""The SDK adapters against the real daemon and its simulators.

Kite (REST and ticker), Breeze, Kotak Neo and XTS use the real SDK
packages (kiteconnect, breeze-connect, kotakneoapi from
requirements-test.txt; xts-api-client installed by .ci/run without its
dependencies, see the README). A few stand-ins (a ticker, an XTSConnect)
also check shapes the simulators do not make. Every count is the daemon's
or the simulator's.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

import pytest

from brokerd_client import AuthRequired, Client
from brokerd_client import adapters

from conftest import Daemon, eventually


def http(method: str, url: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except ValueError:
            return e.code, {}


def invalidations(d: Daemon, broker: str, kind: str, api: str = "interactive") -> int:
    text = d.call({"op": "metrics"})["text"]
    total = 0
    for line in text.splitlines():
        if line.startswith("brokerd_invalidations_total{") and f'broker="{broker}"' in line and f'api="{api}"' in line and f'kind="{kind}"' in line:
            total += int(line.rsplit(" ", 1)[1])
    return total


def kite_login(d: Daemon) -> dict:
    """A browser login at the Kite simulator, submitted to the daemon."""
    sim = d.simulator_url("zerodha")
    http("POST", f"{sim}/_sim/redirect_url?api_key=demokitekey01&url=http://127.0.0.1:9/cb", b"")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **k: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{sim}/connect/login?v=3&api_key=demokitekey01", timeout=10)
        raise AssertionError("no redirect")
    except urllib.error.HTTPError as e:
        location = e.headers["Location"]
    token = re.search(r"request_token=([A-Za-z0-9]+)", location).group(1)
    reply = d.call({"op": "submit", "broker": "zerodha", "request_token": token})
    assert reply["ok"], reply
    return reply["session"]


def breeze_login(d: Daemon) -> dict:
    sim = d.simulator_url("breeze")
    key = urllib.parse.quote("demo+breeze=key^01")
    _, body = http("POST", f"{sim}/_sim/mint?api_key={key}", b"")
    api_session = body["Success"]["API_Session"] if "Success" in body else body["API_Session"]
    reply = d.call({"op": "submit", "broker": "breeze", "api_session": api_session})
    assert reply["ok"], reply
    return reply["session"]


# -- Zerodha: the real kiteconnect ---------------------------------------------


def test_kite_without_a_browser_login_raises_auth_required_at_once(daemon: Daemon):
    pytest.importorskip("kiteconnect")
    with Client(socket=daemon.socket) as c:
        with pytest.raises(AuthRequired) as e:
            c.kite()
    assert e.value.login_url and "api_key=demokitekey01" in e.value.login_url


def test_kite_profile_then_a_renewal_race_is_reported_once_and_retried(daemon: Daemon):
    pytest.importorskip("kiteconnect")
    first = kite_login(daemon)
    with Client(socket=daemon.socket) as c:
        kite = c.kite()
        assert kite.root == first["fields"]["api_root"]
        assert kite.profile()["user_id"] == "ZD1234"
        # A second login elsewhere: the simulator kills the first token.
        second = kite_login(daemon)
        stale, current = invalidations(daemon, "zerodha", "stale"), invalidations(daemon, "zerodha", "current")
        assert kite.profile()["user_id"] == "ZD1234"
        assert kite.access_token == second["token"]
        assert invalidations(daemon, "zerodha", "stale") + invalidations(daemon, "zerodha", "current") == stale + current + 1
        # The retry's answer came with the new token; nothing more is reported.
        kite.profile()
        assert invalidations(daemon, "zerodha", "stale") + invalidations(daemon, "zerodha", "current") == stale + current + 1


def test_kite_dead_session_without_a_new_login_raises_auth_required(daemon: Daemon):
    pytest.importorskip("kiteconnect")
    kite_login(daemon)
    with Client(socket=daemon.socket) as c:
        kite = c.kite()
        http("POST", f"{daemon.simulator_url('zerodha')}/_sim/kill_all", b"")
        before = invalidations(daemon, "zerodha", "current")
        with pytest.raises(AuthRequired) as e:
            kite.profile()
        assert e.value.login_url
        assert invalidations(daemon, "zerodha", "current") == before + 1


class FakeResponse:
    def __init__(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.status_code = status
        self._body = body
        self.content = json.dumps(body).encode() if content_type.endswith("json") else str(body).encode()
        self.headers = {"content-type": content_type}

    def json(self) -> Any:
        if not self.headers["content-type"].endswith("json"):
            raise ValueError("not JSON")
        return self._body


class CountingSession:
    """Stands in for the SDK's ``requests`` session: always the same answer."""

    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.calls = 0

    def request(self, *a: Any, **k: Any) -> FakeResponse:
        self.calls += 1
        return self.response


@pytest.mark.parametrize(
    "status,body,content_type",
    [
        (503, {"status": "error", "message": "Service unavailable", "error_type": "GeneralException"}, "application/json"),
        (429, {"status": "error", "message": "Too many requests", "error_type": "NetworkException"}, "application/json"),
        (502, "<html>Bad Gateway</html>", "text/html"),
    ],
)
def test_kite_never_retries_an_outage(daemon: Daemon, status: int, body: Any, content_type: str):
    pytest.importorskip("kiteconnect")
    kite_login(daemon)
    with Client(socket=daemon.socket) as c:
        kite = c.kite()
        kite.reqsession = CountingSession(FakeResponse(status, body, content_type))
        before = invalidations(daemon, "zerodha", "current") + invalidations(daemon, "zerodha", "stale")
        with pytest.raises(Exception) as e:
            kite.profile()
        assert type(e.value).__name__ != "TokenException"
        assert kite.reqsession.calls == 1
        assert invalidations(daemon, "zerodha", "current") + invalidations(daemon, "zerodha", "stale") == before


def test_kite_timeout_is_not_retried(daemon: Daemon):
    pytest.importorskip("kiteconnect")
    kite_login(daemon)

    class Timeout:
        calls = 0

        def request(self, *a: Any, **k: Any) -> Any:
            Timeout.calls += 1
            raise TimeoutError("read timed out")

    with Client(socket=daemon.socket) as c:
        kite = c.kite()
        kite.reqsession = Timeout()
        with pytest.raises(TimeoutError):
            kite.profile()
    assert Timeout.calls == 1


class FakeTicker:
    """Mimics ``KiteTicker``: the token lives in ``socket_url``; ``_close``
    drops the connection (the SDK then reconnects with ``socket_url``)."""

    def __init__(self, api_key: str, access_token: str, **kw: Any) -> None:
        self.api_key = api_key
        self.socket_url = f"wss://ws.kite.trade?api_key={api_key}&access_token={access_token}"
        self.closed: List[Tuple[Any, Any]] = []

    def _close(self, code: Any = None, reason: Any = None) -> None:
        self.closed.append((code, reason))


def test_kite_ticker_takes_the_new_token_on_renewed(daemon: Daemon):
    kite_login(daemon)
    with Client(socket=daemon.socket) as c:
        ticker = c.kite_ticker(sdk=FakeTicker)
        try:
            old = ticker.brokerd.session.token
            assert ticker.socket_url.endswith("access_token=" + old)
            eventually(lambda: False, timeout=0.3)  # let the watcher subscribe
            second = kite_login(daemon)
            assert eventually(lambda: ticker.closed != [], timeout=10), "the ticker was not reconnected"
            assert ticker.socket_url.endswith("access_token=" + second["token"])
            assert ticker.access_token == second["token"]
        finally:
            ticker.brokerd_stop()


def ticker_attempts(d: Daemon) -> List[Dict[str, Any]]:
    """Every websocket connection attempt the Kite simulator's ticker saw."""
    status, body = http("GET", f"{d.simulator_url('zerodha')}/_sim/ticker")
    assert status == 200, body
    return body["data"]


def ws_upgrade_status(url: str) -> int:
    """The HTTP status a websocket upgrade to ``url`` gets (101 when
    accepted), sent by hand so that nothing retries it."""
    import http.client

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", "/?" + parts.query, headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "X-Kite-Version": "3",
        })
        return conn.getresponse().status
    finally:
        conn.close()


def test_kite_ticker_real_sdk_reconnects_with_the_new_token_after_a_renewal(daemon: Daemon):
    pytest.importorskip("kiteconnect")
    from twisted.internet import reactor

    first = kite_login(daemon)
    root = "ws://" + daemon.simulator_url("zerodha").split("://", 1)[1].rstrip("/")
    ticks: List[Dict[str, Any]] = []

    def streaming(token: str) -> bool:
        """The simulator has an open connection of ``token`` with 408065 subscribed."""
        return any(a["access_token"] == token and a["open"] and 408065 in a["subscribed"] for a in ticker_attempts(daemon))

    with Client(socket=daemon.socket) as c:
        ticker = c.kite_ticker(reconnect_max_delay=5)
        try:
            # The session says where the ticker is: the simulator's websocket.
            assert first["fields"]["ticker_root"] == root
            assert ticker.socket_url == f"{root}?api_key=demokitekey01&access_token={first['token']}"

            def on_connect(ws: Any, response: Any) -> None:
                ws.subscribe([408065])
                ws.set_mode(ws.MODE_FULL, [408065])

            ticker.on_connect = on_connect
            ticker.on_ticks = lambda ws, batch: ticks.extend(batch)
            ticker.connect(threaded=True)
            assert eventually(lambda: streaming(first["token"]), timeout=15), ticker_attempts(daemon)
            assert eventually(lambda: any(t["mode"] == "full" for t in ticks), timeout=5)
            tick = ticks[-1]
            assert (tick["instrument_token"], tick["mode"], len(tick["depth"]["buy"])) == (408065, "full", 5)

            # The session dies at Kite; the daemon is told, and a person logs in again.
            http("POST", f"{daemon.simulator_url('zerodha')}/_sim/kill_all", b"")
            before = invalidations(daemon, "zerodha", "current")
            with pytest.raises(AuthRequired):
                c.invalidate(c.session("zerodha", wait=0), reason={"status": "error", "error_type": "TokenException",
                             "message": "Incorrect `api_key` or `access_token`."}, http_status=403, wait=0)
            assert invalidations(daemon, "zerodha", "current") == before + 1
            second = kite_login(daemon)
            assert second["token"] != first["token"]

            # The adapter's watcher sees `renewed`: the SDK reconnects with the new token.
            assert eventually(lambda: streaming(second["token"]), timeout=20), ticker_attempts(daemon)
            assert ticker.socket_url.endswith("access_token=" + second["token"])
            received = len(ticks)
            assert eventually(lambda: len(ticks) > received, timeout=5), "no ticks on the new connection"
            assert ticks[-1]["instrument_token"] == 408065

            # The old token is refused at the ticker (Kite: 403 at the upgrade).
            assert ws_upgrade_status(f"{root}/?api_key=demokitekey01&access_token={first['token']}") == 403
            seen = [(a["access_token"], a["status"]) for a in ticker_attempts(daemon)]
            assert seen == [(first["token"], 101), (second["token"], 101), (first["token"], 403)], seen
            old, new = ticker_attempts(daemon)[:2]
            assert not old["open"] and new["open"]
            # The SDK resubscribed on the new connection and kept its headers.
            assert 408065 in new["subscribed"]
            assert new["x_kite_version"] == old["x_kite_version"] == "3"
            assert new["user_agent"] == old["user_agent"] and "kiteconnect" in (new["user_agent"] or "").lower()
            # Only the one report above: the ticker itself never reports.
            assert invalidations(daemon, "zerodha", "current") + invalidations(daemon, "zerodha", "stale") == before + 1
        finally:
            ticker.brokerd_stop()
            reactor.callFromThread(ticker.close)
            assert eventually(lambda: not any(a["open"] for a in ticker_attempts(daemon)), timeout=10)


# -- Breeze: the real breeze-connect -------------------------------------------


def test_breeze_signed_by_the_daemon_and_a_dead_session_asks_for_a_login(daemon: Daemon):
    try:
        adapters._import_breeze()
    except ImportError:
        pytest.skip("breeze-connect is not installed")
    with Client(socket=daemon.socket) as c:
        with pytest.raises(AuthRequired):
            c.breeze()
        breeze_login(daemon)
        b = c.breeze()
        assert b.secret_key is None
        funds = b.get_funds()
        assert funds["Status"] == 200 and funds["Success"]["bank_account"], funds
        # The session dies at the broker: one report, and Breeze needs a person.
        http("POST", f"{daemon.simulator_url('breeze')}/_sim/kill_all", b"")
        before = invalidations(daemon, "breeze", "current")
        with pytest.raises(Exception) as e:
            b.get_funds()
        assert "auth_required" in str(e.value) or isinstance(e.value, AuthRequired)
        assert invalidations(daemon, "breeze", "current") == before + 1


def test_breeze_with_wait_retries_once_a_person_has_logged_in(daemon: Daemon):
    try:
        adapters._import_breeze()
    except ImportError:
        pytest.skip("breeze-connect is not installed")
    breeze_login(daemon)
    with Client(socket=daemon.socket) as c:
        b = c.breeze(wait=20)
        assert b.get_funds()["Status"] == 200
        http("POST", f"{daemon.simulator_url('breeze')}/_sim/kill_all", b"")
        before = invalidations(daemon, "breeze", "current")
        threading.Timer(1.0, breeze_login, args=(daemon,)).start()
        funds = b.get_funds()
        assert funds["Status"] == 200, funds
        assert invalidations(daemon, "breeze", "current") == before + 1


# -- Jainam: the PyPI xts-api-client (a derivative of Symphony's SDK) ----------


def xts_sdk() -> Any:
    """``xts_api_client.xts_connect`` (PyPI xts-api-client 0.1.26, installed
    with ``--no-deps --ignore-requires-python`` by .ci/run), or a skip."""
    return pytest.importorskip("xts_api_client.xts_connect")


def xts_requests(x: Any) -> List[Tuple[str, str, int]]:
    """Every request the SDK sends from now on, (method, path, status):
    the SDK's ``reqsession`` (the ``requests`` module unless it was given
    a pool) becomes a ``requests.Session`` that records them."""
    import requests

    seen: List[Tuple[str, str, int]] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda r, *a, **k: seen.append((r.request.method, urllib.parse.urlsplit(r.url).path, r.status_code))
    )
    x.reqsession = session
    return seen


def test_xts_real_sdk_dead_token_is_reported_once_logged_in_again_and_retried(daemon: Daemon):
    sdk = xts_sdk()
    with Client(socket=daemon.socket) as c:
        x = c.xts()
        s = x.brokerd.session
        assert isinstance(x, sdk.XTSConnect)
        assert (x.apiKey, x.secretKey) == ("", ""), "the app's keys stay with the daemon"
        assert x.root == s.fields["api_root"] == daemon.simulator_url("jainam").rstrip("/")
        assert (x.token, x.userID, x.isInvestorClient) == (s.token, s.fields["user_id"], s.fields["is_investor_client"])
        seen = xts_requests(x)
        assert x.get_profile()["description"] == "User profile."
        assert seen == [("GET", "/interactive/user/profile", 200)]
        logins, current = daemon.logins("jainam"), invalidations(daemon, "jainam", "current")
        http("POST", f"{daemon.simulator_url('jainam')}/_sim/reject_all", b"")
        # The SDK raises XTSTokenException on the 400; the adapter reports
        # it once and the call is made again on the new token.
        assert x.get_profile()["description"] == "User profile."
        assert seen[1:] == [("GET", "/interactive/user/profile", 400), ("GET", "/interactive/user/profile", 200)]
        assert daemon.logins("jainam") == logins + 1
        assert invalidations(daemon, "jainam", "current") == current + 1
        assert x.token == x.brokerd.session.token != s.token
        assert x.get_profile()["description"] == "User profile."
        assert invalidations(daemon, "jainam", "current") + invalidations(daemon, "jainam", "stale") == current + 1


def test_xts_real_sdk_market_prefix_and_a_dead_market_token(daemon: Daemon):
    xts_sdk()
    with Client(socket=daemon.socket) as c:
        m = c.xts(api="market")
        # The SDK hard-codes /apimarketdata; the session's prefix replaces it.
        assert m._routes["market.config"] == "/apibinarymarketdata/config/clientConfig"
        assert type(m)._routes["market.config"] == "/apimarketdata/config/clientConfig"
        seen = xts_requests(m)
        assert m.get_config()["description"] == "Client config."
        logins = daemon.logins("jainam", "market")
        http("POST", f"{daemon.simulator_url('jainam')}/_sim/reject_all", b"")
        assert m.get_config()["description"] == "Client config."
        path = "/apibinarymarketdata/config/clientConfig"
        assert seen == [("GET", path, 200), ("GET", path, 400), ("GET", path, 200)]
        assert daemon.logins("jainam", "market") == logins + 1
        assert invalidations(daemon, "jainam", "current", "market") == 1


def test_xts_real_sdk_never_retries_an_outage(daemon: Daemon):
    xts_sdk()
    import requests

    class Outage(requests.adapters.HTTPAdapter):
        calls = 0

        def send(self, request: Any, *a: Any, **k: Any) -> Any:
            Outage.calls += 1
            r = requests.Response()
            r.status_code, r.url, r.request = 503, request.url, request
            r.headers["content-type"] = "application/json"
            r._content = json.dumps({"type": "error", "code": "e-app-503", "description": "Service Unavailable"}).encode()
            return r

    with Client(socket=daemon.socket) as c:
        x = c.xts()
        x.reqsession = requests.Session()
        x.reqsession.mount("http://", Outage())
        before = invalidations(daemon, "jainam", "current") + invalidations(daemon, "jainam", "stale")
        logins = daemon.logins("jainam")
        # The SDK returns the error body of a 503 as it is.
        assert x.get_profile()["description"] == "Service Unavailable"
        assert Outage.calls == 1
        assert invalidations(daemon, "jainam", "current") + invalidations(daemon, "jainam", "stale") == before
        assert daemon.logins("jainam") == logins


# -- Jainam: a stand-in for Symphony's XTSConnect ------------------------------


class XTSTokenException(Exception):
    pass


class FakeXTSConnect:
    """Symphony's ``XTSConnect`` as far as the adapter uses it: ``_routes``,
    ``_set_common_variables``, ``_request`` raising ``XTSTokenException``
    on a 400 ``Invalid Token`` and returning any other JSON."""

    _routes = {
        "user.profile": "/interactive/user/profile",
        "marketdata.prefix": "apimarketdata",
        "market.config": "/apimarketdata/config/clientConfig",
    }

    def __init__(self, apiKey: str, secretKey: str, source: str, root: str) -> None:
        assert apiKey == "" and secretKey == "", "the adapter must not hold the app's keys"
        self.root = root
        self.token: Optional[str] = None
        self.calls = 0
        self.answer: Optional[Tuple[int, Any]] = None  # a canned answer instead of HTTP

    def _set_common_variables(self, access_token: str, userID: str, isInvestorClient: bool) -> None:
        self.token, self.userID, self.isInvestorClient = access_token, userID, isInvestorClient

    def _request(self, route: str, method: str, parameters: Optional[dict] = None) -> Any:
        self.calls += 1
        if self.answer is not None:
            status, data = self.answer
        else:
            query = "?" + urllib.parse.urlencode(parameters) if parameters else ""
            status, data = http(method, self.root + self._routes[route] + query, headers={"Authorization": self.token or ""})
        if status == 400 and data.get("description") == "Invalid Token":
            raise XTSTokenException(data["description"])
        if status >= 500:
            raise RuntimeError(f"XTS {status}")
        return data

    def get_profile(self, clientID: Optional[str] = None) -> Any:
        return self._request("user.profile", "GET", {"clientID": clientID} if clientID else None)

    def get_config(self) -> Any:
        return self._request("market.config", "GET")


def test_xts_dead_token_is_reported_once_logged_in_again_and_retried(daemon: Daemon):
    with Client(socket=daemon.socket) as c:
        x = c.xts(sdk=FakeXTSConnect)
        assert x.get_profile()["description"] == "User profile."
        logins, current = daemon.logins("jainam"), invalidations(daemon, "jainam", "current")
        http("POST", f"{daemon.simulator_url('jainam')}/_sim/reject_all", b"")
        assert x.get_profile()["description"] == "User profile."
        assert x.calls == 3
        assert daemon.logins("jainam") == logins + 1
        assert invalidations(daemon, "jainam", "current") == current + 1
        assert x.token == x.brokerd.session.token


def test_xts_market_prefix_and_no_retry_on_5xx(daemon: Daemon):
    with Client(socket=daemon.socket) as c:
        m = c.xts(api="market", sdk=FakeXTSConnect)
        assert m._routes["market.config"] == "/apibinarymarketdata/config/clientConfig"
        assert m.get_config()["description"] == "Client config."
        m.answer = (503, {"type": "error", "description": "Service Unavailable"})
        logins = daemon.logins("jainam", "market")
        with pytest.raises(RuntimeError):
            m.get_config()
        assert m.calls == 2 and daemon.logins("jainam", "market") == logins
        # Invalid Token at a 200 (seen in production) is a dead session too.
        m.answer = (200, {"type": "error", "code": "e-session-0007", "description": "Invalid Token"})
        answered = m.get_config()
        assert m.calls == 4 and answered["description"] == "Invalid Token"  # canned: the retry sees it again
        assert invalidations(daemon, "jainam", "current", "market") == 1


# -- Kotak Neo: the real kotakneoapi (neo_api_client) ---------------------------


def neo_sdk() -> Any:
    """``neo_api_client`` (kotakneoapi), or a skip where it is not installed
    (it needs Python >= 3.10)."""
    return pytest.importorskip("neo_api_client")


def neo_requests(neo: Any) -> List[Tuple[str, str, int]]:
    """Every request the SDK's own HTTP client sends from now on:
    (method, path, status)."""
    seen: List[Tuple[str, str, int]] = []
    neo.api_client.rest_client.session.event_hooks["response"].append(
        lambda r: seen.append((r.request.method, r.request.url.path, r.status_code))
    )
    return seen


def test_neo_real_sdk_calls_the_simulator_on_the_daemons_session(daemon: Daemon):
    neo_sdk()
    with Client(socket=daemon.socket) as c:
        neo = c.neo(wait=40)  # the first login may wait for a TOTP window
        s = neo.brokerd.session
        cfg = neo.configuration
        assert (cfg.edit_token, cfg.edit_sid) == (s.token, s.fields["sid"])
        assert cfg.base_url == s.fields["base_url"] == daemon.simulator_url("kotak_neo").rstrip("/")
        assert cfg.consumer_key == "demo-kotak-access-token" and cfg.neo_fin_key == "neotradeapi"
        seen = neo_requests(neo)
        limits = neo.limits()
        assert limits["stat"] == "Ok" and limits["data"][0]["Net"] == "250000.00", limits
        orders = neo.order_report()
        assert orders["stat"] == "Ok" and orders["data"][0]["nOrdNo"], orders
        assert seen == [("POST", "/quick/user/limits", 200), ("GET", "/quick/user/orders", 200)]
        assert invalidations(daemon, "kotak_neo", "current") + invalidations(daemon, "kotak_neo", "stale") == 0


def test_neo_real_sdk_dead_session_is_reported_once_and_retried(daemon: Daemon):
    neo_sdk()
    with Client(socket=daemon.socket) as c:
        neo = c.neo(wait=40)
        assert neo.limits()["stat"] == "Ok"
        seen = neo_requests(neo)
        logins, current = daemon.logins("kotak_neo"), invalidations(daemon, "kotak_neo", "current")
        old = neo.configuration.edit_token
        http("POST", f"{daemon.simulator_url('kotak_neo')}/_sim/reject_all", b"")
        assert neo.limits()["stat"] == "Ok"
        # The SDK returned the 401's body as a dict; one report, one retry.
        assert seen == [("POST", "/quick/user/limits", 401), ("POST", "/quick/user/limits", 200)]
        assert daemon.logins("kotak_neo") == logins + 1
        assert invalidations(daemon, "kotak_neo", "current") == current + 1
        assert neo.configuration.edit_token == neo.brokerd.session.token != old
        assert neo.configuration.edit_sid == neo.brokerd.session.fields["sid"]
        assert neo.order_report()["stat"] == "Ok"
        assert invalidations(daemon, "kotak_neo", "current") == current + 1


def test_neo_real_sdk_positions_and_a_dead_session_there_is_reported_once(daemon: Daemon):
    neo_sdk()
    with Client(socket=daemon.socket) as c:
        neo = c.neo(wait=40)
        seen = neo_requests(neo)
        positions = neo.positions()
        # kotakneoapi 3.0.9 asks portfolio/v2/positions and returns the body as is.
        assert positions["stat"] == "Ok" and positions["stCode"] == 200, positions
        (first,) = positions["data"]
        assert (first["tok"], first["exSeg"], first["flBuyQty"], first["ltp"]) == ("35001", "nse_fo", "75", "24010.00")
        assert seen == [("GET", "/portfolio/v2/positions", 200)]
        logins, current = daemon.logins("kotak_neo"), invalidations(daemon, "kotak_neo", "current")
        old = neo.configuration.edit_token
        http("POST", f"{daemon.simulator_url('kotak_neo')}/_sim/reject_all", b"")
        assert neo.positions()["data"] == positions["data"]
        # The simulator's 401 for the dead session, one report, one retry.
        assert seen[1:] == [("GET", "/portfolio/v2/positions", 401), ("GET", "/portfolio/v2/positions", 200)]
        assert daemon.logins("kotak_neo") == logins + 1
        assert invalidations(daemon, "kotak_neo", "current") == current + 1
        assert neo.configuration.edit_token == neo.brokerd.session.token != old
        assert invalidations(daemon, "kotak_neo", "stale") == 0


class RewriteDead:
    """An ``httpx`` transport for the SDK: the simulator's answers, except
    that its dead-session 401 becomes another documented dead shape."""

    def __init__(self, status: int, body: Dict[str, Any]) -> None:
        import httpx

        self.httpx = httpx
        self.inner = httpx.HTTPTransport()
        self.status, self.body = status, body

    def handle_request(self, request: Any) -> Any:
        response = self.inner.handle_request(request)
        if response.status_code != 401:
            return response
        response.read()
        response.close()
        return self.httpx.Response(self.status, json=self.body)

    def close(self) -> None:
        self.inner.close()


# The dead shapes that come at HTTP 200, where only the body says it (a 401
# or 403 is the simulator's own answer, above). Each costs a re-login, which
# waits for a fresh TOTP window.
@pytest.mark.parametrize(
    "status,body",
    [
        (200, {"stCode": 100022, "errMsg": "invalid session token", "stat": "Not_Ok"}),
        (200, {"code": "900901", "message": "Invalid Credentials",
               "description": "Invalid JWT token. Make sure you have provided the correct security credentials"}),
    ],
    ids=["100022", "flattened-900901"],
)
def test_neo_real_sdk_dead_shapes_at_200_are_reported_once(daemon: Daemon, status: int, body: Dict[str, Any]):
    neo_sdk()
    with Client(socket=daemon.socket) as c:
        neo = c.neo(wait=40, transport=RewriteDead(status, body))
        assert neo.limits()["stat"] == "Ok"
        seen = neo_requests(neo)
        logins, current = daemon.logins("kotak_neo"), invalidations(daemon, "kotak_neo", "current")
        http("POST", f"{daemon.simulator_url('kotak_neo')}/_sim/reject_all", b"")
        assert neo.limits()["stat"] == "Ok"
        assert seen == [("POST", "/quick/user/limits", status), ("POST", "/quick/user/limits", 200)]
        assert daemon.logins("kotak_neo") == logins + 1
        assert invalidations(daemon, "kotak_neo", "current") == current + 1


class Canned:
    """An ``httpx`` transport for the SDK: the same answer to every call,
    counted (an IP rule or an outage the simulator does not make)."""

    def __init__(self, status: int, body: Any) -> None:
        import httpx

        self.httpx = httpx
        self.status, self.body = status, body
        self.calls = 0

    def handle_request(self, request: Any) -> Any:
        self.calls += 1
        if self.body == "timeout":
            raise self.httpx.ReadTimeout("read timed out", request=request)
        if isinstance(self.body, str):
            return self.httpx.Response(self.status, text=self.body, headers={"content-type": "text/html"})
        return self.httpx.Response(self.status, json=self.body)

    def close(self) -> None:
        pass


#: What is never a dead session: IP rules and outages.
NEO_NOT_DEAD = [
    (200, {"stCode": 100008, "errMsg": "unauthorized"}),  # IP not whitelisted
    (200, {"stCode": 1037, "errMsg": "session ip doesnt match with reqest ip"}),
    (503, {"error": [{"code": "10500", "message": "Service Unavailable", "status": 503}]}),
    (424, {"stat": "Not_Ok", "stCode": 424, "errMsg": "Failed Dependency"}),
    (429, {"stat": "Not_Ok", "stCode": 429, "errMsg": "Too many requests"}),
    (502, "<html>Bad Gateway</html>"),
    (0, "timeout"),
]


def test_neo_real_sdk_never_retries_ip_rules_or_outages(daemon: Daemon):
    neo_sdk()
    with Client(socket=daemon.socket) as c:
        c.neo(wait=40)  # one login; each case below reuses the session
        before = invalidations(daemon, "kotak_neo", "current") + invalidations(daemon, "kotak_neo", "stale")
        for status, body in NEO_NOT_DEAD:
            canned = Canned(status, body)
            neo = c.neo(wait=40, transport=canned)
            answer = neo.limits()
            if isinstance(body, dict):
                assert answer == body, (status, body)
            else:
                assert "Error" in answer or "error" in answer, (status, body, answer)  # the SDK's own error dict
            assert canned.calls == 1, (status, body)
            after = invalidations(daemon, "kotak_neo", "current") + invalidations(daemon, "kotak_neo", "stale")
            assert after == before, (status, body)


def test_missing_sdks_name_the_install_command():
    with pytest.raises(ImportError) as e:
        adapters._load("neo", [("brokerd_no_such_module", "NeoAPI")])
    assert "kotakneoapi" in str(e.value)
