"""The dashboard, live: server-sent events fed by Litestar channels on Valkey.

How a till sale reaches an open dashboard, without touching the till's code path:
1. the SSE handler subscribes to channel `balance:<account id>` and marks the account as watched
   (a Valkey sorted set, heartbeat every 20 s);
2. one process of the cluster (a Valkey lease) polls the watched accounts once a second — one
   indexed query for all of them — and publishes to the account's channel when `account`
   (active, pending, updated_at) changed. Every confirm, cancel, return and adjustment updates
   that row in the same transaction as the ledger, so only committed changes are seen;
3. every process relays the channel to its subscribers; each SSE handler re-renders the balance,
   tier and latest purchases fragments and sends each one only if it changed. htmx's SSE
   extension swaps them into the page.
A lost event costs at most one heartbeat: the handler re-renders every 20 s anyway.

A session that ends anywhere (signed out on another device with "everywhere", the account deleted, the API's log
out everywhere, a refresh token replayed, support) is pushed the same way: the handler also subscribes to
`session:<login family>` and watches its family; the website's own sign-outs publish there at once, and the poller
asks which watched families `session_alive` would now refuse (one indexed query a second) and publishes those.
The handler then sends `event: ended` with the notice and closes.
Both plugins are the app's (`backend.wiring.plugins`): they start and stop with its lifespan, in
every worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

from litestar import Litestar, Request, get
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.base import ChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin
from litestar.response import ServerSentEvent, ServerSentEventMessage

from loyalty_core import replicas
from loyalty_core.members.profile import Member
from loyalty_core.tables import Account
from personal_account.pages import live_contexts
from personal_account.session import CSRF_COOKIE, csrf_token, current, signed_in_guard
from personal_account.web import DEPENDENCIES, CurrentMember, formats

log = logging.getLogger("kopilka.web.live")

WATCHED = "kopilka:web:live:watched"  # account id -> last heartbeat (unix seconds)
SESSIONS = "kopilka:web:live:sessions"  # login family of an open dashboard -> last heartbeat (unix seconds)
LEASE = "kopilka:web:live:poller"
HEARTBEAT = 20.0
STALE_AFTER = 60
LEASE_SECONDS = 5
POLL_INTERVAL = 1.0


def channel(account_id: int) -> str:
    return f"balance:{account_id}"


def session_channel(family: str | uuid.UUID) -> str:
    return f"session:{family}"


def session_ended(app: Litestar, families: Iterable[str | uuid.UUID]) -> None:
    """Tell these logins' open dashboards now that their session ended (they show the notice and close)."""
    with contextlib.suppress(Exception):  # the live view is a nicety: never fail a sign-out over it
        plugin = app.plugins.get(ChannelsPlugin)
        for family in families:
            plugin.publish({"session": str(family)}, session_channel(family))


