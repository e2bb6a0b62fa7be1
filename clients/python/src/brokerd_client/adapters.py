"""Broker SDK adapters: the official SDK object, with brokerd's session
applied, that reports a dead session and retries the call once.

    kite   = c.kite()                          # kiteconnect.KiteConnect
    ticker = c.kite_ticker()                   # kiteconnect.KiteTicker, reconnects on `renewed`
    neo    = c.neo()                           # neo_api_client.NeoAPI (kotakneoapi)
    breeze = c.breeze()                        # breeze_connect.BreezeConnect, signed by the daemon
    xts    = c.xts(api="interactive")          # XTSConnect, market prefix honoured

Every adapter does the same on a broker answer that means "this session is
dead" (Kite ``TokenException``; Kotak ``900901``/``100022``/HTTP 401 in the
returned dict; XTS ``Invalid Token`` at any status; Breeze ``Invalid
Checksum``/``Invalid session.``): it reports the generation it used with
``invalidate`` (the broker's body and status as the reason), applies the
session the daemon answers to the same SDK object, and repeats the call
once. The broker refused the call, so it was not executed and one repeat is
safe. Nothing else is ever repeated: a timeout, a 5xx, a 429, an HTML page
or an IP rule reaches the caller as the SDK raised or returned it. If the
daemon does not consider the session dead (it answers the same generation),
the original error is raised.

Zerodha and Breeze need a person's browser login: without ``wait`` an
adapter raises :class:`~brokerd_client.AuthRequired` (``login_url``) at
once; with ``wait=seconds`` it waits that long for the login.

``sdk=`` takes the SDK class (or any callable with its signature) instead of
importing it: for SDK versions installed under another name, and for tests.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import sys
import threading
import zipfile
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

from ._types import Session

if TYPE_CHECKING:  # pragma: no cover
    from ._client import Client

__all__ = [
    "kite",
    "kite_ticker",
    "neo",
    "breeze",
    "xts",
    "Binding",
    "INSTALL",
]

#: How to install each SDK (the ImportError says it).
INSTALL: Mapping[str, str] = {
    "kite": 'python3 -m pip install "brokerd-client[kite]"  (kiteconnect)',
    "breeze": 'python3 -m pip install "brokerd-client[breeze]"  (breeze-connect)',
    "neo": 'python3 -m pip install "brokerd-client[neo]"  (kotakneoapi, Kotak\'s neo_api_client)',
    "xts": 'python3 -m pip install "brokerd-client[xts]"  (xts-api-client, Python >= 3.12); '
    "below 3.12: python3 -m pip install requests, then "
    "python3 -m pip install --no-deps --ignore-requires-python xts-api-client==0.1.26",
}

#: Brokers whose sessions only a person's browser login can make.
_INTERACTIVE = frozenset({"zerodha", "breeze"})

#: How long an unattended broker (Jainam, Kotak) may take to log in.
_DEFAULT_WAIT = 10.0


def _load(kind: str, candidates: Iterable[Tuple[str, str]]) -> Any:
    """The first ``module.attr`` of ``candidates`` that imports, else an
    ImportError naming the install command."""
    errors = []
    for module, attr in candidates:
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            errors.append(f"{module}.{attr}: {e}")
    raise ImportError(
        f"the {kind} adapter needs its broker SDK, which is not installed "
        f"({'; '.join(errors)}). Install it with: {INSTALL[kind]}"
    )


class Binding:
    """The session behind one SDK object, and the one place that reports it.

    ``session`` is the session currently applied to the SDK object;
    ``apply(session)`` writes a session into it. :meth:`renew` reports the
    generation a failed call used and applies what the daemon answers;
    threads that fail with the same generation report it once.
    """

    def __init__(
        self,
        client: "Client",
        broker: str,
        account: Optional[str],
        api: str,
        wait: Optional[float],
        min_valid: float,
    ) -> None:
        self.client = client
        self.broker = broker
        self.account = account
        self.api = api
        self.wait = float(wait) if wait is not None else (0.0 if broker in _INTERACTIVE else _DEFAULT_WAIT)
        self.min_valid = min_valid
        self.apply: Callable[[Session], None] = lambda s: None
        self._lock = threading.Lock()
        self.session = client.session(broker, account=account, api=api, min_valid=min_valid, wait=self.wait)

    def bind(self, apply: Callable[[Session], None]) -> None:
        """Sets how a session is written into the SDK object, and writes
        the current one."""
        self.apply = apply
        apply(self.session)

    def renew(self, used: Session, reason: Any, http_status: Optional[int]) -> Optional[Session]:
        """Reports that the broker rejected ``used`` and applies the newer
        session. ``None`` when the daemon answered the same generation (it
        did not take the answer for a dead session): do not retry then.
        Raises what ``invalidate`` raises (``AuthRequired`` for Zerodha and
        Breeze without ``wait``)."""
        with self._lock:
            if self.session.generation > used.generation:
                return self.session  # another call already reported it
            fresh = self.client.invalidate(
                used, reason=reason, http_status=http_status, min_valid=self.min_valid, wait=self.wait
            )
            if fresh.generation <= used.generation:
                return None
            self.session = fresh
            self.apply(fresh)
            return fresh

    def refresh(self, generation: int = 0) -> Session:
        """Applies the daemon's current session, at least ``generation``
        (after a ``renewed`` event of it, which the client's own cache may
        not have seen yet)."""
        with self._lock:
            s = self.session
            self.client._cache.retire(s.broker, s.account, s.api, generation)
            s = self.client.session(self.broker, account=self.account, api=self.api, min_valid=self.min_valid, wait=self.wait)
            if s.generation != self.session.generation:
                self.session = s
                self.apply(s)
            return self.session


def _retrying(
    binding: Binding,
    call: Callable[..., Any],
    dead_error: Callable[[BaseException], Optional[Tuple[Any, Optional[int]]]],
    dead_result: Callable[[Any], Optional[Tuple[Any, Optional[int]]]],
) -> Callable[..., Any]:
    """``call`` wrapped: a dead-session exception or result is reported and
    the call is made once more with the new session; anything else is
    passed through untouched."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        used = binding.session
        try:
            result = call(*args, **kwargs)
        except Exception as e:
            dead = dead_error(e)
            if dead is None:
                raise
            if binding.renew(used, *dead) is None:
                raise
            return call(*args, **kwargs)
        dead = dead_result(result)
        if dead is None or binding.renew(used, *dead) is None:
            return result
        return call(*args, **kwargs)

    wrapper.__wrapped__ = call  # type: ignore[attr-defined]
    wrapper.__doc__ = call.__doc__
    return wrapper


