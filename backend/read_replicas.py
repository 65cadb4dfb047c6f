"""The app's side of read replicas (loyalty_core/replicas.py): the per-request state, who the actor is, and
where their last write's position is kept (Valkey).

`ReadRouting` wraps every HTTP request: reads inside `replicas.reads()` learn from it who asks and whether
the request has written. When a request of a known actor wrote (it opened a transaction, or it is a POST,
PUT, PATCH or DELETE), the primary's WAL position is stored under the actor before the response starts, so
the actor's next request, on any instance, reads from a replica only once it has replayed that position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge

from backend.observability import PREFIX
from loyalty_core import db, replicas

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
KEY_PREFIX = "kopilka:replica-lsn:"

# the only write that can land after the position is taken: nothing, the handler has returned by then
_MAX_IF_GREATER = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


class ValkeyLsnStore:
    """The primary's position after each actor's last write, in Valkey (so every instance sees it).

    A position only moves forward: two requests of one actor finishing out of order keep the later one."""

    def __init__(self, valkey: Callable[[], Any]) -> None:
        self.valkey = valkey  # the app's client, made in its lifespan

    async def get(self, actor: str) -> int | None:
        value = await self.valkey().get(KEY_PREFIX + actor)
        return int(value) if value is not None else None

    async def put(self, actor: str, lsn: int, ttl_seconds: int) -> None:
        await self.valkey().eval(_MAX_IF_GREATER, 1, KEY_PREFIX + actor, lsn, ttl_seconds)


READS = Counter(f"{PREFIX}_db_read_scopes_total", "Read-only use-cases by where they read and why",
                ["target", "reason"])  # target: replica | primary
REPLICA_UP = Gauge(f"{PREFIX}_db_replica_up", "1 when the replica may serve reads, as of its last check",
                   ["replica"], multiprocess_mode="max")
REPLICA_LAG = Gauge(f"{PREFIX}_db_replica_lag_seconds", "How far the replica is behind the primary, as of its last check",
                    ["replica"], multiprocess_mode="max")


def count_read(target: str, reason: str) -> None:
    READS.labels(target, reason).inc()
    replica_set = replicas.replica_set()
    for replica in replica_set.replicas if replica_set is not None else ():
        REPLICA_UP.labels(replica.name).set(1 if replica.up else 0)
        if replica.lag != float("inf"):
            REPLICA_LAG.labels(replica.name).set(replica.lag)


def configure(settings: Any, valkey: Callable[[], Any]) -> None:
    """Read replicas from the settings (KOPILKA_DATABASE_REPLICA_URLS ...); none named: everything on the primary."""
    database = settings.database
    if database.replica_urls and (database.replica_max_lag <= 0 or database.replica_check_every < 0):
        raise ValueError("KOPILKA_REPLICA_MAX_LAG must be above 0 and KOPILKA_REPLICA_CHECK_SECONDS not below 0")
    db.configure_replicas(database.replica_urls, max_lag=database.replica_max_lag,
                          check_every=database.replica_check_every, lsn_store=ValkeyLsnStore(valkey))
    replicas.configure(None, count_read)


def actor_of(state: dict[str, Any]) -> str | None:
    """Who makes the request, as the surfaces' guards left them in the ASGI scope's state."""
    if (claims := state.get("shopper")) is not None:  # the shopper API's access token
        return f"shopper:{claims.customer_id}"
    if (web := state.get("web")) is not None:  # the website's session
        return f"shopper:{web.customer_id}"
    if (staff := state.get("staff")) is not None:  # the back office
        return f"staff:{staff.id}"
    if (operator := state.get("operator")) is not None:  # the operator API's key
        return f"key:{operator.key_id}"
    return None


class ReadRouting:
    """ASGI layer: the request's replica state, and the actor's write remembered before the response starts."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or replicas.replica_set() is None:
            await self.app(scope, receive, send)
            return
        asgi_state = scope.setdefault("state", {})
        with replicas.request(lambda: actor_of(asgi_state)) as request:

            async def send_after_remembering(message: Any) -> None:
                if message["type"] == "http.response.start":
                    actor = request.actor
                    if actor is not None and (request.wrote or scope.get("method") not in SAFE_METHODS):
                        await replicas.remember_write(actor, db.primary_lsn)
                await send(message)

            await self.app(scope, receive, send_after_remembering)