class ValkeyPubSub(ChannelsBackend):
    """Litestar's Redis pub/sub backend on a Valkey client made at startup and closed at shutdown.

    A client made in the app factory would keep connections of the first event loop it served
    (one pool per loop), so the backend makes its own when the app starts.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None
        self._backend: RedisChannelsPubSubBackend | None = None

    @property
    def backend(self) -> RedisChannelsPubSubBackend:
        if self._backend is None:
            raise RuntimeError("the live channels are not started: the app's lifespan starts them")
        return self._backend

    async def on_startup(self) -> None:
        from backend.valkey_client import connect

        self._client = connect(self.url)  # one server, or the primary that Valkey Sentinel names
        self._backend = RedisChannelsPubSubBackend(redis=self._client)
        await self._backend.on_startup()

    async def on_shutdown(self) -> None:
        if self._backend is not None:
            try:
                await self._backend.on_shutdown()
            finally:
                await self._client.aclose()
        self._backend = self._client = None

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        await self.backend.publish(data, channels)

    async def subscribe(self, channels: Iterable[str]) -> None:
        await self.backend.subscribe(channels)

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        await self.backend.unsubscribe(channels)

    def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        return self.backend.stream_events()

    async def get_history(self, channel: str, limit: int | None = None) -> list[bytes]:
        return await self.backend.get_history(channel, limit)


class LiveBalance(InitPlugin):
    """Per process: the poller that takes the cluster's lease when it is free and publishes changed accounts."""

    def __init__(self, channels: ChannelsPlugin) -> None:
        self.channels = channels
        self.me = uuid.uuid4().hex
        self.valkey: Any = None
        self._seen: dict[int, tuple[Any, ...]] = {}

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # registered after the app's own lifespan (pool, Valkey) and the channels plugin: starts after
        # them and stops before them
        app_config.lifespan.append(self._polling)
        return app_config

    @contextlib.asynccontextmanager
    async def _polling(self, app: Litestar) -> AsyncIterator[None]:
        self.valkey = app.state.valkey
        stopping = asyncio.Event()
        poller = asyncio.create_task(self._poll_until(stopping))
        try:
            yield
        finally:
            # let a round in flight finish rather than cancel it: a driver may swallow a cancellation mid-query
            stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poller, LEASE_SECONDS)
            self._seen.clear()

    async def watch(self, account_id: int, family: str | None = None) -> None:
        now = int(time.time())
        await self.valkey.zadd(WATCHED, {str(account_id): now})
        if family:
            await self.valkey.zadd(SESSIONS, {family: now})

    async def _hold_lease(self) -> bool:
        if await self.valkey.set(LEASE, self.me, nx=True, ex=LEASE_SECONDS):
            return True
        holder = await self.valkey.get(LEASE)
        if holder is not None and holder.decode() == self.me:
            await self.valkey.expire(LEASE, LEASE_SECONDS)
            return True
        self._seen.clear()  # someone else polls; start fresh if the lease comes back
        return False

    async def poll_once(self) -> list[int]:
        """Publish the watched accounts whose row changed (or that this poller has not seen yet), and the watched
        sessions that ended."""
        if not await self._hold_lease():
            return []
        now = int(time.time())
        await self._publish_ended_sessions(now)
        await self.valkey.zremrangebyscore(WATCHED, "-inf", now - STALE_AFTER)
        ids = [int(i) for i in await self.valkey.zrange(WATCHED, 0, -1)]
        if not ids:
            self._seen.clear()
            return []
        rows = await Account.raw(
            "SELECT id, active, pending, updated_at FROM account WHERE id = ANY({}::integer[])", ids)
        changed = []
        for row in rows:
            state = (row["active"], row["pending"], row["updated_at"])
            if self._seen.get(row["id"]) != state:
                self._seen[row["id"]] = state
                changed.append(row["id"])
        keep = set(ids)
        self._seen = {k: v for k, v in self._seen.items() if k in keep}
        for account_id in changed:
            self.channels.publish({"account": account_id}, channel(account_id))
        return changed

    async def _publish_ended_sessions(self, now: int) -> list[str]:
        from loyalty_core.shopper_auth.tokens import ended_families

        await self.valkey.zremrangebyscore(SESSIONS, "-inf", now - STALE_AFTER)
        families = []
        for raw in await self.valkey.zrange(SESSIONS, 0, -1):
            with contextlib.suppress(ValueError):
                families.append(uuid.UUID(raw.decode()))
        ended = sorted(str(f) for f in await ended_families(families))
        if ended:
            await self.valkey.zrem(SESSIONS, *ended)  # told once; a page still open watches it again on its heartbeat
            for family in ended:
                self.channels.publish({"session": family}, session_channel(family))
        return ended

    async def _poll_until(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await self.poll_once()
            except Exception:  # Valkey or PostgreSQL blinked: the next round tries again
                log.warning("live balance poll failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POLL_INTERVAL)


def plugins(valkey_url: str) -> list[Any]:
    """The app-level plugins of the live dashboard: channels on Valkey first, then the poller that publishes to them."""
    channels = ChannelsPlugin(backend=ValkeyPubSub(valkey_url), arbitrary_channels_allowed=True)
    return [channels, LiveBalance(channels)]


async def render_live(request: Request, member: Member) -> dict[str, str]:
    """Each live block of the dashboard, rendered: event name -> HTML."""
    engine = request.app.template_engine
    fmt = formats(request, member.timezone)
    # from the primary: a block is rendered again because the primary's account row changed, and a replica
    # may not have replayed that change yet (a stale block would stay on screen until the next sale)
    async with replicas.primary("the live dashboard"):
        blocks = await live_contexts(member, dt.datetime.now(dt.UTC), fmt, request.app.state.valkey)
    # the blocks' forms (the tier-up banner's dismiss) carry this browser's token, as the page's do
    csrf = csrf_token(request, request.cookies.get(CSRF_COOKIE, ""))
    return {event: engine.get_template(template).render(f=fmt, t=fmt.t, csrf=csrf, **context).strip()  # type: ignore[union-attr]
            for event, (template, context) in blocks.items()}


async def dashboard_events(request: Request, member: Member) -> AsyncIterator[ServerSentEventMessage]:
    live = request.app.plugins.get(LiveBalance)
    if member.account_id is None:
        return
    wake: asyncio.Queue[bytes] = asyncio.Queue()
    last: dict[str, str] = {}
    family = request.state.web.family
    async with live.channels.start_subscription([channel(member.account_id), session_channel(family)]) as subscriber, \
            subscriber.run_in_background(wake.put):
        while True:
            await live.watch(member.account_id, family)
            fresh = await render_live(request, member)
            changed = [event for event, html in fresh.items() if last.get(event) != html]
            for event in changed:
                yield ServerSentEventMessage(data=fresh[event], event=event)
            if not changed:
                yield ServerSentEventMessage(comment="keep-alive")
            last = fresh
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.get(), HEARTBEAT)
            while not wake.empty():  # a burst of changes: render once
                wake.get_nowait()
            if await current(request) is None:  # signed out in another tab, or the account was deleted
                # say so on the page rather than leave a card that no longer works on screen
                fmt = formats(request, member.timezone)
                ended = request.app.template_engine.get_template("_session_ended.html")  # type: ignore[union-attr]
                yield ServerSentEventMessage(data=ended.render(t=fmt.t, f=fmt).strip(), event="ended")
                return


@get("/live/balance", guards=[signed_in_guard], dependencies=DEPENDENCIES, include_in_schema=False)
async def balance_stream(request: Request, member: CurrentMember) -> ServerSentEvent:
    """Server-sent events `balance`, `tier` and `purchases`: each block's HTML when it changes after a sale."""
    return ServerSentEvent(dashboard_events(request, member), headers={"Cache-Control": "no-store",
                                                                     "X-Accel-Buffering": "no"})