def _never(_: Any) -> None:
    return None


# -- Zerodha ----------------------------------------------------------------


def _kite_dead(e: BaseException) -> Optional[Tuple[Any, Optional[int]]]:
    if type(e).__name__ != "TokenException":
        return None
    code = getattr(e, "code", None)
    status = code if isinstance(code, int) else 403
    return {"status": "error", "message": str(e), "error_type": "TokenException"}, status


def kite(
    client: "Client",
    account: Optional[str] = None,
    wait: Optional[float] = None,
    min_valid: float = 30,
    sdk: Optional[Callable[..., Any]] = None,
) -> Any:
    """A ``kiteconnect.KiteConnect`` on the daemon's session
    (``api_key``, ``access_token``, ``root=api_root``)."""
    KiteConnect = sdk or _load("kite", [("kiteconnect", "KiteConnect")])
    binding = Binding(client, "zerodha", account, "interactive", wait, min_valid)
    s = binding.session
    k = KiteConnect(api_key=s.fields["api_key"], access_token=s.token, root=s.fields.get("api_root") or None)
    binding.bind(lambda s: k.set_access_token(s.token))
    k._request = _retrying(binding, k._request, _kite_dead, _never)
    k.brokerd = binding
    return k


def kite_ticker(
    client: "Client",
    account: Optional[str] = None,
    wait: Optional[float] = None,
    min_valid: float = 30,
    sdk: Optional[Callable[..., Any]] = None,
    **ticker_kwargs: Any,
) -> Any:
    """A ``kiteconnect.KiteTicker`` on the daemon's session that, on a
    ``renewed`` event of its session, takes the new token and drops its
    connection so that the SDK's own reconnect uses it (and resubscribes).
    It connects to the session's ``ticker_root`` (Kite's
    ``wss://ws.kite.trade`` unless the account says otherwise; the SDK's
    default for sessions without it); ``ticker_kwargs`` go to
    ``KiteTicker`` (``root=`` overrides it, ``reconnect_max_delay=``...).
    The watcher is a daemon thread; ``ticker.brokerd_stop()`` ends it.

    kiteconnect's ticker runs on Twisted's reactor, which is not
    thread-safe: the new URL and the close are handed to the reactor's
    thread (``reactor.callFromThread``) while it runs."""
    KiteTicker = sdk or _load("kite", [("kiteconnect", "KiteTicker")])
    binding = Binding(client, "zerodha", account, "interactive", wait, min_valid)
    s = binding.session
    if s.fields.get("ticker_root") and "root" not in ticker_kwargs:
        ticker_kwargs["root"] = s.fields["ticker_root"]
    t = KiteTicker(s.fields["api_key"], s.token, **ticker_kwargs)
    reactor = getattr(sys.modules.get(type(t).__module__), "reactor", None)

    def on_reactor(fn: Callable[..., Any], *args: Any) -> None:
        if reactor is not None and getattr(reactor, "running", False):
            reactor.callFromThread(fn, *args)
        else:
            fn(*args)

    def write(token: str) -> None:
        url = str(getattr(t, "socket_url", ""))
        if "access_token=" in url:
            head, _, tail = url.partition("access_token=")
            rest = tail.partition("&")
            t.socket_url = head + "access_token=" + token + rest[1] + rest[2]
        t.access_token = token
        factory = getattr(t, "factory", None)
        if factory is not None and hasattr(factory, "setSessionParameters"):
            # autobahn resets every parameter it is not given: keep the
            # SDK's headers (X-Kite-Version: 3), user agent and proxy.
            factory.setSessionParameters(
                url=t.socket_url,
                origin=getattr(factory, "origin", None),
                protocols=getattr(factory, "protocols", None),
                useragent=getattr(factory, "useragent", None),
                headers=getattr(factory, "headers", None),
                proxy=getattr(factory, "proxy", None),
            )

    def apply(s: Session) -> None:
        on_reactor(write, s.token)

    binding.apply = apply
    stop = threading.Event()

    def watch() -> None:
        for ev in client.events(brokers=["zerodha"]):
            if stop.is_set():
                return
            if ev.kind != "renewed" or ev.account != binding.session.account or ev.api != binding.api:
                continue
            if ev.generation is not None and ev.generation <= binding.session.generation:
                continue
            try:
                fresh = binding.refresh(ev.generation or 0)
            except Exception:  # noqa: BLE001 - the next event tries again
                continue
            if ev.generation is not None and fresh.generation < ev.generation:
                continue
            # Not close(): that also stops the SDK's reconnecting.
            if hasattr(t, "_close"):
                on_reactor(t._close, 1000, "brokerd: session renewed")

    watcher = threading.Thread(target=watch, name="brokerd-kite-ticker", daemon=True)
    watcher.start()
    t.brokerd = binding
    t.brokerd_stop = stop.set
    return t


