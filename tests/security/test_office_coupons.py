"""Abuse tests of the back office's coupon series (/office/coupons): only marketers and admins reach them (support,
finance, auditors and importers get 403 on every page and action, strangers the sign-in page); every POST needs this
browser's CSRF token; a huge number of codes is refused with a readable message next to the field and nothing is
written; text a marketer types is shown as text."""

from __future__ import annotations

from loyalty_core.office import audit, staff
from loyalty_core.tables import Coupon, CouponSeries
from tests.factories import Shop, make_shop, unique
from tests.office.helpers import Office, make_staff
from tests.office.test_office_coupons import series_form

OUTSIDERS = [role for role in ("support", "finance", "auditor", "import") if role in staff.ROLES]


async def _setting(server: str) -> tuple[Shop, str]:
    shop = await make_shop()
    series = unique("s")
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        assert (await marketer.post("/office/coupons/", series_form(shop.program_code, series))).status_code == 303
    return shop, series


def _paths(series: str) -> list[tuple[str, str]]:
    page = f"/office/coupons/{series}"
    return [("GET", "/office/coupons/"), ("GET", "/office/coupons/new"), ("POST", "/office/coupons/"),
            ("GET", page), ("POST", page + "/generate"), ("GET", page + "/codes.csv")]


async def _codes(series: str) -> int:
    return await Coupon.count().where(Coupon.series.code == series)


async def test_support_finance_auditors_and_importers_get_403_on_every_coupon_page_and_action(server: str) -> None:
    shop, series = await _setting(server)
    for role in OUTSIDERS:
        async with Office(server) as outsider:
            await outsider.signed_in(await make_staff(role))
            for method, path in _paths(series):
                answer = await (outsider.get(path, program=shop.program_code) if method == "GET" else
                                outsider.post(path, series_form(shop.program_code, unique("x")) | {"count": "10"}))
                assert answer.status_code == 403, (role, method, path, answer.status_code)
            home = await outsider.get("/office/")
            assert 'href="/office/coupons"' not in home.text
    assert await _codes(series) == 0
    assert await CouponSeries.count().where(CouponSeries.program.code == shop.program_code) == 1


async def test_a_stranger_gets_the_sign_in_page(server: str) -> None:
    _, series = await _setting(server)
    async with Office(server) as stranger:
        for method, path in _paths(series):
            answer = await (stranger.get(path) if method == "GET" else stranger.post(path, {"count": "10"}))
            if method == "POST":  # no session, no CSRF cookie: refused before the guard
                assert answer.status_code in (303, 403), path
            else:
                assert answer.status_code == 303 and answer.headers["location"].startswith("/office/login"), path
    assert await _codes(series) == 0


async def test_create_and_generate_need_this_browsers_csrf_token(server: str) -> None:
    shop, series = await _setting(server)
    async with Office(server) as marketer, Office(server) as other:
        await marketer.signed_in(await make_staff("marketer"))
        await other.signed_in(await make_staff("marketer"))
        fresh = unique("csrf")
        for token in ("", other.csrf):  # none, and another browser's
            made = await marketer.post("/office/coupons/", series_form(shop.program_code, fresh), csrf=token)
            generated = await marketer.post(f"/office/coupons/{series}/generate", {"count": "10"}, csrf=token)
            assert (made.status_code, generated.status_code) == (403, 403), token[:4]
    assert await CouponSeries.count().where(CouponSeries.code == fresh) == 0
    assert await _codes(series) == 0


async def test_a_huge_number_of_codes_is_refused_readably_and_nothing_is_written(server: str) -> None:
    _, series = await _setting(server)
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        for count in ("100001", "10000000000000000000000", "-5", "0", "ten", "1e9", ""):
            answer = await marketer.post(f"/office/coupons/{series}/generate", {"count": count})
            assert answer.status_code == 422, (count, answer.status_code)
            assert 'data-testid="error-count"' in answer.text and "100" in answer.text, count
        bad_prefix = await marketer.post(f"/office/coupons/{series}/generate", {"count": "3", "prefix": "=cmd|"})
        assert bad_prefix.status_code == 422 and 'data-testid="error-prefix"' in bad_prefix.text
        long = await marketer.post(f"/office/coupons/{series}/generate", {"count": "1" * 5000})
        assert long.status_code == 400
    assert await _codes(series) == 0
    assert [e.action for e in await audit.events_of(f"coupon_series:{series}")] == ["coupon_series.create"]


async def test_a_series_name_is_shown_as_text_and_unknown_series_are_404(server: str) -> None:
    shop = await make_shop()
    series = unique("xss")
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        made = await marketer.post("/office/coupons/", series_form(shop.program_code, series,
                                                                    name='<script>alert(1)</script>'))
        page = await marketer.follow(made)
        assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
        for path in ("/office/coupons/nope-nope", "/office/coupons/nope-nope/codes.csv"):
            assert (await marketer.get(path)).status_code == 404
        assert (await marketer.post("/office/coupons/nope-nope/generate", {"count": "5"})).status_code == 404
        assert (await marketer.get("/office/coupons/a%27b")).status_code in (400, 404)
