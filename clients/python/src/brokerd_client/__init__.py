"""brokerd_client: broker API sessions from the brokerd daemon.

    from brokerd_client import Client
    c = Client()                              # $BROKERD_SOCKET or /run/brokerd/brokerd.sock
    s = c.session("jainam")                   # s.headers go on the broker request
    s = c.invalidate(s, reason=body, http_status=401)   # when the broker rejects it

:class:`Client` is blocking and thread-safe; ``brokerd_client.aio.Client``
has the same methods as coroutines. The wire protocol is docs/protocol.md
in the brokerd repository.
"""

from ._client import Client
from ._types import Event, Session
from .errors import AuthRequired, BrokerdError, Forbidden, LockedOut, Unavailable

__all__ = [
    "Client",
    "Session",
    "Event",
    "BrokerdError",
    "AuthRequired",
    "LockedOut",
    "Unavailable",
    "Forbidden",
]

__version__ = "0.1.0"
