"""The values a client hands out: :class:`Session` and :class:`Event`."""

from __future__ import annotations

import copy
import datetime as _dt
from typing import Any, Dict, Mapping, Optional

__all__ = ["Session", "Event", "parse_time"]


def parse_time(value: Any) -> Optional[_dt.datetime]:
    """An RFC 3339 timestamp from the daemon (``2026-11-25T08:08:00+05:30``)
    as an aware datetime; ``None`` for ``null``."""
    if value is None:
        return None
    text = str(value)
    if text.endswith("Z"):  # fromisoformat() before 3.11 does not take "Z"
        text = text[:-1] + "+00:00"
    return _dt.datetime.fromisoformat(text)


class Session:
    """One broker session as brokerd served it. Immutable.

    Put ``headers`` on the broker requests as they are, and give the session
    back to :meth:`Client.invalidate` when the broker rejects it.

    Attributes: ``broker``, ``account``, ``api``, ``generation`` (the fencing
    number to report), ``token``, ``expires_at`` and ``obtained_at`` (aware
    datetimes), ``headers`` and ``fields`` (fresh copies on every access, so
    changing them cannot alter a session other threads share). ``repr()``
    never shows the token.
    """

    __slots__ = (
        "_broker",
        "_account",
        "_api",
        "_generation",
        "_token",
        "_expires_at",
        "_obtained_at",
        "_headers",
        "_fields",
    )

    def __init__(
        self,
        broker: str,
        account: str,
        api: str,
        generation: int,
        token: str,
        expires_at: _dt.datetime,
        obtained_at: Optional[_dt.datetime],
        headers: Mapping[str, str],
        fields: Mapping[str, Any],
    ) -> None:
        self._broker = broker
        self._account = account
        self._api = api
        self._generation = generation
        self._token = token
        self._expires_at = expires_at
        self._obtained_at = obtained_at
        self._headers = dict(headers)
        self._fields = copy.deepcopy(dict(fields))

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> "Session":
        """A session from the ``session`` object of a ``token`` reply."""
        expires = parse_time(raw["expires_at"])
        if expires is None:
            raise ValueError("a session without expires_at")
        return cls(
            broker=str(raw["broker"]),
            account=str(raw["account"]),
            api=str(raw["api"]),
            generation=int(raw["generation"]),
            token=str(raw["token"]),
            expires_at=expires,
            obtained_at=parse_time(raw.get("obtained_at")),
            headers=raw.get("headers") or {},
            fields=raw.get("fields") or {},
        )

    @property
    def broker(self) -> str:
        """``jainam``, ``kotak_neo``, ``zerodha`` or ``breeze``."""
        return self._broker

    @property
    def account(self) -> str:
        """The account's name in brokerd's config."""
        return self._account

    @property
    def api(self) -> str:
        """``interactive`` or ``market`` (Jainam's market-data session)."""
        return self._api

    @property
    def generation(self) -> int:
        """The fencing number: report it when the broker rejects the session."""
        return self._generation

    @property
    def token(self) -> str:
        """The raw session token."""
        return self._token

    @property
    def expires_at(self) -> _dt.datetime:
        """When the session ends (aware datetime)."""
        return self._expires_at

    @property
    def obtained_at(self) -> Optional[_dt.datetime]:
        """When brokerd obtained it (aware datetime)."""
        return self._obtained_at

    @property
    def headers(self) -> Dict[str, str]:
        """Ready-made request headers (a copy)."""
        return dict(self._headers)

    @property
    def fields(self) -> Dict[str, Any]:
        """Broker-specific values such as ``user_id`` or ``base_url`` (a copy)."""
        return copy.deepcopy(self._fields)

    @property
    def key(self) -> "tuple[str, str, str]":
        """``(broker, account, api)``."""
        return (self._broker, self._account, self._api)

    def remaining(self, now: Optional[_dt.datetime] = None) -> float:
        """Seconds until the session expires (negative once it has)."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        return (self._expires_at - now).total_seconds()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return self.key == other.key and self._generation == other._generation

    def __hash__(self) -> int:
        return hash((self.key, self._generation))

    def __repr__(self) -> str:
        return (
            f"Session(broker={self._broker!r}, account={self._account!r}, api={self._api!r}, "
            f"generation={self._generation}, expires_at={self._expires_at.isoformat()!r})"
        )


class Event:
    """One event of a subscription (docs/protocol.md, ``subscribe``).

    ``kind`` is the protocol's ``event``: ``renewed``, ``expiring``,
    ``auth_required``, ``locked_out``, ``conflict``, ``logged_out``,
    ``store_unavailable``, or ``lagged`` (events were missed: ``missed`` says
    how many, ``None`` when the client itself lost the connection and
    reconnected; read the state again with ``session``/``status``).
    """

    __slots__ = ("kind", "broker", "account", "api", "generation", "expires_at", "login_url", "missed")

    def __init__(
        self,
        kind: str,
        broker: Optional[str] = None,
        account: Optional[str] = None,
        api: Optional[str] = None,
        generation: Optional[int] = None,
        expires_at: Optional[_dt.datetime] = None,
        login_url: Optional[str] = None,
        missed: Optional[int] = None,
    ) -> None:
        self.kind = kind
        self.broker = broker
        self.account = account
        self.api = api
        self.generation = generation
        self.expires_at = expires_at
        self.login_url = login_url
        self.missed = missed

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> "Event":
        """An event from one line of a subscription."""
        generation = raw.get("generation")
        missed = raw.get("missed")
        return cls(
            kind=str(raw.get("event")),
            broker=raw.get("broker"),
            account=raw.get("account"),
            api=raw.get("api"),
            generation=int(generation) if generation is not None else None,
            expires_at=parse_time(raw.get("expires_at")),
            login_url=raw.get("login_url"),
            missed=int(missed) if missed is not None else None,
        )

    def __repr__(self) -> str:
        parts = [f"{name}={getattr(self, name)!r}" for name in self.__slots__ if name != "login_url"]
        return f"Event({', '.join(parts)})"
