"""Blocking connections to the daemon's socket, and a small pool of them.

The daemon answers the requests of one connection in order, one at a time,
so a connection is used by one thread at a time: threads take one from the
pool and give it back. A daemon restart closes every pooled connection;
the next request notices (EOF or a broken pipe) and retries once on a new
connection, and connecting retries while the socket is missing or refuses
(the daemon is starting), up to the request's own deadline.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from typing import Any, Dict, List, Mapping, Optional

from . import _protocol
from .errors import Unavailable

__all__ = ["Connection", "Pool", "connect", "unreachable"]

#: Errors that mean "no daemon listens right now" (restarting, not started).
NOT_LISTENING = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN)

#: Idle connections kept per client.
POOL_SIZE = 8


def unreachable(path: str, error: BaseException) -> Unavailable:
    """The error for a daemon that does not answer on ``path``."""
    return Unavailable("unreachable", f"cannot reach brokerd at {path}: {error}", None)


def connect(path: str, deadline: float) -> socket.socket:
    """A connected socket, retrying while nothing listens until ``deadline``
    (a :func:`time.monotonic` value)."""
    pause = 0.02
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect(path)
            return sock
        except OSError as e:
            sock.close()
            if e.errno not in NOT_LISTENING or time.monotonic() + pause > deadline:
                raise unreachable(path, e) from None
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


class Connection:
    """One connection: a request line out, a reply line back."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        #: Whether a request has completed on it (a reused connection may have
        #: been closed by the daemon meanwhile, and is worth one retry).
        self.used = False

    def call(self, request: Mapping[str, Any], timeout: float) -> Dict[str, Any]:
        """Sends ``request`` and reads its reply line. Raises ``OSError`` or
        ``EOFError`` when the connection is gone."""
        self.sock.settimeout(timeout)
        self.sock.sendall(_protocol.encode(request))
        line = self.reader.readline(_protocol.MAX_LINE)
        if not line.endswith(b"\n"):
            raise EOFError("brokerd closed the connection")
        self.used = True
        return _protocol.decode(line)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class Pool:
    """Idle connections to one socket path, shared by threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: List[Connection] = []
        # A plain lock: held only to push or pop a list item.
        self._lock = threading.Lock()
        self._closed = False

    def call(self, request: Mapping[str, Any], timeout: float, connect_wait: float) -> Dict[str, Any]:
        """One request and its reply (not yet checked for ``ok``).

        ``timeout`` bounds the whole call; ``connect_wait`` how long to keep
        trying to connect while no daemon listens (a restart). A reused
        connection that turns out to be closed is replaced once; the request
        is then sent again, which is safe for every op this client sends
        (``token``, ``status``, ``sign`` read; ``invalidate`` is fenced by
        generation, so a repeat is answered with the current session)."""
        start = time.monotonic()
        deadline = start + timeout
        for _attempt in range(2):
            conn = self._take()
            fresh = conn is None
            if conn is None:
                conn = Connection(connect(self.path, start + min(connect_wait, timeout)))
            try:
                reply = conn.call(request, max(0.1, deadline - time.monotonic()))
            except socket.timeout:
                conn.close()
                raise Unavailable("timeout", f"brokerd did not answer within {timeout:.0f}s", None) from None
            except (OSError, EOFError) as e:
                conn.close()
                if fresh:
                    raise unreachable(self.path, e) from None
                # The daemon closed it (restart, idle timeout): the other
                # idle ones are likely gone too.
                self._drop_idle()
                continue
            self._give(conn)
            return reply
        raise unreachable(self.path, EOFError("connection closed twice"))  # pragma: no cover

    def _take(self) -> Optional[Connection]:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give(self, conn: Connection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < POOL_SIZE:
                self._idle.append(conn)
                return
        conn.close()

    def _drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def forget(self) -> None:
        """In a forked child: closes this process's copies of the idle
        connections (the parent keeps using its own) without touching the
        lock, which the fork may have copied in a held state."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Closes the idle connections and keeps no more (a later request
        still works, on a connection of its own)."""
        with self._lock:
            self._closed = True
        self._drop_idle()
