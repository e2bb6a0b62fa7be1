"""The wire protocol, without any I/O: framing, request ids, replies to
values or exceptions. docs/protocol.md is the contract; this module is the
only place in the package that knows its field names."""

from __future__ import annotations

import itertools
import json
import os
import threading
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from .errors import BrokerdError, error_from_wire

__all__ = [
    "DEFAULT_SOCKET",
    "default_socket",
    "RequestIds",
    "encode",
    "decode",
    "check_reply",
    "token_request",
    "invalidate_request",
    "sign_request",
    "subscribe_request",
    "protocol_error",
]

#: Where brokerd listens unless ``$BROKERD_SOCKET`` says otherwise.
DEFAULT_SOCKET = "/run/brokerd/brokerd.sock"

#: The daemon's default ``max_line_bytes``; a reply line is never longer.
MAX_LINE = 1 << 20


def default_socket() -> str:
    """``$BROKERD_SOCKET``, else :data:`DEFAULT_SOCKET`."""
    return os.environ.get("BROKERD_SOCKET") or DEFAULT_SOCKET


class RequestIds:
    """Request ids, unique per client; the daemon echoes them back, so a
    reply that does not belong to its request is noticed."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._next)


def encode(request: Mapping[str, Any]) -> bytes:
    """One request line: compact JSON and a newline."""
    return json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def protocol_error(message: str) -> BrokerdError:
    """A reply the client cannot understand."""
    return BrokerdError("protocol", message)


def decode(line: bytes) -> Dict[str, Any]:
    """One reply or event line as a JSON object."""
    try:
        value = json.loads(line)
    except ValueError as e:
        raise protocol_error(f"brokerd sent a line that is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise protocol_error("brokerd sent a line that is not a JSON object")
    return value


def check_reply(reply: Mapping[str, Any], request_id: Optional[int]) -> Mapping[str, Any]:
    """The reply itself when it is a success for ``request_id``; otherwise
    raises the mapped :class:`BrokerdError` subclass."""
    if reply.get("ok") is True:
        if request_id is not None and reply.get("id") != request_id:
            raise protocol_error(f"reply for request {reply.get('id')!r}, expected {request_id}")
        return reply
    error = reply.get("error")
    if not isinstance(error, dict):
        raise protocol_error("an error reply without an error object")
    raise error_from_wire(error)


def _account_fields(broker: str, account: Optional[str], api: Optional[str]) -> Dict[str, Any]:
    fields: Dict[str, Any] = {"broker": broker}
    if account is not None:
        fields["account"] = account
    if api is not None:
        fields["api"] = api
    return fields


def _secs(value: float) -> int:
    """The protocol takes whole seconds; a fraction rounds up."""
    whole = int(value)
    return whole + 1 if value > whole else max(whole, 0)


def token_request(
    broker: str, account: Optional[str], api: str, min_valid: float, wait: float
) -> Dict[str, Any]:
    """``token``: a session valid for ``min_valid`` s, waiting up to ``wait`` s."""
    request = {"op": "token", **_account_fields(broker, account, api)}
    request["min_valid_secs"] = _secs(min_valid)
    request["wait_secs"] = _secs(wait)
    return request


Reason = Union[str, Mapping[str, Any], bytes, None]


def invalidate_request(
    broker: str,
    account: str,
    api: str,
    generation: int,
    reason: Reason,
    http_status: Optional[int],
    min_valid: float,
    wait: float,
) -> Dict[str, Any]:
    """``invalidate``: the broker rejected ``generation``. ``reason`` is what
    the broker answered (its JSON body, as text or object); the daemon
    classifies it (dead session, IP rule, outage) before it acts."""
    request = {"op": "invalidate", **_account_fields(broker, account, api)}
    request["generation"] = generation
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    if reason is not None:
        request["reason"] = dict(reason) if isinstance(reason, Mapping) else str(reason)
    if http_status is not None:
        request["http_status"] = int(http_status)
    request["min_valid_secs"] = _secs(min_valid)
    request["wait_secs"] = _secs(wait)
    return request


def sign_request(broker: str, body: Union[str, bytes, Any], account: Optional[str]) -> Dict[str, Any]:
    """``sign``: checksum headers for exactly ``body``. A non-string body is
    serialised compactly here (``json.dumps(body, separators=(",", ":"))``)
    so the caller can send the same text."""
    if isinstance(body, bytes):
        text = body.decode("utf-8")
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    request = {"op": "sign", **_account_fields(broker, account, None)}
    request["body"] = text
    return request


def subscribe_request(brokers: Optional[Sequence[str]]) -> Dict[str, Any]:
    """``subscribe``, to the events of ``brokers`` (all when ``None``)."""
    request: Dict[str, Any] = {"op": "subscribe"}
    if brokers is not None:
        request["brokers"] = list(brokers)
    return request
