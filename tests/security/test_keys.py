"""Till and operator keys: created, listed and revoked from the command line and the operator API (role admin);
stored hashed; a revoked key fails at the next request in every worker process."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests import servers
from tests.cli.conftest import empty_env, run_kopilka  # noqa: F401 (a fixture)
from tests.factories import Shop, unique


@pytest.fixture(scope="module")
def two_workers(services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app as `kopilka serve --workers 2` runs it: two uvicorn worker processes behind one port."""
    log = tmp_path_factory.mktemp("two-workers") / "server.log"
    # both workers have finished starting ("Application startup complete." once per worker)
    with servers.uvicorn_app(log, "--workers", "2", "--no-access-log", log_level="info",
                             ready=lambda: log.read_text().count("Application startup complete") >= 2) as app:
        yield app.base


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def _identify(base: str, key: str) -> int:
    """One till request on a fresh connection (so consecutive calls land on either worker)."""
    with httpx.Client(base_url=base, timeout=10) as till:
        return till.post("/pos/v1/identify", json={"scan": "+79990001122"}, headers={"Authorization": f"Bearer {key}"}).status_code


def _refused_everywhere_within_a_second(base: str, key: str) -> None:
    """The worker that revoked refuses at once; the other drops the key when the message arrives (within a second)."""
    deadline = time.monotonic() + 1.0
    while {_identify(base, key) for _ in range(4)} != {401}:
        assert time.monotonic() < deadline, "a worker still takes the revoked key after a second"


async def _stored_hashes(table: str) -> list[tuple[str, str]]:
    from loyalty_core import db

    rows = await db.fetch(f"SELECT key_hash, prefix FROM {table}")
    return [(r["key_hash"], r["prefix"]) for r in rows]


async def test_till_key_from_the_cli_is_listed_revoked_and_refused_at_once_in_every_worker(
    shop: Shop, two_workers: str
) -> None:
    key = _last_line(run_kopilka("till-key", "create", "--store", shop.store_code, "--till", "T-77"))
    assert key.startswith("tk_")
    # only the hash and a prefix are stored
    stored = await _stored_hashes("till_key")
    assert (hashlib.sha256(key.encode()).hexdigest(), key[:10]) in stored
    assert all(key not in h and key != p for h, p in stored)
    assert {_identify(two_workers, key) for _ in range(10)} == {404}  # known key; the phone is nobody's

    listing = run_kopilka("till-key", "list", "--store", shop.store_code)
    assert listing.returncode == 0, listing.stderr
    line = next(line for line in listing.stdout.splitlines() if "till T-77" in line)
    key_id, prefix = line.split("\t")[:2]
    assert prefix == key[:10] + "…" and key not in listing.stdout

    # a keep-alive connection opened before the revocation: its very next request fails
    with httpx.Client(base_url=two_workers, timeout=10) as open_till:
        headers = {"Authorization": f"Bearer {key}"}
        assert open_till.post("/pos/v1/identify", json={"scan": "+79990001122"}, headers=headers).status_code == 404
        revoked = run_kopilka("till-key", "revoke", key_id)
        assert revoked.returncode == 0 and f"till key {key_id}" in revoked.stdout, revoked.stderr
        # the command's message reaches both workers' caches within a second (backend/cache_bus.py)
        deadline = time.monotonic() + 1.0
        while (after := open_till.post("/pos/v1/identify", json={"scan": "+79990001122"}, headers=headers)).status_code != 401:
            assert after.status_code == 404 and time.monotonic() < deadline, after.text
        assert after.json()["type"].endswith("/unauthorized")
    _refused_everywhere_within_a_second(two_workers, key)
    assert {_identify(two_workers, key) for _ in range(20)} == {401}
    # the store's other till keeps working; the revoked key shows only with --all
    assert _identify(two_workers, shop.key) == 404
    assert "till T-77" not in run_kopilka("till-key", "list", "--store", shop.store_code).stdout
    assert re.search(rf"^{key_id}\t.*till T-77.*revoked", run_kopilka("till-key", "list", "--all", "--store", shop.store_code).stdout, re.M)
    assert run_kopilka("till-key", "revoke", "99999999").returncode == 1


