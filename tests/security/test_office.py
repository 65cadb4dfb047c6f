"""Abuse tests of the back office (/office): strangers, roles, CSRF, lockout, one-time codes, four eyes, the
audit log nobody edits, and OIDC staff whose roles come from the provider."""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest

from backend.security_headers import CSP
from loyalty_core.office import audit
from tests.factories import Shop, make_member
from tests.office.helpers import Office, make_staff

PAGES = ["/office/", "/office/members?q=anna", "/office/approvals", "/office/audit", "/office/settings"]


async def test_a_stranger_gets_the_sign_in_page_for_every_page_and_action(server: str, shop: Shop) -> None:
    member = await make_member(shop, points=10)
    async with Office(server) as stranger:
        for path in [*PAGES, f"/office/members/{member.membership_id}"]:
            answer = await stranger.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/office/login?next="), path
        login = await stranger.get("/office/login")
        assert login.status_code == 200 and 'name="password"' in login.text and 'name="code"' in login.text
        assert login.headers["content-security-policy"] == CSP
        for path in (f"/office/members/{member.membership_id}/adjust", f"/office/members/{member.membership_id}/cards/"
                     f"{member.card}/block", "/office/settings", "/office/approvals/1/approve"):
            answer = await stranger.post(path, {"points": "100000", "reason": "Goodwill"})
            assert answer.status_code == 303 and answer.headers["location"].startswith("/office/login"), path


@pytest.mark.parametrize("role, refused", [
    ("marketer", ["/office/members?q=anna", "/office/approvals", "/office/audit", "/office/settings"]),
    ("import", ["/office/members?q=anna", "/office/audit", "/office/settings"]),
    ("support", ["/office/audit", "/office/settings"]),
    ("auditor", ["/office/settings"]),
])
async def test_each_role_is_refused_the_pages_of_other_roles(server: str, shop: Shop, role: str,
                                                             refused: list[str]) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff(role))
        for path in refused:
            answer = await office.get(path)
            assert answer.status_code == 403 and 'data-testid="error"' in answer.text, (role, path)
        assert (await office.get("/office/")).status_code == 200


async def test_an_auditor_reads_but_cannot_change_anything(server: str, shop: Shop, db_pool) -> None:
    member = await make_member(shop, points=10)
    async with Office(server) as office:
        await office.signed_in(await make_staff("auditor"))
        page = await office.get(f"/office/members/{member.membership_id}")
        assert page.status_code == 200 and 'action="/office/members' not in page.text  # no forms to act
        base = f"/office/members/{member.membership_id}"
        for path, body in ((base + "/adjust", {"points": "5", "reason": "Goodwill"}),
                           (base + f"/cards/{member.card}/block", {"reason": "Lost card"}),
                           (base + "/birth-date", {"birth_date": "1990-01-01", "reason": "because"}),
                           ("/office/settings", {"points": "0"}), ("/office/approvals/1/approve", {})):
            assert (await office.post(path, body)).status_code == 403, path
        page = await office.get(base)
        assert 'data-testid="balance">10<' in page.text and "blocked" not in page.text


async def test_no_route_edits_or_deletes_the_audit_log(server: str, shop: Shop, db_pool) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff("admin", "auditor"))
        before = await audit.search(limit=1)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            answer = await office.client.request(method, "/office/audit", data={"_csrf": office.csrf},
                                                 headers={"x-csrf-token": office.csrf})
            assert answer.status_code in (404, 405), (method, answer.status_code)
        event = before[0].id
        for path in (f"/office/audit/{event}", f"/office/audit/{event}/delete"):
            assert (await office.post(path)).status_code in (404, 405)
        assert (await audit.search(limit=1))[0].id >= event


async def test_no_csrf_bypass_nothing_changes_without_this_sessions_token(server: str, shop: Shop) -> None:
    member = await make_member(shop, points=10)
    block = f"/office/members/{member.membership_id}/cards/{member.card}/block"
    async with Office(server) as desk, Office(server) as other:
        await desk.signed_in(await make_staff("support"))
        await other.signed_in(await make_staff("support"))
        await desk.get(f"/office/members/{member.membership_id}")
        await other.get(f"/office/members/{member.membership_id}")
        for token in ("", "0" * 64, other.csrf, desk.csrf + "x"):
            answer = await desk.post(block, {"reason": "Lost card"}, csrf=token)
            assert answer.status_code == 403, token
        # a cross-site form post carries no SameSite=Strict cookie and no token: the sign-in page, nothing done
        async with httpx.AsyncClient(base_url=server) as foreign:
            assert (await foreign.post(block, data={"reason": "Lost card"})).status_code == 303
        page = await desk.get(f"/office/members/{member.membership_id}")
        assert ">active<" in page.text.replace(" ", "") or 'card-status">active' in page.text


async def test_the_session_cookie_is_httponly_strict_and_scoped_to_the_office(server: str, shop: Shop) -> None:
    agent = await make_staff("support")
    async with Office(server) as office:
        answer = await office.sign_in(agent)
        cookie = next(v for v in answer.headers.get_list("set-cookie") if v.startswith("kp_office="))
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/office" in lowered


