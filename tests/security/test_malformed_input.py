"""Malformed input on every surface is a 4xx (problem+json, or an HTML page on the website), writes nothing,
and leaves no traceback in the server's log (docs/security-input.md).

One table: a NUL character in any string (body, form, path, query), integers past their column in paths,
bodies and cursors, dates in year 1 or 9999, JSON nested 1 000 deep, numbers sent as strings or floats,
JSON sent as text/plain, a non-ASCII app QR token, a pass update tag past any datetime.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import pytest_asyncio

from backend.admin.auth import create_operator_key
from tests.factories import Shop, count_rows, make_member, make_shop, sale_body, unique
from tests.identity.shopper import Shopper, new_phone
from tests.web.browser import NoJsBrowser, csrf_of

pytestmark = pytest.mark.asyncio(loop_scope="session")

PROBLEM = "application/problem+json"
HTML = "text/html"
INT32_OVER = 2**31  # one past the largest PostgreSQL integer
# every table a request on these surfaces could write to
WRITTEN = ("customer", "membership", "card", "account", "point_lot", "ledger_entry", "sale", "sale_line",
           "sale_return", "return_line", "idempotency_record", "notification", "favourite_category", "push_device",
           "consent", "coupon", "coupon_series", "category", "product", "store", "rules_version")
# 1 000 deep: a body type of fixed shape refuses it at the first level that does not fit (422), an open one
# (a rules document, a batch of raw sales) by its depth (400); msgspec alone would raise RecursionError
NESTED = b"[" * 1000 + b"]" * 1000


def cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"k1:{last_id}".encode()).decode().rstrip("=")


class Actors(msgspec.Struct, kw_only=True):
    shop: Shop
    till: dict[str, str]
    operator: dict[str, str]
    shopper: dict[str, str]
    membership_id: int
    card: str
    browser: Any


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def actors(server: str, db_pool: None) -> AsyncIterator[Actors]:
    shop = await make_shop()
    member = await make_member(shop, points=500)
    key = (await create_operator_key(unique("malformed"), ["admin", "support", "marketer", "import"])).key
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
        await shopper.log_in()
        async with NoJsBrowser(server, program=shop.program_code) as browser:
            await browser.sign_in()
            yield Actors(shop=shop, till=shop.headers, operator={"Authorization": f"Bearer {key}"},
                         shopper=shopper.headers, membership_id=member.membership_id or 0, card=member.card,
                         browser=browser)


def sale(actors: Actors, **change: Any) -> dict[str, Any]:
    body = sale_body(actors.shop, [("milk", 1, 9_990)], card=actors.card)
    line = change.pop("line", {})
    body["lines"][0].update(line)
    body.update(change)
    return body


# (id, who, method, path, request keyword arguments as a function of the actors, expected status(es))
Case = tuple[str, str, str, str, Any, tuple[int, ...]]
ANY_4XX = tuple(range(400, 500))
CASES: list[Case] = [
    # --- the till ---------------------------------------------------------------------------------
    ("pos-identify-nul", "till", "POST", "/pos/v1/identify", lambda a: {"json": {"scan": a.card + "\x00"}}, (422,)),
    ("pos-identify-qr-non-ascii", "till", "POST", "/pos/v1/identify", lambda a: {"json": {"scan": "KQ1.a.b.é"}}, (404,)),
    *[(f"pos-identify-odd-scan-{i}", "till", "POST", "/pos/v1/identify", (lambda scan: lambda a: {"json": {"scan": scan}})(scan),
       ANY_4XX)
      for i, scan in enumerate(["", " ", "+", "+\u0667\u0669\u0669\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667",
                                "KQ1.", "KQ1....", "KQ1.\ud7ff.zz.\u00e9", "\u202e2000", "9" * 4000])],
    ("pos-identify-nested-1000", "till", "POST", "/pos/v1/identify",
     lambda a: {"content": b'{"scan": ' + NESTED + b"}", "headers": {"Content-Type": "application/json"}}, (400, 422)),
    ("pos-identify-text-plain", "till", "POST", "/pos/v1/identify",
     lambda a: {"content": msgspec.json.encode({"scan": a.card}), "headers": {"Content-Type": "text/plain"}}, (415,)),
    ("pos-identify-no-content-type", "till", "POST", "/pos/v1/identify",
     lambda a: {"content": msgspec.json.encode({"scan": a.card})}, (415,)),
    ("pos-confirm-nul-receipt", "till", "POST", "/pos/v1/sales/confirm", lambda a: {"json": sale(a, receipt_id="r\x00")}, (422,)),
    ("pos-confirm-nul-sku", "till", "POST", "/pos/v1/sales/confirm", lambda a: {"json": sale(a, line={"sku": "milk\x00"})}, (422,)),
    ("pos-confirm-price-as-string", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, line={"price": "9990"})}, (422,)),
    ("pos-confirm-price-as-float", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, line={"price": 9990.0, "amount": 9990.0})}, (422,)),
    ("pos-confirm-price-past-bigint", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, line={"price": 2**63, "amount": 2**63})}, (422,)),
    ("pos-confirm-line-no-past-integer", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, line={"line_no": INT32_OVER})}, (422,)),
    ("pos-confirm-business-date-9999", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, business_date="9999-12-31")}, (422,)),
    ("pos-confirm-business-date-0001", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, business_date="0001-01-01")}, (422,)),
    ("pos-confirm-occurred-0001", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, occurred_at="0001-01-01T00:00:00+03:00")}, (422,)),
    ("pos-confirm-occurred-9999", "till", "POST", "/pos/v1/sales/confirm",
     lambda a: {"json": sale(a, occurred_at="9999-12-31T23:59:59+00:00")}, (422,)),
    ("pos-calculate-nested-1000", "till", "POST", "/pos/v1/sales/calculate",
     lambda a: {"content": b'{"lines": ' + NESTED + b"}", "headers": {"Content-Type": "application/json"}}, (400, 422)),
    # a batch refuses the bad item as that item's `rejected` result, never the whole batch (POS_API.md)
    ("pos-batch-nested-1000", "till", "POST", "/pos/v1/sales/batch",
     lambda a: {"content": b'{"sales": [' + NESTED + b"]}", "headers": {"Content-Type": "application/json"}}, (400, 422)),
    ("pos-batch-nul", "till", "POST", "/pos/v1/sales/batch", lambda a: {"json": {"sales": [sale(a, receipt_id="b\x00")]}}, (200,)),
    ("pos-cancel-id-past-integer", "till", "POST", f"/pos/v1/sales/{INT32_OVER}/cancel", lambda a: {}, (404,)),
    ("pos-cancel-id-20-digits", "till", "POST", "/pos/v1/sales/99999999999999999999/cancel", lambda a: {}, (404,)),
    ("pos-return-id-past-integer", "till", "POST", f"/pos/v1/sales/{INT32_OVER}/returns",
     lambda a: {"json": {"return_id": "R-1", "lines": [{"line_no": 1, "quantity": 1}]}}, (404,)),
    ("pos-return-by-receipt-year-1", "till", "POST", "/pos/v1/returns",
     lambda a: {"json": {"original": {"store": a.shop.store_code, "business_date": "0001-01-01", "receipt_id": "x"},
                         "return_id": "R-2", "lines": [{"line_no": 1, "quantity": 1}]}}, (422,)),
    ("pos-return-by-receipt-nul", "till", "POST", "/pos/v1/returns",
     lambda a: {"json": {"original": {"store": a.shop.store_code, "business_date": "2026-11-23", "receipt_id": "x\x00"},
                         "return_id": "R-3", "lines": [{"line_no": 1, "quantity": 1}]}}, (422,)),
    ("pos-register-nul", "till", "POST", "/pos/v1/members",
     lambda a: {"json": {"phone": new_phone(), "card_number": "2000\x00", "name": "Анна"}}, (422,)),
    ("pos-key-non-ascii", "till", "POST", "/pos/v1/identify",
     lambda a: {"json": {"scan": a.card}, "headers": {"Authorization": "Bearer kl\u00e9\u00ff".encode()}}, (401,)),
    # --- the operator ----------------------------------------------------------------------------
    ("admin-key-non-ascii", "operator", "GET", "/admin/v1/coupons/series",
     lambda a: {"headers": {"Authorization": "Bearer ok_\u00e9".encode("latin-1")}}, (401,)),
    ("admin-mass-id-past-integer", "operator", "POST", "/admin/v1/adjustments/mass",
     lambda a: {"json": {"membership_ids": [a.membership_id, INT32_OVER], "points": 5, "reason": "storm"}}, (422,)),
    ("admin-adjust-id-past-integer", "operator", "POST", f"/admin/v1/members/{INT32_OVER}/adjustments",
     lambda a: {"json": {"points": 5, "reason": "storm"}}, (404,)),
    ("admin-adjust-nul-reason", "operator", "POST", "/admin/v1/members/{member}/adjustments",
     lambda a: {"json": {"points": 5, "reason": "storm\x00"}}, (422,)),
    ("admin-adjust-points-as-string", "operator", "POST", "/admin/v1/members/{member}/adjustments",
     lambda a: {"json": {"points": "5", "reason": "storm"}}, (422,)),
    ("admin-adjust-expires-9999", "operator", "POST", "/admin/v1/members/{member}/adjustments",
     lambda a: {"json": {"points": 5, "reason": "storm", "expires_at": "9999-12-31T00:00:00Z"}}, (422,)),
    ("admin-adjust-text-plain", "operator", "POST", "/admin/v1/members/{member}/adjustments",
     lambda a: {"content": b'{"points": 5, "reason": "storm"}', "headers": {"Content-Type": "text/plain"}}, (415,)),
    ("admin-history-id-past-integer", "operator", "GET", f"/admin/v1/members/{INT32_OVER}/history", lambda a: {}, (404,)),
    ("admin-sales-cursor-past-integer", "operator", "GET", "/admin/v1/members/{member}/history/sales",
     lambda a: {"params": {"cursor": cursor(INT32_OVER)}}, (422,)),
    ("admin-ledger-cursor-nul", "operator", "GET", "/admin/v1/members/{member}/history/ledger",
     lambda a: {"params": {"cursor": "\x00"}}, (422,)),
    ("admin-rules-version-past-integer", "operator", "GET", "/admin/v1/programs/{program}/rules/versions/" + str(INT32_OVER),
     lambda a: {}, (404,)),
    ("admin-program-path-nul", "operator", "GET", "/admin/v1/programs/a%00b/rules", lambda a: {}, (422,)),
    ("admin-catalog-nul", "operator", "POST", "/admin/v1/catalog",
     lambda a: {"json": {"categories": [{"code": unique("c") + "\x00", "name": "Dairy"}], "brands": [], "products": []}},
     (422,)),
    ("admin-simulate-nested-1000", "operator", "POST", "/admin/v1/simulate",
     lambda a: {"content": b'{"basket": ' + NESTED + b"}", "headers": {"Content-Type": "application/json"}}, (400,)),
    ("admin-settings-nested-1000", "operator", "PUT", "/admin/v1/programs/{program}/rules/settings",
     lambda a: {"content": b'{"x": ' + NESTED + b"}", "headers": {"Content-Type": "application/json"}}, (400,)),
    # --- the shopper's app -------------------------------------------------------------------------
    ("api-otp-nested-1000-anonymous", "anonymous", "POST", "/api/v1/auth/otp/request",
     lambda a: {"content": b'{"to": ' + NESTED + b"}", "headers": {"Content-Type": "application/json"}}, (400, 422)),
    ("api-otp-nul-anonymous", "anonymous", "POST", "/api/v1/auth/otp/request", lambda a: {"json": {"to": "+7999\x00"}}, (422,)),
    ("api-otp-text-plain-anonymous", "anonymous", "POST", "/api/v1/auth/otp/request",
     lambda a: {"content": msgspec.json.encode({"to": new_phone()}), "headers": {"Content-Type": "text/plain"}}, (415,)),
    ("api-token-non-ascii", "shopper", "GET", "/api/v1/me", lambda a: {"headers": {"Authorization": "Bearer a.\u00e9.b".encode()}}, (401,)),
    ("passkit-token-non-ascii", "anonymous", "GET", "/passkit/v1/passes/pass.dev.kopilka.card/{card}",
     lambda a: {"headers": {"Authorization": "ApplePass \u00e9\u00e9".encode()}}, (401,)),
    ("api-profile-nul", "shopper", "PATCH", "/api/v1/me", lambda a: {"json": {"name": "Анна\x00"}}, (422,)),
    ("api-profile-birth-year-1", "shopper", "PATCH", "/api/v1/me", lambda a: {"json": {"birth_date": "0001-01-01"}}, (422,)),
    ("api-profile-birth-9999", "shopper", "PATCH", "/api/v1/me", lambda a: {"json": {"birth_date": "9999-12-31"}}, (422,)),
    ("api-purchase-id-past-integer", "shopper", "GET", f"/api/v1/purchases/{INT32_OVER}", lambda a: {}, (404,)),
    ("api-purchases-cursor-past-integer", "shopper", "GET", "/api/v1/purchases",
     lambda a: {"params": {"cursor": cursor(INT32_OVER)}}, (200, 422)),
    ("api-history-cursor-nul", "shopper", "GET", "/api/v1/history", lambda a: {"params": {"cursor": "a\x00"}}, (422,)),
    ("api-favourites-nul", "shopper", "PUT", "/api/v1/favourite-categories", lambda a: {"json": {"categories": ["c\x00"]}},
     (422,)),
    ("api-device-id-past-integer", "shopper", "DELETE", f"/api/v1/me/devices/{INT32_OVER}", lambda a: {}, (404,)),
    ("api-card-path-nul", "shopper", "GET", "/api/v1/cards/20%0001/qr.svg", lambda a: {}, (422,)),
    # --- Apple Wallet's web service ----------------------------------------------------------------
    ("passkit-updated-since-20-digits", "anonymous", "GET", "/passkit/v1/devices/d-1/registrations/pass.dev.kopilka.card",
     lambda a: {"params": {"passesUpdatedSince": "99999999999999999999"}}, (422,)),
    ("passkit-log-nul", "anonymous", "POST", "/passkit/v1/log", lambda a: {"json": {"logs": ["x\x00"]}}, (422,)),
    ("passkit-device-path-nul", "anonymous", "POST", "/passkit/v1/devices/d%00/registrations/pass.dev.kopilka.card/1",
     lambda a: {"json": {"pushToken": "ab"}}, (422,)),
    # --- the website: forms and addresses answer an HTML page --------------------------------------
    ("web-profile-nul", "browser", "POST", "/profile", lambda a: {"data": {"name": "Анна\x00", "locale": "ru"}}, (422,)),
    ("web-login-nul", "browser", "POST", "/login", lambda a: {"data": {"to": "+7999\x00"}}, (422,)),
    ("web-favourites-unknown-shape", "browser", "POST", "/favourites", lambda a: {"data": {"category": "x" * 300}}, (422,)),
    ("web-favourites-nul", "browser", "POST", "/favourites", lambda a: {"data": {"category": "c\x00"}}, (422,)),
    ("web-cookies-non-ascii", "visitor", "GET", "/",
     lambda a: {"headers": {"Cookie": "kp_session=\u00e9\u00e9; kp_csrf=\u00e9; kp_lang=\u00e9".encode()}}, (303,)),
    ("web-login-post-cookies-non-ascii", "visitor", "POST", "/login",
     lambda a: {"data": {"to": new_phone(), "_csrf": "\u00e9"},
                "headers": {"Cookie": "kp_session=\u00e9; kp_csrf=\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9".encode()}},
     (403,)),
    ("web-purchase-id-past-integer", "browser", "GET", f"/purchases/{INT32_OVER}", lambda a: {}, (404,)),
    ("web-device-id-past-integer", "browser", "POST", f"/profile/devices/{INT32_OVER}/remove", lambda a: {"data": {}},
     (400, 404, 422)),
    ("web-purchases-cursor-past-integer", "browser", "GET", "/purchases", lambda a: {"params": {"cursor": cursor(INT32_OVER)}},
     (422,)),
    ("web-history-cursor-nul", "browser", "GET", "/history", lambda a: {"params": {"cursor": "\x00"}}, (422,)),
    ("web-card-path-nul", "browser", "POST", "/cards/20%0001/block", lambda a: {"data": {"reason": "lost"}}, (422,)),
]


def _log_path() -> Path | None:
    value = os.environ.get("KOPILKA_TEST_SERVER_LOG")
    return Path(value) if value else None


async def _rows() -> dict[str, int]:
    return {table: await count_rows(table) for table in WRITTEN}


@pytest.mark.parametrize(("who", "method", "path", "request_of", "statuses"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_malformed_input_is_refused_with_nothing_written_and_no_traceback(
    actors: Actors, server: str, who: str, method: str, path: str, request_of: Any, statuses: tuple[int, ...]
) -> None:
    path = path.format(member=actors.membership_id, program=actors.shop.program_code, card=actors.card)
    kwargs: dict[str, Any] = request_of(actors)
    log = _log_path()
    log_offset = log.stat().st_size if log is not None and log.exists() else 0
    before = await _rows()
    if who == "browser":
        browser = actors.browser
        if method == "POST":
            html = (await browser.open("/profile")).text
            kwargs["data"] = {"_csrf": csrf_of(html), **kwargs.get("data", {})}
        response = await browser.http.request(method, path, **kwargs)
    else:
        headers = {"till": actors.till, "operator": actors.operator, "shopper": actors.shopper, "anonymous": {},
                   "visitor": {"Accept": HTML}}[who]
        if who == "shopper":
            kwargs["params"] = {"program": actors.shop.program_code, **kwargs.get("params", {})}
        async with httpx.AsyncClient(base_url=server, timeout=30) as http:
            response = await http.request(method, path, **{**kwargs, "headers": {**headers, **kwargs.get("headers", {})}})

    if response.status_code == 404 and 404 not in statuses and response.text.endswith('"detail":"Not Found"}'):
        pytest.skip(f"{method} {path} is not routed in this build")  # /pos/v1/returns lands with the returns work
    assert response.status_code in statuses, (response.status_code, response.text[:500])
    content_type = response.headers.get("content-type", "")
    # Apple's web service protocol answers a wrong pass token with a bare 401
    bare_passkit_401 = path.startswith("/passkit/") and response.status_code == 401 and not response.content
    if response.status_code >= 400 and not bare_passkit_401:
        on_website = who in ("browser", "visitor")
        assert content_type.startswith(HTML if on_website else PROBLEM), (content_type, response.text[:300])
        if not on_website:
            assert response.json()["detail"]
    assert await _rows() == before, "a refused request wrote rows"
    if log is not None:
        with log.open("rb") as handle:
            handle.seek(log_offset)
            written = handle.read().decode(errors="replace")
        assert "Traceback" not in written, written[-3000:]


async def test_the_website_says_why_in_the_shoppers_language(actors: Actors) -> None:
    browser: NoJsBrowser = actors.browser
    html = (await browser.open("/profile")).text
    refused = await browser.http.post("/profile", data={"_csrf": csrf_of(html), "name": "Анна\x00"},
                                      cookies={"lang": "ru"})
    assert refused.status_code == 422 and "недопустимый символ" in refused.text
    html = (await browser.open("/favourites")).text
    refused = await browser.http.post("/favourites", data={"_csrf": csrf_of(html), "category": "x" * 300})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith(HTML)
