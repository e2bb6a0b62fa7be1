"""The asyncio client does what the blocking one does."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

from brokerd_client import AuthRequired, BrokerdError
from brokerd_client import aio

from conftest import Daemon

INVALID_TOKEN = {"type": "error", "code": "e-session-0007", "description": "Invalid Token"}


async def until(cond: Callable[[], bool], timeout: float = 5) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return cond()


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 60))


def test_aio_sessions_cache_and_invalidate(daemon: Daemon):
    async def main() -> None:
        async with aio.Client(socket=daemon.socket) as c:
            s = await c.session("jainam")
            assert s.token == daemon.call({"op": "token", "broker": "jainam"})["session"]["token"]
            assert await until(lambda: c.subscribed)
            await c.session("jainam")
            before = daemon.token_requests("jainam")
            for _ in range(200):
                assert await c.session("jainam") == s
            assert daemon.token_requests("jainam") == before

            logins = daemon.logins("jainam")
            new = await c.invalidate(s, reason=INVALID_TOKEN, http_status=400)
            assert new.generation > s.generation
            assert daemon.logins("jainam") == logins + 1
            assert await c.session("jainam") == new

            market = await c.session("jainam", api="market")
            assert market.api == "market" and market.fields["app_version"] == "1.0.0"
            neo = await c.session("kotak_neo", wait=40)
            assert neo.fields["base_url"].startswith("http://127.0.0.1:")

    run(main)


def test_aio_errors_status_and_events(daemon: Daemon):
    async def main() -> None:
        async with aio.Client(socket=daemon.socket) as c:
            with pytest.raises(AuthRequired) as e:
                await c.session("zerodha", wait=0)
            assert "api_key=demokitekey01" in e.value.login_url
            with pytest.raises(AuthRequired):
                await c.sign("breeze", {"stock_code": "ITC"})
            with pytest.raises(BrokerdError) as e:
                await c.session("jainam", account="nope")
            assert e.value.code == "unknown_account"

            status = await c.status()
            states = {(a["broker"], a["api"]): a["state"] for a in status}
            assert states[("zerodha", "interactive")] == "auth_required"
            assert states[("jainam", "interactive")] == "active"

            # Events are not replayed, and nothing says when the daemon has
            # taken the subscription: renew until one renewal is seen.
            events = c.events(brokers=["jainam"])
            pending = asyncio.ensure_future(events.__anext__())
            s = await c.session("jainam")
            ev = None
            for _ in range(50):
                s = await c.invalidate(s, reason=INVALID_TOKEN)
                try:
                    while ev is None or ev.generation != s.generation:
                        ev = await asyncio.wait_for(asyncio.shield(pending), 0.2)
                        pending = asyncio.ensure_future(events.__anext__())
                    break
                except asyncio.TimeoutError:
                    continue
            assert ev is not None and ev.kind == "renewed", ev
            assert (ev.broker, ev.account, ev.api, ev.generation) == ("jainam", "demo", "interactive", s.generation)
            assert ev.expires_at == s.expires_at
            pending.cancel()
            await events.aclose()

    run(main)


def test_aio_rides_through_a_daemon_restart(daemon: Daemon):
    async def main() -> None:
        async with aio.Client(socket=daemon.socket) as c:
            before = await c.session("jainam")
            assert await until(lambda: c.subscribed)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, daemon.stop)
            assert await until(lambda: not c.subscribed)
            # Nothing from memory while the subscription is down; the call
            # keeps trying to connect until the daemon is back.
            pending = asyncio.ensure_future(c.session("jainam", wait=20))
            await asyncio.sleep(0.2)
            assert not pending.done()
            await loop.run_in_executor(None, daemon.start)
            after = await asyncio.wait_for(pending, 30)
            assert (after.broker, after.api) == ("jainam", "interactive")

            # The new simulator rejects the stored token: the daemon logs in
            # again, and the client follows.
            def relogged() -> bool:
                st = daemon.status_of("jainam")
                return st["state"] == "active" and st["generation"] > before.generation

            assert await until(relogged, timeout=15)
            current = daemon.call({"op": "token", "broker": "jainam"})["session"]
            assert await until(lambda: c.subscribed)
            s = await c.session("jainam")
            assert (s.generation, s.token) == (current["generation"], current["token"])

    run(main)


class TinyXTS:
    """The least of an XTS-shaped SDK the adapter drives: constructed
    without the app's keys, given the session through
    ``_set_common_variables``, calls through ``_request``."""

    def __init__(self, apiKey: str, secretKey: str, source: str, root: str) -> None:
        self.root, self.token = root, None

    def _set_common_variables(self, access_token: str, userID: str, isInvestorClient: bool) -> None:
        self.token, self.user = access_token, userID

    def _request(self, route: str, method: str, parameters: object = None) -> object:
        return {"route": route}


def test_aio_sdk_adapters_build_on_the_daemons_session(daemon: Daemon):
    async def main() -> None:
        async with aio.Client(socket=daemon.socket) as c:
            x = await c.xts(sdk=TinyXTS)
            s = await c.session("jainam")
            assert (x.token, x.user, x.root) == (s.token, s.fields["user_id"], s.fields["api_root"])
            # The SDK's calls stay blocking, run off the event loop.
            assert await asyncio.to_thread(x._request, "user.profile", "GET") == {"route": "user.profile"}
            with pytest.raises(AuthRequired) as e:
                await c.kite()
            assert e.value.login_url

    run(main)
