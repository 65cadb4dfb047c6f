"""Run the real `kopilka` command as a subprocess against the test services."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def kopilka_argv() -> list[str]:
    script = Path(sys.executable).with_name("kopilka")
    return [str(script)] if script.exists() else [sys.executable, "-m", "backend.cli"]


def run_kopilka(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*kopilka_argv(), *args], cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True, timeout=timeout
    )


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _scratch_database(db_url: str) -> Iterator[dict[str, str]]:
    """The environment of a shop that has just installed Kopilka: a database of its own, empty."""
    import asyncio

    name = f"kopilka_cli_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(with_database(db_url, "postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield dict(os.environ, KOPILKA_DATABASE_URL=with_database(db_url, name))
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def fresh_env(services: tuple[str, str]) -> Iterator[dict[str, str]]:
    """An empty database shared by a module's tests (they migrate it first)."""
    yield from _scratch_database(services[0])


@pytest.fixture
def empty_env(services: tuple[str, str]) -> Iterator[dict[str, str]]:
    """An empty database nobody migrates."""
    yield from _scratch_database(services[0])


async def fetch_value(env: dict[str, str], sql: str, *args: object) -> object:
    conn = await asyncpg.connect(env["KOPILKA_DATABASE_URL"])
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()
