"""Logging in through an OpenID Connect provider (the test's own, speaking the real protocol)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx

from tests.identity.shopper import Shopper, new_phone


async def _round_trip(http, shop, provider, user: dict) -> httpx.Response:
    provider.next_user = user
    start = await http.get("/api/v1/auth/oidc/login", params={"program": shop.program_code})
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    assert authorize.startswith(provider.issuer + "/authorize")
    query = parse_qs(urlparse(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    async with httpx.AsyncClient() as browser:
        back = await browser.get(authorize)
    assert back.status_code in (302, 307)
    callback = urlparse(back.headers["location"])
    return await http.get(callback.path + "?" + callback.query)


async def test_oidc_login_registers_then_finds_the_customer_by_verified_email(http, shop, oidc_provider) -> None:
    email = f"oidc{new_phone()[-7:]}@example.org"
    user = {"sub": "u-" + email, "email": email, "email_verified": True, "name": "Olga"}
    first = await _round_trip(http, shop, oidc_provider, user)
    assert first.status_code == 200, first.text
    assert first.json()["new_customer"]
    me = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {first.json()['access_token']}"})
    assert me.json()["email"] == email and me.json()["name"] == "Olga"
    # the same person later logs in by e-mail code: one customer
    by_code = Shopper(http=http, to=email, program=shop.program_code)
    assert (await by_code.log_in())["customer_id"] == first.json()["customer_id"]
    second = await _round_trip(http, shop, oidc_provider, user)
    assert second.json()["customer_id"] == first.json()["customer_id"] and not second.json()["new_membership"]


async def test_oidc_refuses_unverified_contacts_bad_tokens_and_replayed_state(http, shop, oidc_provider) -> None:
    unverified = await _round_trip(http, shop, oidc_provider, {"sub": "x", "email": "victim@example.org", "email_verified": False})
    assert unverified.status_code == 401 and unverified.json()["type"].endswith("/oidc-failed")
    for tamper in ("audience", "signature", "nonce"):
        oidc_provider.tamper = tamper
        response = await _round_trip(http, shop, oidc_provider, {"sub": "y", "email": "y@example.org", "email_verified": True})
        assert response.status_code == 401, tamper
    replay = await http.get("/api/v1/auth/oidc/callback", params={"code": "abc", "state": "never-issued"})
    assert replay.status_code == 401
