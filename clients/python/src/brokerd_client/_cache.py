"""The session cache and the subscription that keeps it honest.

A cached session is handed out only while all of these hold:

- the client's subscription to the daemon's events is up, and was up
  without a break since the request that fetched the session was sent
  (events are not replayed, so after a break nothing cached is trusted);
- no event has superseded it: ``renewed`` of generation G retires every
  older generation of that (broker, account, api); ``logged_out``,
  ``conflict``, ``locked_out`` and ``auth_required`` of generation G retire
  G and older; ``lagged`` (missed events) retires everything;
- it stays valid for the caller's ``min_valid``.

Generations never decrease, not even across daemon restarts, so a
retirement ("floor") is kept for the life of the client. ``expiring`` and
``store_unavailable`` leave the session in place: the daemon keeps serving
it, and ``min_valid`` already keeps a dying session out.
"""

from __future__ import annotations

import datetime as _dt
import socket
import threading
from typing import Callable, Dict, Optional, Tuple

from . import _protocol
from ._types import Event, Session
from .errors import BrokerdError

__all__ = ["SessionCache", "Subscription", "Key"]

Key = Tuple[str, Optional[str], str]
"""``(broker, account as asked, api)``; the account may be ``None``."""

#: Events after which the session of their generation is dead too.
_ENDS_GENERATION = frozenset({"logged_out", "conflict", "locked_out", "auth_required"})


class SessionCache:
    """Sessions by the key they were asked for, guarded by one lock."""

    def __init__(self) -> None:
        # A plain lock: every critical section is a few dict operations.
        self._lock = threading.Lock()
        self._entries: Dict[Key, Session] = {}
        # (broker, account, api) -> the lowest generation still usable.
        self._floors: Dict[Tuple[str, str, str], int] = {}
        self._up = False
        # Bumped whenever the subscription goes up or down, or events were
        # lost: a fetch that straddles a bump is not cached.
        self._epoch = 0
        self._up_event = threading.Event()

    @property
    def up(self) -> bool:
        """Whether the subscription is up (the cache is in use)."""
        return self._up

    def wait_up(self, timeout: float) -> bool:
        """Waits up to ``timeout`` s for the subscription to be up."""
        return self._up_event.wait(timeout)

    def lookup(self, key: Key, min_valid: float) -> Optional[Session]:
        """The cached session for ``key`` if it may be handed out now."""
        now = _dt.datetime.now(_dt.timezone.utc)
        with self._lock:
            if not self._up:
                return None
            session = self._entries.get(key)
            if session is None:
                return None
            if session.generation < self._floors.get(session.key, 0):
                del self._entries[key]
                return None
            # Too short for this caller is not too short for every caller:
            # the entry stays, and this call asks the daemon.
            return session if session.remaining(now) >= min_valid else None

    def ticket(self) -> Optional[int]:
        """Taken before a fetch: the epoch if the subscription is up."""
        with self._lock:
            return self._epoch if self._up else None

    def store(self, key: Key, session: Session, ticket: Optional[int]) -> None:
        """Caches ``session`` unless the subscription broke since ``ticket``
        or an event already retired its generation."""
        with self._lock:
            if ticket is None or not self._up or ticket != self._epoch:
                return
            if session.generation < self._floors.get(session.key, 0):
                return
            self._entries[key] = session

    def retire(self, broker: str, account: str, api: str, below: int) -> None:
        """Generations below ``below`` of this session are no longer usable."""
        with self._lock:
            self._raise_floor((broker, account, api), below)

    def apply(self, event: Event) -> None:
        """Applies one event from the subscription."""
        with self._lock:
            if event.kind == "lagged":
                self._entries.clear()
                self._epoch += 1
                return
            if event.broker is None or event.account is None or event.api is None:
                return
            if event.generation is None:
                return
            key = (event.broker, event.account, event.api)
            if event.kind == "renewed":
                self._raise_floor(key, event.generation)
            elif event.kind in _ENDS_GENERATION:
                self._raise_floor(key, event.generation + 1)

    def _raise_floor(self, key: Tuple[str, str, str], floor: int) -> None:
        if floor <= self._floors.get(key, 0):
            return
        self._floors[key] = floor
        for k in [k for k, s in self._entries.items() if s.key == key and s.generation < floor]:
            del self._entries[k]

    def set_up(self, up: bool) -> None:
        """The subscription went up or down. Going down forgets every entry."""
        with self._lock:
            self._up = up
            self._epoch += 1
            if not up:
                self._entries.clear()
        if up:
            self._up_event.set()
        else:
            self._up_event.clear()


class Subscription(threading.Thread):
    """The client's one subscription, on a daemon thread: feeds events to
    the cache (and to ``on_event``), reconnects after any break."""

    def __init__(
        self,
        path: str,
        cache: SessionCache,
        on_event: Optional[Callable[[Event], None]] = None,
    ) -> None:
        super().__init__(name="brokerd-subscription", daemon=True)
        self.path = path
        self.cache = cache
        self.on_event = on_event
        self._stopping = threading.Event()
        # Set while connected, so that stop() can interrupt the blocking read.
        self._sock: Optional[socket.socket] = None
        self._sock_lock = threading.Lock()

    def stop(self) -> None:
        """Ends the subscription (the thread exits soon after)."""
        self._stopping.set()
        with self._sock_lock:
            if self._sock is not None:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def run(self) -> None:
        pause = 0.02
        while not self._stopping.is_set():
            try:
                self._follow()
                pause = 0.02  # it was up: reconnect quickly
            except (OSError, EOFError, BrokerdError):
                pass
            finally:
                self.cache.set_up(False)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, 1.0)

    def _follow(self) -> None:
        """One connection: subscribe, then apply events until it ends."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._sock_lock:
            if self._stopping.is_set():
                sock.close()
                return
            self._sock = sock
        try:
            sock.settimeout(5.0)
            sock.connect(self.path)
            request = _protocol.subscribe_request(None)
            request["id"] = 1
            sock.sendall(_protocol.encode(request))
            reader = sock.makefile("rb")
            line = reader.readline(_protocol.MAX_LINE)
            if not line.endswith(b"\n"):
                raise EOFError("brokerd closed the subscription")
            _protocol.check_reply(_protocol.decode(line), 1)
            sock.settimeout(None)  # events come whenever they come
            self.cache.set_up(True)
            while True:
                line = reader.readline(_protocol.MAX_LINE)
                if not line.endswith(b"\n"):
                    raise EOFError("brokerd closed the subscription")
                event = Event.from_wire(_protocol.decode(line))
                self.cache.apply(event)
                if self.on_event is not None:
                    self.on_event(event)
        finally:
            with self._sock_lock:
                self._sock = None
            sock.close()
