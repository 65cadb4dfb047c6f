"""The balance, live: server-sent events fed by Litestar channels on Valkey.

How a till sale reaches an open dashboard, without touching the till's code path:
1. the SSE handler subscribes to channel `balance:<account id>` and marks the account as watched
   (a Valkey sorted set, heartbeat every 20 s);
2. one process of the cluster (a Valkey lease) polls the watched accounts once a second — one
   indexed query for all of them — and publishes to the account's channel when `account`
   (active, pending, updated_at) changed. Every confirm, cancel, return and adjustment updates
   that row in the same transaction as the ledger, so only committed changes are seen;
3. every process relays the channel to its subscribers; each SSE handler re-renders the balance
   fragment and sends it only if it changed. htmx's SSE extension swaps it into the page.
A lost event costs at most one heartbeat: the handler re-checks the balance every 20 s anyway.
The plugin and the poller start on the first live connection of a process and stop with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, get
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from litestar.response import ServerSentEvent, ServerSentEventMessage

from loyalty_core.services import members_points
from loyalty_core.services.members import Member
from loyalty_core.tables import Account
from personal_account.session import current, signed_in_guard
from personal_account.web import DEPENDENCIES, CurrentMember, formats

log = logging.getLogger("kopilka.web.live")

WATCHED = "kopilka:web:live:watched"  # account id -> last heartbeat (unix seconds)
LEASE = "kopilka:web:live:poller"
HEARTBEAT = 20.0
STALE_AFTER = 60
LEASE_SECONDS = 5
POLL_INTERVAL = 1.0


def channel(account_id: int) -> str:
    return f"balance:{account_id}"


class LiveBalance:
    """Per process: the channels plugin (Valkey pub/sub) and the poller that takes the lease when free."""

    def __init__(self, app: Litestar) -> None:
        self.app = app
        self.me = uuid.uuid4().hex
        self.plugin: ChannelsPlugin | None = None
        self._client: Any = None
        self._poller: asyncio.Task[None] | None = None
        self._seen: dict[int, tuple[Any, ...]] = {}
        self._lock = asyncio.Lock()

    @property
    def valkey(self) -> Any:
        return self.app.state.valkey

    async def start(self) -> ChannelsPlugin:
        async with self._lock:
            if self.plugin is None:
                import valkey.asyncio as valkey_asyncio

                self._client = valkey_asyncio.from_url(self.app.state.settings.valkey.url)
                plugin = ChannelsPlugin(backend=RedisChannelsPubSubBackend(redis=self._client),
                                        arbitrary_channels_allowed=True)
                await plugin._on_startup()  # what the app's lifespan would call for an app-level plugin
                self._poller = asyncio.create_task(self._poll_forever())
                self.app.on_shutdown.append(self.stop)
                self.plugin = plugin
            return self.plugin

    async def stop(self, _: Any = None) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.plugin is not None:
            await self.plugin._on_shutdown()
            await self._client.aclose()
        self.plugin = self._poller = None

    async def watch(self, account_id: int) -> None:
        await self.valkey.zadd(WATCHED, {str(account_id): int(time.time())})

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
        """Publish the watched accounts whose row changed (or that this poller has not seen yet)."""
        if not await self._hold_lease():
            return []
        now = int(time.time())
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
        for account_id in changed if self.plugin is not None else []:
            self.plugin.publish({"account": account_id}, channel(account_id))
        return changed

    async def _poll_forever(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # Valkey or PostgreSQL blinked: the next round tries again
                log.warning("live balance poll failed", exc_info=True)
            await asyncio.sleep(POLL_INTERVAL)


def live_balance(app: Litestar) -> LiveBalance:
    found = getattr(app.state, "web_live_balance", None)
    if found is None:
        found = app.state.web_live_balance = LiveBalance(app)
    return found  # type: ignore[no-any-return]


async def render_balance(request: Request, member: Member) -> str:
    template = request.app.template_engine.get_template("_balance.html")  # type: ignore[union-attr]
    fmt = formats(request, member.timezone)
    balance = await members_points.balance(member, dt.datetime.now(dt.UTC))
    return template.render(f=fmt, t=fmt.t, balance=balance, live=True)  # type: ignore[no-any-return]


async def balance_events(request: Request, member: Member) -> AsyncIterator[ServerSentEventMessage]:
    live = live_balance(request.app)
    plugin = await live.start()
    if member.account_id is None:
        return
    wake: asyncio.Queue[bytes] = asyncio.Queue()
    last = ""
    async with plugin.start_subscription(channel(member.account_id)) as subscriber, \
            subscriber.run_in_background(wake.put):
        while True:
            await live.watch(member.account_id)
            html = (await render_balance(request, member)).strip()
            if html != last:
                last = html
                yield ServerSentEventMessage(data=html, event="balance")
            else:
                yield ServerSentEventMessage(comment="keep-alive")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.get(), HEARTBEAT)
            while not wake.empty():  # a burst of changes: render once
                wake.get_nowait()
            if await current(request) is None:  # signed out in another tab, or the account was deleted
                return


@get("/live/balance", guards=[signed_in_guard], dependencies=DEPENDENCIES, include_in_schema=False)
async def balance_stream(request: Request, member: CurrentMember) -> ServerSentEvent:
    """Server-sent events: `balance` with the fragment's HTML whenever the member's points change."""
    return ServerSentEvent(balance_events(request, member), headers={"Cache-Control": "no-store",
                                                                     "X-Accel-Buffering": "no"})
