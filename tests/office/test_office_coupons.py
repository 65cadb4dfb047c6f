"""The marketer's coupon series in the back office, over real HTTP and PostgreSQL: a series refused with its
messages next to the fields, a personal series created and N codes generated (both audited), a till sale using one
code shown as a redemption (store, receipt), the codes as CSV (BOM, formula-looking codes neutralised)."""

from __future__ import annotations

import csv
import io

import httpx
import msgspec

from loyalty_core.engine import ProgramRules
from loyalty_core.office import audit
from loyalty_core.tables import Coupon, CouponSeries
from tests.factories import basic_rules, make_member, make_shop, sale_body, unique
from tests.office.helpers import Office, make_staff


def _rules(series: str) -> ProgramRules:
    return msgspec.convert({**msgspec.to_builtins(basic_rules()), "groups": [{
        "code": "coupons", "name": "Coupons", "stage": "discount",
        "rules": [{"code": "ten-off", "name": "10% with a coupon", "effect": {"kind": "percent_discount", "bp": 1000},
                   "target": {"coupon_series": [series]}}]}]}, ProgramRules)


def series_form(program: str, code: str, **extra: str) -> dict[str, str]:
    return {"program": program, "code": code, "name": "Минус 10% на сыр", "kind": "personal", "promo_code": "",
            "max_uses_per_code": "1", "max_uses_per_member": "1", "valid_from": "", "valid_to": "", **extra}


async def test_a_marketer_creates_a_series_generates_codes_and_sees_a_redemption(server: str) -> None:
    series = unique("cheese")
    shop = await make_shop(_rules(series))
    shopper = await make_member(shop)
    async with Office(server) as marketer:
        who = await make_staff("marketer")
        await marketer.signed_in(who)
        listing = await marketer.get("/office/coupons/", program=shop.program_code)
        assert listing.status_code == 200 and 'data-testid="new-series"' in listing.text

        negative = await marketer.post("/office/coupons/", series_form(shop.program_code, series, max_uses_per_code="-1"))
        assert negative.status_code == 422 and 'data-testid="error-max_uses_per_code"' in negative.text
        shared = await marketer.post("/office/coupons/", series_form(shop.program_code, series, kind="shared"))
        assert shared.status_code == 422 and 'data-testid="error-promo_code"' in shared.text
        dates = await marketer.post("/office/coupons/", series_form(shop.program_code, series, valid_from="2026-05-02",
                                                                     valid_to="2026-05-01"))
        assert dates.status_code == 422 and 'data-testid="error-valid_from"' in dates.text
        assert await CouponSeries.count().where(CouponSeries.code == series) == 0

        made = await marketer.post("/office/coupons/", series_form(shop.program_code, series, valid_to="2030-12-31"))
        assert made.status_code == 303 and made.headers["location"] == f"/office/coupons/{series}"
        clash = await marketer.post("/office/coupons/", series_form(shop.program_code, series))
        assert clash.status_code == 409 and 'data-testid="error-code"' in clash.text

        generated = await marketer.post(f"/office/coupons/{series}/generate", {"count": "5", "prefix": "ch"})
        assert generated.status_code == 303
        page = await marketer.follow(generated)
        assert 'data-testid="issued">5<' in page.text and "+5" in page.text
        codes = [r["code"] for r in await Coupon.select(Coupon.code).where(Coupon.series.code == series)]
        assert len(codes) == 5 and all(c.startswith("CH") for c in codes)

        sale = sale_body(shop, [("cheese", 1, 100_000)], card=shopper.card, coupons=[codes[0]])
        async with httpx.AsyncClient(base_url=server, timeout=30) as till:
            sold = await till.post("/pos/v1/sales/confirm", headers=shop.headers, json=sale)
        assert sold.status_code == 200 and sold.json()["totals"]["discount"] == 10_000, sold.text

        page = await marketer.get(f"/office/coupons/{series}")
        assert 'data-testid="redeemed">1<' in page.text
        assert codes[0] in page.text and shop.store_code in page.text and sale["receipt_id"] in page.text
        listing = await marketer.get("/office/coupons/", program=shop.program_code)
        assert f'data-testid="issued-{series}">5<' in listing.text and f'data-testid="redeemed-{series}">1<' in listing.text

        export = await marketer.client.get(f"/office/coupons/{series}/codes.csv")
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        assert export.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
        assert rows[0][0] == "Код" and sorted(r[0] for r in rows[1:]) == sorted(codes)

    events = await audit.events_of(f"coupon_series:{series}")
    assert [e.action for e in events] == ["coupon_series.generate", "coupon_series.create"]
    assert events[0].after == {"codes": 5, "generated": 5, "prefix": "ch"} and events[0].before == {"codes": 0}
    assert events[1].after["personal"] is True and who.email in events[1].actor


async def test_a_shared_promo_code_that_looks_like_a_formula_is_neutralised_in_the_csv(server: str) -> None:
    shop = await make_shop()
    series = unique("promo")
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        made = await marketer.post("/office/coupons/", series_form(shop.program_code, series, kind="shared",
                                                                    promo_code="-1-SALE", max_uses_per_code="0"))
        assert made.status_code == 303, made.text[-800:]
        page = await marketer.follow(made)
        assert 'data-testid="generate-form"' not in page.text  # one shared code: nothing to generate
        refused = await marketer.post(f"/office/coupons/{series}/generate", {"count": "10"})
        assert refused.status_code == 409
        export = await marketer.client.get(f"/office/coupons/{series}/codes.csv")
        rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
        assert [r[0] for r in rows[1:]] == ["'-1-SALE"]
