"""The asyncio client: :class:`Client` with the blocking client's methods
as coroutines.

Round trips use asyncio streams (one connection per request, which is cheap
on a Unix socket), so the event loop never blocks. The session cache and its
subscription are the blocking client's: the subscription runs on a daemon
thread and only touches the lock-protected cache, so a cache hit is a
dictionary lookup on the loop's thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import _protocol
from ._cache import Key, SessionCache, Subscription
from ._client import CONNECT_WAIT_MIN, FIRST_SUBSCRIBE_WAIT, QUICK_TIMEOUT, REPLY_MARGIN
from ._client import Client as BlockingClient
from ._conn import NOT_LISTENING, unreachable
from ._types import Event, Session
from .errors import Unavailable

__all__ = ["Client"]


async def _open(path: str, deadline: float) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection, retrying while nothing listens until ``deadline``."""
    pause = 0.02
    while True:
        try:
            return await asyncio.open_unix_connection(path, limit=_protocol.MAX_LINE)
        except OSError as e:
            if e.errno not in NOT_LISTENING or time.monotonic() + pause > deadline:
                raise unreachable(path, e) from None
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Closes a connection and waits until it is closed."""
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


class Client:
    """Like :class:`brokerd_client.Client`, for asyncio programs."""

    def __init__(self, socket: Optional[str] = None) -> None:  # noqa: A002 (the documented name)
        self.socket_path = socket or _protocol.default_socket()
        self._ids = _protocol.RequestIds()
        self._cache = SessionCache()
        self._sub: Optional[Subscription] = None
        self._blocking: Optional[BlockingClient] = None

    async def session(
        self,
        broker: str,
        account: Optional[str] = None,
        api: str = "interactive",
        min_valid: float = 30,
        wait: float = 10,
    ) -> Session:
        """See :meth:`brokerd_client.Client.session`."""
        key: Key = (broker, account, api)
        cached = self._cache.lookup(key, min_valid)
        if cached is not None:
            return cached
        await self._ensure_subscription()
        ticket = self._cache.ticket()
        request = _protocol.token_request(broker, account, api, min_valid, wait)
        reply = await self._call(request, wait)
        session = Session.from_wire(reply["session"])
        self._cache.store(key, session, ticket)
        return session

    async def invalidate(
        self,
        session: Session,
        reason: Union[str, bytes, Mapping[str, Any], None] = None,
        http_status: Optional[int] = None,
        min_valid: float = 30,
        wait: float = 10,
    ) -> Session:
        """See :meth:`brokerd_client.Client.invalidate`."""
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
        reply = await self._call(request, wait)
        fresh = Session.from_wire(reply["session"])
        self._cache.store((fresh.broker, fresh.account, fresh.api), fresh, ticket)
        return fresh

    async def sign(
        self, broker: str, body: Union[str, bytes, Any], account: Optional[str] = None
    ) -> Dict[str, str]:
        """See :meth:`brokerd_client.Client.sign`."""
        reply = await self._call(_protocol.sign_request(broker, body, account), QUICK_TIMEOUT)
        return dict(reply["headers"])

    async def status(self) -> List[Dict[str, Any]]:
        """See :meth:`brokerd_client.Client.status`."""
        reply = await self._call({"op": "status"}, QUICK_TIMEOUT)
        return list(reply["accounts"])

    async def events(self, brokers: Optional[Sequence[str]] = None) -> AsyncIterator[Event]:
        """See :meth:`brokerd_client.Client.events`."""
        request = _protocol.subscribe_request(brokers)
        lost = False
        while True:
            reader, writer = await _open(self.socket_path, time.monotonic() + 3600)
            try:
                request["id"] = self._ids.next()
                writer.write(_protocol.encode(request))
                await writer.drain()
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    raise EOFError("brokerd closed the subscription")
                _protocol.check_reply(_protocol.decode(line), request["id"])
                if lost:
                    yield Event("lagged")
                lost = True
                while True:
                    line = await reader.readline()
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
                await _close(writer)
            await asyncio.sleep(0.05)

    @property
    def subscribed(self) -> bool:
        """See :attr:`brokerd_client.Client.subscribed`."""
        return self._cache.up

    # -- SDK adapters ----------------------------------------------------
    #
    # The brokers' SDKs are blocking: their calls (and so the adapters'
    # report-and-retry) run in whatever thread makes them, typically through
    # `asyncio.to_thread`. So the objects are built by a blocking client on
    # the same socket, made on first use, and only their construction (which
    # asks the daemon for the session) is awaited here.

    async def kite(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """See :meth:`brokerd_client.Client.kite`."""
        return await self._adapter("kite", account=account, wait=wait, **kw)

    async def kite_ticker(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """See :meth:`brokerd_client.Client.kite_ticker`."""
        return await self._adapter("kite_ticker", account=account, wait=wait, **kw)

    async def neo(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """See :meth:`brokerd_client.Client.neo`."""
        return await self._adapter("neo", account=account, wait=wait, **kw)

    async def breeze(self, account: Optional[str] = None, wait: Optional[float] = None, **kw: Any) -> Any:
        """See :meth:`brokerd_client.Client.breeze`."""
        return await self._adapter("breeze", account=account, wait=wait, **kw)

    async def xts(
        self, account: Optional[str] = None, api: str = "interactive", wait: Optional[float] = None, **kw: Any
    ) -> Any:
        """See :meth:`brokerd_client.Client.xts`."""
        return await self._adapter("xts", account=account, api=api, wait=wait, **kw)

    async def _adapter(self, name: str, **kw: Any) -> Any:
        if self._blocking is None:
            self._blocking = BlockingClient(socket=self.socket_path)
        return await asyncio.to_thread(getattr(self._blocking, name), **kw)

    async def close(self) -> None:
        """Stops the subscription (and the blocking client the SDK adapters use)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            sub.stop()
            await asyncio.get_running_loop().run_in_executor(None, sub.join, 2)
        blocking, self._blocking = self._blocking, None
        if blocking is not None:
            await asyncio.to_thread(blocking.close)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, request: Dict[str, Any], wait: float) -> Mapping[str, Any]:
        """See :meth:`brokerd_client.Client._call`."""
        request["id"] = self._ids.next()
        start = time.monotonic()
        timeout = wait + REPLY_MARGIN
        deadline = start + timeout
        reader, writer = await _open(self.socket_path, start + max(wait, CONNECT_WAIT_MIN))
        try:
            writer.write(_protocol.encode(request))
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise Unavailable("timeout", f"brokerd did not answer within {timeout:.0f}s", None) from None
        except OSError as e:
            raise unreachable(self.socket_path, e) from None
        finally:
            await _close(writer)
        if not line.endswith(b"\n"):
            raise unreachable(self.socket_path, EOFError("brokerd closed the connection"))
        return _protocol.check_reply(_protocol.decode(line), request["id"])

    async def _ensure_subscription(self) -> None:
        if self._sub is not None:
            return
        self._sub = Subscription(self.socket_path, self._cache)
        self._sub.start()
        deadline = time.monotonic() + FIRST_SUBSCRIBE_WAIT
        while not self._cache.up and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