async def test_wrong_passwords_or_codes_lock_the_account_and_a_code_works_once(server: str, shop: Shop) -> None:
    agent = await make_staff("support")
    async with Office(server) as office:
        wrong_password = await office.sign_in(agent, password="not the password at all")
        wrong_code = await office.sign_in(agent, code="000000" if agent.code() != "000000" else "111111")
        assert wrong_password.status_code == wrong_code.status_code == 401
        assert wrong_password.text.count("Неверный") == wrong_code.text.count("Неверный") == 1  # one answer for both
        for _ in range(3):
            assert (await office.sign_in(agent, password="still wrong")).status_code == 401
        locked = await office.sign_in(agent)  # the right password and code, but locked
        assert locked.status_code == 429 and "kp_office=" not in locked.headers.get("set-cookie", "")
    other = await make_staff("support")
    async with Office(server) as first, Office(server) as second:
        code = other.code()
        assert (await first.sign_in(other, code=code)).status_code == 303
        assert (await second.sign_in(other, code=code)).status_code == 401  # replayed


async def test_nobody_approves_their_own_adjustment(server: str, shop: Shop) -> None:
    member = await make_member(shop)
    boss = await make_staff("admin")
    async with Office(server) as office:
        await office.signed_in(boss)
        await office.get(f"/office/members/{member.membership_id}")
        page = await office.follow(await office.post(f"/office/members/{member.membership_id}/adjust",
                                                     {"points": "20000000", "reason": "Goodwill"}))
        assert 'data-testid="waiting"' in page.text
        listing = await office.get("/office/approvals")
        mine = next(chunk.split('"')[0] for chunk in listing.text.split('data-testid="approval-')[1:]
                    if boss.email in chunk)
        refused = await office.post(f"/office/approvals/{mine}/approve")
        assert refused.status_code == 403
        page = await office.get(f"/office/members/{member.membership_id}")
        assert 'data-testid="balance">0<' in page.text


async def _oidc_sign_in(server: str, provider, user: dict) -> Office:
    provider.next_user = user
    office = Office(server)
    await office.__aenter__()
    start = await office.get("/office/login/oidc")
    assert start.status_code == 303, start.text[-800:]
    async with httpx.AsyncClient() as at_provider:
        back = await at_provider.get(start.headers["location"])
    callback = urlparse(back.headers["location"])
    assert callback.path == "/office/login/oidc/callback"
    office.last = await office.get(callback.path + "?" + callback.query)  # type: ignore[attr-defined]
    return office


async def test_oidc_staff_get_the_roles_the_provider_gives_and_nothing_without_one(server: str, shop: Shop,
                                                                                   oidc_provider) -> None:
    import secrets

    email = f"oidc-staff-{secrets.token_hex(4)}@example.org"
    office = await _oidc_sign_in(server, oidc_provider, {"sub": email, "email": email, "email_verified": True,
                                                         "kopilka_roles": ["auditor"]})
    try:
        assert office.last.status_code == 303, office.last.text[-800:]  # type: ignore[attr-defined]
        assert (await office.get("/office/audit")).status_code == 200
        assert (await office.get("/office/settings")).status_code == 403
    finally:
        await office.__aexit__()
    nobody = f"shopper-{secrets.token_hex(4)}@example.org"
    office = await _oidc_sign_in(server, oidc_provider, {"sub": nobody, "email": nobody, "email_verified": True})
    try:
        assert office.last.status_code == 401  # type: ignore[attr-defined]
        assert (await office.get("/office/")).status_code == 303
    finally:
        await office.__aexit__()
    # a forged callback (no flow started in this browser) opens nothing
    async with Office(server) as forger:
        forged = await forger.get("/office/login/oidc/callback", code="x", state="y")
        assert forged.status_code == 400 and "kp_office=" not in forged.headers.get("set-cookie", "")


async def test_oidc_staff_without_a_roles_claim_get_the_roles_of_their_staff_row(server: str, shop: Shop, db_pool,
                                                                                 oidc_provider) -> None:
    import datetime as dt
    import secrets

    from loyalty_core.office import staff

    email = f"mapped-{secrets.token_hex(4)}@example.org"
    await staff.create(email, ["support"], None, dt.datetime.now(dt.UTC))  # kopilka staff create --oidc
    office = await _oidc_sign_in(server, oidc_provider, {"sub": email, "email": email, "email_verified": True})
    try:
        assert office.last.status_code == 303  # type: ignore[attr-defined]
        assert (await office.get("/office/members", q="anna")).status_code == 200
        assert (await office.get("/office/audit")).status_code == 403
    finally:
        await office.__aexit__()
    # an OIDC-only account has no password: the password form never opens it
    async with Office(server) as guesser:
        await guesser.get("/office/login")
        refused = await guesser.post("/office/login", {"email": email, "password": "", "code": "123456"})
        assert refused.status_code == 401