async def test_operator_keys_over_the_api_need_the_admin_role_and_revoke_at_once(
    shop: Shop, two_workers: str, db_pool: None
) -> None:
    admin_key = _last_line(run_kopilka("operator-key", "create", "--name", unique("security desk"), "--role", "admin"))
    admin = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=two_workers, timeout=10) as http:
        made = await http.post("/admin/v1/operator-keys", headers=admin, json={"name": unique("call centre"), "roles": ["support"]})
        assert made.status_code == 201, made.text
        support = {"Authorization": f"Bearer {made.json()['key']}"}
        support_id = made.json()["id"]
        assert (hashlib.sha256(made.json()["key"].encode()).hexdigest(), made.json()["prefix"]) in await _stored_hashes("operator_key")

        # support may register callers, but not touch keys: 403 everywhere, nothing created
        assert (await http.post("/admin/v1/members", headers=support, json={})).status_code == 422
        before = await _stored_hashes("operator_key")
        for method, path, body in [
            ("GET", "/admin/v1/operator-keys", None),
            ("POST", "/admin/v1/operator-keys", {"name": "me too", "roles": ["admin"]}),
            ("POST", f"/admin/v1/operator-keys/{support_id}/revoke", None),
            ("GET", "/admin/v1/till-keys", None),
            ("POST", "/admin/v1/till-keys", {"store": shop.store_code, "till": "X"}),
            ("POST", "/admin/v1/till-keys/1/revoke", None),
        ]:
            refused = await http.request(method, path, headers=support, json=body)
            assert refused.status_code == 403 and refused.json()["type"].endswith("/forbidden"), (path, refused.text)
            anonymous = await http.request(method, path, json=body)
            assert anonymous.status_code == 401, path
        assert await _stored_hashes("operator_key") == before

        # bad roles are refused before anything is written
        for roles in ([], ["root"], ["admin", "superuser"]):
            bad = await http.post("/admin/v1/operator-keys", headers=admin, json={"name": "x", "roles": roles})
            assert bad.status_code in (400, 422), bad.text
        assert await _stored_hashes("operator_key") == before

        listed = await http.get("/admin/v1/operator-keys", headers=admin)
        assert listed.status_code == 200
        mine = next(k for k in listed.json() if k["id"] == support_id)
        assert mine["roles"] == ["support"] and mine["revoked_at"] is None and "key" not in mine

        revoked = await http.post(f"/admin/v1/operator-keys/{support_id}/revoke", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
        for _ in range(10):  # fresh connections: both workers
            async with httpx.AsyncClient(base_url=two_workers, timeout=10) as fresh:
                assert (await fresh.post("/admin/v1/members", headers=support, json={})).status_code == 401
        assert support_id not in [k["id"] for k in (await http.get("/admin/v1/operator-keys", headers=admin)).json()]
        # who issued and who revoked it is in the audit trail (never the secret)
        from loyalty_core import db

        trail = await db.fetch("SELECT actor, action, after::text AS after FROM audit_event WHERE subject = $1 ORDER BY id",
                               f"operator_key:{support_id}")
        assert [r["action"] for r in trail] == ["operator_key.issue", "operator_key.revoke"]
        assert all("security desk" in r["actor"] for r in trail) and all(made.json()["key"] not in r["after"] for r in trail)
        assert support_id in [k["id"] for k in (await http.get("/admin/v1/operator-keys?revoked=true", headers=admin)).json()]


async def test_till_keys_over_the_api(shop: Shop, two_workers: str, db_pool: None) -> None:
    admin_key = _last_line(run_kopilka("operator-key", "create", "--name", unique("keys desk"), "--role", "admin"))
    admin = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=two_workers, timeout=10) as http:
        issued = await http.post("/admin/v1/till-keys", headers=admin, json={"store": shop.store_code, "till": "T-88"})
        assert issued.status_code == 201, issued.text
        key, key_id = issued.json()["key"], issued.json()["id"]
        assert _identify(two_workers, key) == 404
        listed = (await http.get("/admin/v1/till-keys", headers=admin, params={"store": shop.store_code})).json()
        assert {k["till"] for k in listed} >= {"till-1", "T-88"} and all("key" not in k for k in listed)
        unknown_store = await http.post("/admin/v1/till-keys", headers=admin, json={"store": unique("nowhere"), "till": "1"})
        assert unknown_store.status_code == 404
        revoked = await http.post(f"/admin/v1/till-keys/{key_id}/revoke", headers=admin)
        assert revoked.status_code == 200 and revoked.json()["till"] == "T-88"
        _refused_everywhere_within_a_second(two_workers, key)
        assert {_identify(two_workers, key) for _ in range(10)} == {401}
        again = await http.post(f"/admin/v1/till-keys/{key_id}/revoke", headers=admin)  # idempotent
        assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
        assert (await http.post("/admin/v1/till-keys/99999999/revoke", headers=admin)).status_code == 404


def test_the_last_working_admin_key_cannot_be_revoked(empty_env: dict[str, str]) -> None:
    """In a database of its own: with one admin key left, revoking it would lock every operator out of the API."""
    assert run_kopilka("migrate", env=empty_env).returncode == 0
    first = run_kopilka("operator-key", "create", "--name", "admin a", "--role", "admin", env=empty_env)
    second = run_kopilka("operator-key", "create", "--name", "admin b", "--role", "admin", "--role", "support", env=empty_env)
    first_id, second_id = (re.search(r"Operator key (\d+)", r.stdout)[1] for r in (first, second))  # type: ignore[index]
    assert run_kopilka("operator-key", "revoke", first_id, env=empty_env).returncode == 0
    last = run_kopilka("operator-key", "revoke", second_id, env=empty_env)
    assert last.returncode == 1 and "last working admin key" in last.stderr
    listed = run_kopilka("operator-key", "list", env=empty_env).stdout
    assert re.search(rf"^{second_id}\t.*roles admin,support", listed, re.M) and "revoked" not in listed