# -- Symphony XTS (Jainam) ----------------------------------------------------


def _xts_dead(e: BaseException) -> Optional[Tuple[Any, Optional[int]]]:
    if "Invalid Token" not in str(e):
        return None
    return {"type": "error", "code": "e-session-0007", "description": "Invalid Token"}, None


def _xts_dead_result(result: Any) -> Optional[Tuple[Any, Optional[int]]]:
    if isinstance(result, Mapping) and result.get("description") == "Invalid Token":
        return dict(result), None
    return None


def xts(
    client: "Client",
    account: Optional[str] = None,
    api: str = "interactive",
    wait: Optional[float] = None,
    min_valid: float = 30,
    sdk: Optional[Callable[..., Any]] = None,
) -> Any:
    """An ``XTSConnect`` (Symphony's SDK) on the daemon's session, with
    ``root=api_root``; for ``api="market"`` its ``/apimarketdata`` routes
    use the session's ``market_prefix``. The app key and secret stay with
    the daemon: never call the SDK's ``interactive_login``/``marketdata_login``."""
    XTSConnect = sdk or _load(
        "xts", [("xts_api_client.xts_connect", "XTSConnect"), ("Connect", "XTSConnect"), ("XTConnect.Connect", "XTSConnect")]
    )
    binding = Binding(client, "jainam", account, api, wait, min_valid)
    s = binding.session
    x = XTSConnect("", "", "WEBAPI", s.fields["api_root"])
    prefix = s.fields.get("market_prefix")
    routes = getattr(x, "_routes", None)
    if api == "market" and prefix and isinstance(routes, Mapping):
        prefix = "/" + str(prefix).strip("/")
        fixed = {}
        for name, path in routes.items():
            if isinstance(path, str) and path.startswith("/apimarketdata"):
                path = prefix + path[len("/apimarketdata") :]
            elif name == "marketdata.prefix":
                path = prefix.strip("/")
            fixed[name] = path
        x._routes = fixed

    def apply(s: Session) -> None:
        f = s.fields
        x._set_common_variables(s.token, f.get("user_id"), bool(f.get("is_investor_client", False)))

    binding.bind(apply)
    x._request = _retrying(binding, x._request, _xts_dead, _xts_dead_result)
    x.brokerd = binding
    return x


