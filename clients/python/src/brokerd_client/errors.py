"""The exceptions a brokerd request can raise, one class per kind of action.

Every error the daemon sends has a stable ``code`` (docs/protocol.md, "Error
codes") and a one-line ``message`` meant for a person. The classes group the
codes by what a trading program should do about them:

- :class:`AuthRequired`: a person must log in in a browser (``login_url``).
- :class:`LockedOut`: the broker rejected the credentials; stop and alert.
- :class:`Unavailable`: transient; retry after ``retry_after`` seconds.
- :class:`Forbidden`: this user may not use the account.
- :class:`BrokerdError`: everything else, and the base of all of them.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Type

__all__ = [
    "BrokerdError",
    "AuthRequired",
    "LockedOut",
    "Unavailable",
    "Forbidden",
    "error_from_wire",
    "CODE_CLASSES",
]


class BrokerdError(Exception):
    """An error answered by brokerd (or met on the way to it).

    ``code`` is the protocol's error code (``bad_request``, ``conflict``, ...),
    ``message`` the daemon's one-line explanation (it never contains secrets),
    and ``retry_after`` the seconds after which retrying can help, when the
    daemon said so (``None`` otherwise).

    Two codes come from the client itself, never from the daemon:
    ``unreachable`` (an :class:`Unavailable`: no daemon answers on the socket)
    and ``protocol`` (the daemon's answer could not be understood).
    """

    def __init__(self, code: str, message: str, retry_after: Optional[float] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


class AuthRequired(BrokerdError):
    """Zerodha, Breeze: only a person's browser login can make a session.

    Show ``login_url`` to a person, or wait for the ``renewed`` event.
    """

    def __init__(
        self,
        code: str,
        message: str,
        retry_after: Optional[float] = None,
        login_url: Optional[str] = None,
    ) -> None:
        super().__init__(code, message, retry_after)
        self.login_url = login_url


class LockedOut(BrokerdError):
    """The broker rejected the credentials. brokerd never retries this by
    itself (brokers lock accounts after a few wrong attempts): alert a person."""


class Unavailable(BrokerdError):
    """Something transient: retry after ``retry_after`` seconds (``None``
    when the daemon gave no hint). Also raised as ``unreachable`` when no
    daemon answers on the socket, and for ``store_unavailable``."""


class Forbidden(BrokerdError):
    """This process's user may not use brokerd or this account."""


#: Every code in docs/protocol.md's error table, mapped explicitly. Codes not
#: listed here (a newer daemon's) raise the base class.
CODE_CLASSES: Mapping[str, Type[BrokerdError]] = {
    "bad_request": BrokerdError,
    "unknown_op": BrokerdError,
    "unknown_account": BrokerdError,
    "forbidden": Forbidden,
    "auth_required": AuthRequired,
    "locked_out": LockedOut,
    "conflict": BrokerdError,
    "login_failed": BrokerdError,
    "timeout": BrokerdError,
    "unavailable": Unavailable,
    "too_large": BrokerdError,
    "store_unavailable": Unavailable,
    "ip_not_allowed": BrokerdError,
}


def error_from_wire(error: Mapping[str, Any]) -> BrokerdError:
    """The exception for a reply's ``error`` object
    (``{"code": ..., "message": ..., "retry_after_secs"?: ..., "login_url"?: ...}``)."""
    code = str(error.get("code", "protocol"))
    message = str(error.get("message", ""))
    retry = error.get("retry_after_secs")
    retry_after = float(retry) if isinstance(retry, (int, float)) else None
    cls = CODE_CLASSES.get(code, BrokerdError)
    if cls is AuthRequired:
        url = error.get("login_url")
        return AuthRequired(code, message, retry_after, url if isinstance(url, str) else None)
    return cls(code, message, retry_after)

