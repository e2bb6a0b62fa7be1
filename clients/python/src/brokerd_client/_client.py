"""The blocking client: sessions from a cache kept honest by a subscription,
reports of rejected sessions, Breeze signing, events and status."""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _protocol
from ._cache import Key, SessionCache, Subscription
from ._conn import Pool, connect
from ._types import Event, Session

__all__ = ["Client"]

#: How long the first ``session()`` waits for the subscription, so that its
#: answer can already be cached. Later calls never wait for it.
FIRST_SUBSCRIBE_WAIT = 0.5

#: Added to a request's own wait for the reply to arrive.
REPLY_MARGIN = 5.0

#: How long requests that never wait for a login may take.
QUICK_TIMEOUT = 5.0

#: The least time a request keeps trying to connect while nothing listens.
CONNECT_WAIT_MIN = 0.2


class Client:
    """A connection to brokerd, shared freely between threads.

    ``Client()`` uses ``$BROKERD_SOCKET``, else ``/run/brokerd/brokerd.sock``;
    ``Client(socket=path)`` names it. Nothing connects until the first
    request. The first :meth:`session` starts one background subscription
    (a daemon thread) that keeps the session cache honest; :meth:`close`
    ends it.
    """

    def __init__(self, socket: Optional[str] = None) -> None:  # noqa: A002 (the documented name)
        self.socket_path = socket or _protocol.default_socket()
        self._fresh_state()
        _CLIENTS.add(self)

    def _fresh_state(self) -> None:
        """Connections, cache and subscription as in a new client. Also run
        in a forked child: the parent's subscription thread does not exist
        there (its cache must not be trusted), its pooled connections are
        the parent's too, and its locks may have been held at the fork."""
        self._pool = Pool(self.socket_path)
        self._ids = _protocol.RequestIds()
        self._cache = SessionCache()
        self._sub: Optional[Subscription] = None
        self._sub_lock = threading.Lock()

    def _after_fork_in_child(self) -> None:
        self._pool.forget()
        self._fresh_state()

    # -- sessions -----------------------------------------------------------

    def session(
        self,
        broker: str,
        account: Optional[str] = None,
        api: str = "interactive",
        min_valid: float = 30,
        wait: float = 10,
    ) -> Session:
        """A session of ``broker`` valid for at least ``min_valid`` seconds.

        Answered from memory while the cached session qualifies and no event
        has superseded it; otherwise asked of the daemon, which logs in if it
        must and waits up to ``wait`` seconds for that. ``account`` may be
        omitted when the broker has one account. Raises :class:`AuthRequired`
        (Zerodha, Breeze waiting for a person), :class:`LockedOut`,
        :class:`Unavailable` or :class:`BrokerdError`.
        """
        key: Key = (broker, account, api)
        cached = self._cache.lookup(key, min_valid)
        if cached is not None:
            return cached
        self._ensure_subscription()
        return self._fetch(key, min_valid, wait)

    def invalidate(
        self,
        session: Session,
        reason: Union[str, bytes, Mapping[str, Any], None] = None,
        http_status: Optional[int] = None,
        min_valid: float = 30,
        wait: float = 10,
    ) -> Session:
        """Reports that the broker rejected ``session`` and returns the
        session to use instead.

        Pass the broker's answer as ``reason`` (its JSON body, as text or a
        dict) and its ``http_status``: the daemon classifies them. However
        many programs report the same generation, the daemon logs in once;
        a report of an older generation is answered with the current
        session at once.
        """
        ticket = self._cache.ticket()
        self._cache.retire(session.broker, session.account, session.api, session.generation + 1)
        request = _protocol.invalidate_request(
            session.broker,
            session.account,
            session.api,
            session.generation,
            reason,
            http_status,
            min_valid,
            wait,
        )
        fresh = Session.from_wire(self._call(request, wait)["session"])
        self._cache.store((fresh.broker, fresh.account, fresh.api), fresh, ticket)
        return fresh

    def sign(
        self, broker: str, body: Union[str, bytes, Any], account: Optional[str] = None
    ) -> Dict[str, str]:
        """Breeze: the headers (``X-Checksum``, ``X-Timestamp``, ``X-AppKey``,
        ``X-SessionToken``, ``Content-Type``) for a request with exactly
        ``body`` (``"{}"`` for none). A dict or list is sent as
        ``json.dumps(body, separators=(",", ":"))``: send that same text.
        The app secret never leaves the daemon."""
        request = _protocol.sign_request(broker, body, account)
        reply = self._call(request, QUICK_TIMEOUT)
        return dict(reply["headers"])

    # -- broker SDK adapters (brokerd_client.adapters) ----------------------

    def kite(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """``kiteconnect.KiteConnect`` on the daemon's session; reports a
        ``TokenException`` and retries the call once. Raises
        :class:`AuthRequired` at once unless ``wait`` is given."""
        from . import adapters

        return adapters.kite(self, account=account, wait=wait, **kw)

    def kite_ticker(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """``kiteconnect.KiteTicker`` that reconnects with the new token on ``renewed``."""
        from . import adapters

        return adapters.kite_ticker(self, account=account, wait=wait, **kw)

    def neo(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """``neo_api_client.NeoAPI`` on the daemon's session; reports
        ``900901``/``100022``/401 answers and retries the call once."""
        from . import adapters

        return adapters.neo(self, account=account, wait=wait, **kw)

    def breeze(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """``breeze_connect.BreezeConnect`` whose every request is signed by
        the daemon (the app secret never enters this process)."""
        from . import adapters

        return adapters.breeze(self, account=account, wait=wait, **kw)

    def xts(
        self, account: Optional[str] = None, api: str = "interactive", wait: Optional[float] = None, **kw: Any
    ) -> Any:
        """Symphony ``XTSConnect`` on the daemon's Jainam session (``api``
        ``"interactive"`` or ``"market"``, market prefix honoured); reports
        ``Invalid Token`` and retries the call once."""
        from . import adapters

        return adapters.xts(self, account=account, api=api, wait=wait, **kw)

    # -- the rest of the protocol ------------------------------------------

    def status(self) -> List[Dict[str, Any]]:
        """One entry per (broker, account, api) this user may use: ``state``,
        ``generation``, ``expires_at``, ``last_error``, ``login_url``, ...
        (docs/protocol.md, ``status``)."""
        return list(self._call({"op": "status"}, QUICK_TIMEOUT)["accounts"])

    def events(self, brokers: Optional[Sequence[str]] = None) -> Iterator[Event]:
        """Session events as they happen, forever (break out of the loop to
        stop). If the connection to the daemon breaks (a restart), it
        reconnects and yields ``Event("lagged")`` with ``missed=None``:
        events were lost, so read the state again."""
        request = _protocol.subscribe_request(brokers)
        lost = False
        while True:
            # Waits through a restart; any other failure is raised.
            sock = connect(self.socket_path, time.monotonic() + 3600)
            try:
                request["id"] = self._ids.next()
                sock.sendall(_protocol.encode(request))
                reader = sock.makefile("rb")
                line = reader.readline(_protocol.MAX_LINE)
                if not line.endswith(b"\n"):
                    raise EOFError("brokerd closed the subscription")
                _protocol.check_reply(_protocol.decode(line), request["id"])
                if lost:
                    yield Event("lagged")
                lost = True
                while True:
                    line = reader.readline(_protocol.MAX_LINE)
                    if not line.endswith(b"\n"):
                        break
                    event = Event.from_wire(_protocol.decode(line))
                    # Heartbeats only keep the stream alive (the daemon closes
                    # a subscriber whose writes stall); they say nothing.
                    if event.kind != "heartbeat":
                        yield event
            except (OSError, EOFError):
                pass
            finally:
                sock.close()
            time.sleep(0.05)

    @property
    def subscribed(self) -> bool:
        """Whether the background subscription is up. While it is not, every
        :meth:`session` asks the daemon (nothing cached is trusted)."""
        return self._cache.up

    def close(self) -> None:
        """Stops the subscription and closes idle connections."""
        with self._sub_lock:
            sub, self._sub = self._sub, None
        if sub is not None:
            sub.stop()
            sub.join(timeout=2)
        self._pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------

    def _call(self, request: Dict[str, Any], wait: float) -> Mapping[str, Any]:
        """Sends ``request`` and returns its successful reply (or raises).
        ``wait`` is how long the daemon may take (and how long to wait for
        it to listen again during a restart); the reply gets a margin more."""
        request["id"] = self._ids.next()
        reply = self._pool.call(request, wait + REPLY_MARGIN, max(wait, CONNECT_WAIT_MIN))
        return _protocol.check_reply(reply, request["id"])

    def _fetch(self, key: Key, min_valid: float, wait: float) -> Session:
        """A cache miss: ``token`` at the daemon, cached if nothing
        superseded it meanwhile."""
        ticket = self._cache.ticket()
        request = _protocol.token_request(key[0], key[1], key[2], min_valid, wait)
        session = Session.from_wire(self._call(request, wait)["session"])
        self._cache.store(key, session, ticket)
        return session

    def _ensure_subscription(self) -> None:
        """Starts the subscription on first use, and gives it a moment."""
        if self._sub is not None:
            return
        with self._sub_lock:
            if self._sub is not None:
                return
            self._sub = Subscription(self.socket_path, self._cache)
            self._sub.start()
        self._cache.wait_up(FIRST_SUBSCRIBE_WAIT)


#: Every live blocking client, reset in a forked child.
_CLIENTS: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _reset_after_fork() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