# -- Kotak Neo ----------------------------------------------------------------

_NEO_DEAD_CODES = frozenset({"900901", "100022"})
_NEO_DEAD_WORDS = ("invalid jwt token", "invalid session")
#: NeoAPI methods that log in, out or open websockets: never wrapped.
_NEO_UNWRAPPED = frozenset(
    {"login", "session_2fa", "totp_login", "totp_validate", "logout", "subscribe", "un_subscribe",
     "subscribe_to_orderfeed", "create_websocket", "create_order_feed", "help", "reload_configuration"}
)


def _jsonable(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, depth + 1) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _neo_find(value: Any, depth: int = 0) -> Optional[int]:
    """The HTTP status a dead Kotak session answer implies (401 when the
    answer carries none), or ``None`` if ``value`` is no such answer."""
    if depth > 6:
        return None
    if isinstance(value, Mapping):
        for key in ("stCode", "code", "status", "status_code", "http_status"):
            v = value.get(key)
            if v is not None and str(v) in _NEO_DEAD_CODES:
                return 401
            if key in ("status", "status_code", "http_status") and str(v) in ("401", "403"):
                return int(str(v))
        for v in value.values():
            found = _neo_find(v, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for v in value:
            found = _neo_find(v, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, BaseException):
        status = getattr(value, "status", None)
        if status in (401, 403):
            return int(status)
        return _neo_find(str(value), depth + 1)
    if isinstance(value, str):
        low = value.lower()
        if any(w in low for w in _NEO_DEAD_WORDS) or any(c in value for c in _NEO_DEAD_CODES):
            return 401
    return None


def _neo_dead_result(result: Any) -> Optional[Tuple[Any, Optional[int]]]:
    if not isinstance(result, Mapping):
        return None
    status = _neo_find(result)
    return (_jsonable(result), status) if status is not None else None


def _neo_dead_error(e: BaseException) -> Optional[Tuple[Any, Optional[int]]]:
    status = _neo_find(e)
    return (str(e), status) if status is not None else None


def _neo_http(n: Any) -> Any:
    """The SDK's HTTP client (``httpx.Client`` in kotakneoapi 3.x), or None."""
    rest = getattr(getattr(n, "api_client", None), "rest_client", None)
    return getattr(rest, "session", None)


def neo(
    client: "Client",
    account: Optional[str] = None,
    wait: Optional[float] = None,
    min_valid: float = 30,
    sdk: Optional[Callable[..., Any]] = None,
    environment: str = "prod",
    **sdk_kwargs: Any,
) -> Any:
    """A ``neo_api_client.NeoAPI`` (PyPI ``kotakneoapi``, tested with 3.0.9)
    on the daemon's session, as if ``totp_login``/``totp_validate`` had run:
    its ``configuration`` gets the trade token (``edit_token``), ``sid``
    (``edit_sid``), ``rid``, ``base_url`` (every later call goes there; the
    SDK honours it only for ``environment="prod"``), ``data_center``,
    ``ucc``, the access token (``consumer_key``) and ``neo_fin_key``.

    The session's ``neo-fin-key`` also becomes a default header of the SDK's
    HTTP client: kotakneoapi 3.0.9 sends only ``Auth`` and ``Sid`` on the
    limits, positions and order-book calls, where Kotak's API takes
    ``neo-fin-key`` too (and the daemon's own session check sends it).

    The SDK returns errors as dicts (the HTTP status is not in them), so
    every public method's result is checked, and the status of the SDK's
    last response is taken from its HTTP client; login, logout and
    websocket methods are left alone (never call the login ones).

    ``sdk_kwargs`` go to ``NeoAPI`` (3.x: ``transport``, ``limits``,
    ``http2``, ``timeout``)."""
    NeoAPI = sdk or _load("neo", [("neo_api_client", "NeoAPI")])
    binding = Binding(client, "kotak_neo", account, "interactive", wait, min_valid)
    h = binding.session.headers
    n = NeoAPI(environment=environment, access_token=None, neo_fin_key=h.get("neo-fin-key"), consumer_key=h.get("Authorization"), **sdk_kwargs)
    http = _neo_http(n)
    last = threading.local()

    def record(response: Any) -> None:
        last.status = getattr(response, "status_code", None)

    hooks = getattr(http, "event_hooks", None)
    if isinstance(hooks, Mapping) and isinstance(hooks.get("response"), list):
        hooks["response"].append(record)

    def apply(s: Session) -> None:
        cfg = n.configuration
        f, hd = s.fields, s.headers
        cfg.edit_token = s.token
        cfg.edit_sid = f.get("sid")
        cfg.edit_rid = f.get("rid")
        cfg.serverId = f.get("hs_server_id")
        cfg.base_url = f.get("base_url") or f.get("api_root")
        cfg.data_center = f.get("data_center")
        cfg.ucc = f.get("ucc")
        for attr, field in (("feed_url", "feed_url"), ("rt_url", "rt_url")):
            if f.get(field):
                setattr(cfg, attr, f[field])
        if hd.get("Authorization"):
            cfg.consumer_key = hd["Authorization"]
        if hd.get("neo-fin-key"):
            cfg.neo_fin_key = hd["neo-fin-key"]
            headers = getattr(http, "headers", None)
            if headers is not None:
                headers["neo-fin-key"] = hd["neo-fin-key"]
        cfg.login_params = {}

    def dead_result(result: Any) -> Optional[Tuple[Any, Optional[int]]]:
        dead = _neo_dead_result(result)
        if dead is None:
            return None
        status = getattr(last, "status", None)
        # The status the answer came with when the SDK saw one (a 100022
        # comes at 200); else the one the answer implies.
        return dead[0], status if isinstance(status, int) and status > 0 else dead[1]

    binding.bind(apply)
    for name in dir(n):
        if name.startswith("_") or name in _NEO_UNWRAPPED:
            continue
        attr = getattr(n, name, None)
        if callable(attr) and getattr(attr, "__self__", None) is n:
            setattr(n, name, _retrying(binding, _neo_tracked(attr, last), _neo_dead_error, dead_result))
    n.brokerd = binding
    return n


def _neo_tracked(method: Callable[..., Any], last: threading.local) -> Callable[..., Any]:
    """``method`` with the last response status forgotten before each call."""

    def call(*args: Any, **kwargs: Any) -> Any:
        last.status = None
        return method(*args, **kwargs)

    call.__doc__ = method.__doc__
    return call


# -- ICICI Breeze ---------------------------------------------------------------

#: What a signed Breeze call answers for a dead session (or a bad checksum:
#: the daemon tells them apart).
_BREEZE_DEAD = ("invalid checksum", "invalid session", "session key is expired", "resource not available")

_breeze_lock = threading.Lock()


class _NoSecurityMaster:
    """Stands in for the security master download that ``breeze_connect``
    starts at import: an empty zip, without touching the network."""

    def __init__(self, *_: Any, **__: Any) -> None:
        buf = io.BytesIO()
        zipfile.ZipFile(buf, "w").close()
        self._data = buf.getvalue()

    def read(self, *_: Any) -> bytes:
        return self._data

    def close(self) -> None:
        pass


def _refuse_download(*_: Any, **__: Any) -> Any:
    raise OSError("brokerd_client: the Breeze security master is not downloaded (no network in the adapter)")


def _import_breeze() -> Any:
    """``breeze_connect.BreezeConnect`` imported without its import-time
    download of the security master (an empty one is used; stock-token
    lookups that need it fail instead of hanging)."""
    import urllib.request

    with _breeze_lock:
        original = urllib.request.urlopen
        urllib.request.urlopen = _NoSecurityMaster  # type: ignore[assignment]
        try:
            cls = _load("breeze", [("breeze_connect", "BreezeConnect")])
        finally:
            urllib.request.urlopen = original
        module = importlib.import_module(cls.__module__)
        if getattr(module, "urlopen", None) is _NoSecurityMaster:
            module.urlopen = _refuse_download
        return cls


def _breeze_dead_response(response: Any) -> Optional[Tuple[Any, Optional[int]]]:
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - HTML or empty: an outage, never a dead session
        return None
    if not isinstance(body, Mapping):
        return None
    error = str(body.get("Error") or "").lower()
    if any(w in error for w in _BREEZE_DEAD):
        return _jsonable(body), getattr(response, "status_code", None)
    return None


def breeze(
    client: "Client",
    account: Optional[str] = None,
    wait: Optional[float] = None,
    min_valid: float = 30,
    sdk: Optional[Callable[..., Any]] = None,
) -> Any:
    """A ``breeze_connect.BreezeConnect`` on the daemon's session whose
    every request is signed by the daemon's ``sign``: the app secret never
    enters this process. ``generate_session`` is not called (it would need
    the secret and download the security master)."""
    BreezeConnect = sdk or _import_breeze()
    binding = Binding(client, "breeze", account, "interactive", wait, min_valid)
    s = binding.session
    b = BreezeConnect(api_key=s.fields["api_key"])
    b.secret_key = None
    handler_cls = _handler_class(b)
    b.user_id, b.session_key = _breeze_ids(s)
    handler = handler_cls(b)
    b.api_handler = handler
    handler.hostname = str(s.fields["api_root"]).rstrip("/") + "/"

    def apply(s: Session) -> None:
        b.user_id, b.session_key = _breeze_ids(s)
        handler.base64_session_token = s.token

    binding.bind(apply)

    def generate_headers(body: Any) -> Dict[str, str]:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        headers = client.sign("breeze", text, account=binding.session.account)
        headers.setdefault("Content-Type", "application/json")
        return headers

    handler.generate_headers = generate_headers
    send = handler.make_request

    def make_request(method: Any, endpoint: Any, body: Any, headers: Any) -> Any:
        used = binding.session
        signed = isinstance(headers, Mapping) and "X-Checksum" in headers
        response = send(method, endpoint, body, headers)
        dead = _breeze_dead_response(response)
        if dead is None or binding.renew(used, *dead) is None:
            return response
        if signed:
            headers = generate_headers(body)
        return send(method, endpoint, body, headers)

    handler.make_request = make_request
    b.brokerd = binding
    return b


def _handler_class(b: Any) -> Any:
    module = importlib.import_module(type(b).__module__)
    cls = getattr(module, "ApificationBreeze", None)
    if cls is None:
        raise ImportError(f"this breeze_connect has no ApificationBreeze; {INSTALL['breeze']}")
    return cls


def _breeze_ids(s: Session) -> Tuple[str, str]:
    """(user_id, session key) from the token, base64 of ``user:key``."""
    decoded = base64.b64decode(s.token.encode("ascii")).decode("ascii", "replace")
    user, _, key = decoded.partition(":")
    return str(s.fields.get("user_id") or user), key
