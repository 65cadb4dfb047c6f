"""The workers' caches kept fresh over Valkey pub/sub (`loyalty_core.cache`).

A change of a till key, a till, a store, a program or the catalog calls `cache.changed(tags)` after its commit:
the process drops those entries itself and `publish` sends the tags on the channel; every worker's `CacheBus`
(a task started in the app's lifespan) hears them and drops the same entries. A revoked key or an excluded
product so takes effect in every worker within a second.

The subscriber reconnects when Valkey drops. While it is not subscribed the cache serves nothing (every
request reads the database, as without a cache), and on each (re)subscription it starts empty: messages sent
while it was away were not heard. A message lost anyway (a publisher that could not reach Valkey after its
commit) is caught by the version the till's statements read (`cache.VERSION_COLUMN`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from backend import valkey_client
from loyalty_core import cache

log = logging.getLogger("kopilka.cache")

RECONNECT_MAX = 1.0  # seconds between tries to subscribe again; the cache is off meanwhile
HEALTH_CHECK = 5  # seconds: the subscription's connection is pinged this often, so a dead one is noticed
CLIENT_NAME = "kopilka-cache-bus"  # the subscription's name in CLIENT LIST


def channel_of(client: Any) -> str:
    """One channel per Valkey database: two deployments (or test runs) on one server do not hear each other."""
    return f"kopilka:cache:{client.connection_pool.connection_kwargs.get('db', 0)}"


async def publish(client: Any, message: cache.Invalidation) -> None:
    """Tell every worker to drop the entries carrying the message's tags. Never raises: the change is made whatever
    happens here, and a message that does not go out is caught by the version check."""
    try:
        await client.publish(channel_of(client), msgspec.json.encode(message))
    except Exception:  # noqa: BLE001 - Valkey down: the version in the till's statements catches it
        log.warning("could not publish a cache invalidation %s; workers will notice by the version", message.tags,
                    exc_info=True)


def publisher(client: Any) -> cache.Publisher:
    async def send(message: cache.Invalidation) -> None:
        await publish(client, message)

    return send


async def publish_once(url: str, message: cache.Invalidation) -> None:
    """From a command-line process (no app, no client of its own): connect, publish, close."""
    client = valkey_client.connect(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await publish(client, message)
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


_decode = msgspec.json.Decoder(cache.Invalidation).decode


class CacheBus:
    """The worker's subscription: drops what the messages name, reconnecting until stopped."""

    def __init__(self, url: str, facts: cache.FactsCache = cache.facts) -> None:
        self.url, self.facts = url, facts
        self.subscribed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kopilka-cache-bus")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.facts.live = False

    async def _run(self) -> None:
        pause = 0.05
        while not self._stopping.is_set():
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Valkey dropped or refused: subscribe again
                if self.subscribed.is_set():
                    log.warning("cache invalidations: lost the subscription (%s); the cache is off until it is back",
                                type(exc).__name__)
            finally:
                self.facts.live = False
                self.subscribed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            pause = min(pause * 2, RECONNECT_MAX)

    async def _listen(self) -> None:
        client = valkey_client.connect(self.url, socket_connect_timeout=2, socket_timeout=10,
                                       health_check_interval=HEALTH_CHECK, client_name=CLIENT_NAME)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel_of(client))
            # whatever changed while nobody listened was not heard here: start from nothing
            self.facts.forget_version()
            self.facts.live = True
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    self._apply(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    def _apply(self, data: bytes) -> None:
        try:
            message = _decode(data)
        except msgspec.DecodeError:  # not JSON, or not an invalidation
            message = cache.Invalidation(tags=[cache.ALL])  # not ours to read: dropping everything is always safe
        self.facts.drop(message.tags, message.version)
