"""Read replicas' boundary (backend/read_replicas.py): who a request's reads wait for is taken only from what a
guard verified. A forged or altered token, or no token, writes nothing and remembers no position for anyone, so
nobody can pin another shopper to the primary or make them skip the wait for their own write."""

from __future__ import annotations

import httpx
import pytest

from tests.identity.shopper import Shopper, new_phone
from tests.replicas.test_read_replicas import Pair, Reads, pair, replica_server, routed, story  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_forged_token_remembers_nothing_for_the_shopper_it_names(
        routed: tuple[Pair, Reads], story: tuple[object, object], replica_server: str, valkey: object) -> None:  # noqa: F811
    shop = story[0]
    async with httpx.AsyncClient(base_url=replica_server, timeout=30) as http:
        victim = Shopper(http=http, to=new_phone(), program=shop.program_code)  # type: ignore[attr-defined]
        await victim.log_in()
        key = f"kopilka:replica-lsn:shopper:{victim.customer_id}"
        await valkey.delete(key)  # type: ignore[attr-defined]  # the same id may exist in another test's database
        forged = victim.access[:-2] + ("AA" if not victim.access.endswith("AA") else "BB")
        for token in (forged, "not-a-token"):
            answer = await http.put("/api/v1/favourite-categories", json={"categories": ["x"]},
                                    headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": victim.ip},
                                    params={"program": shop.program_code})  # type: ignore[attr-defined]
            assert answer.status_code == 401, answer.text
        assert await valkey.get(key) is None  # type: ignore[attr-defined]
        # a refused write by the shopper herself remembers her position: her reads wait for it, nobody else's
        refused = await victim.send("PUT", "/favourite-categories", json={"categories": ["no-such-category"]})
        assert refused.status_code == 422, refused.text
        assert await valkey.get(key) is not None  # type: ignore[attr-defined]
