"""/metrics of `kopilka serve` with two worker processes: every scrape, whichever worker answers it, gives the
whole server's figures (prometheus_client's multiprocess mode); latency is labelled by route template."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.instances import serving
from tests.factories import Shop, make_member, sale_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(found: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))


async def test_two_workers_report_one_servers_figures(shop: Shop, tmp_path: Path) -> None:
    member = await make_member(shop, points=1_000)
    with serving(tmp_path / "serve.log", workers=2) as base:
        sale = sale_body(shop, [("cheese", 2, 59_900)], card=member.card, redeem=100)
        for _ in range(20):  # a new connection each: the two workers share them
            assert httpx.get(base + "/health", timeout=10).status_code == 200
        confirmed = httpx.post(base + "/pos/v1/sales/confirm", json=sale, headers=shop.headers, timeout=30)
        assert confirmed.status_code == 200, confirmed.text
        accrued = confirmed.json()["totals"]["accrued_points"]
        assert accrued > 0
        cancel = httpx.post(f"{base}/pos/v1/sales/{confirmed.json()['sale_id']}/cancel", headers=shop.headers,
                            timeout=30)
        assert cancel.status_code == 200, cancel.text
        for _ in range(6):
            scrape = httpx.get(base + "/metrics", timeout=10)
            assert scrape.status_code == 200, scrape.text
            found = samples(scrape.text)
            assert total(found, "kopilka_requests_total", path="/health") == 20
            assert total(found, "kopilka_request_duration_seconds_count", path="/pos/v1/sales/confirm") == 1
            # the route template, not the sale's id
            assert total(found, "kopilka_requests_total", path="/pos/v1/sales/{sale_id}/cancel") == 1
            sale_path = f"/{confirmed.json()['sale_id']}/"
            assert not [k for k in found if any(sale_path in value for _, value in k[1])]
            assert total(found, "kopilka_confirms_total", channel="online") == 1
            assert total(found, "kopilka_redemptions_total") == 1
            assert total(found, "kopilka_points_spent_total") == 100
            assert total(found, "kopilka_points_accrued_total") == accrued
            assert total(found, "kopilka_returns_total", kind="cancel") == 1
            pool_max = int(os.environ.get("KOPILKA_DB_POOL_MAX", "10"))
            assert total(found, "kopilka_db_pool_connections_max") == 2 * pool_max  # both workers' pools, summed
            assert ("kopilka_outbox_backlog", ()) in found
            assert ("kopilka_outbox_oldest_due_seconds", ()) in found
