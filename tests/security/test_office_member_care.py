"""The back office's heavy support actions and staff management, attacked over real HTTP: nobody merges or erases
a member alone (not even an admin), only admins manage staff, the last admin stays, nothing changes without this
session's CSRF token."""

from __future__ import annotations

import pytest

from loyalty_core import db
from loyalty_core.tables import StaffUser
from tests.factories import Shop, account_balance, make_member
from tests.office.helpers import Office, make_staff


def _approval_ids(html: str, kind: str) -> list[str]:
    rows = html.split('data-testid="approval-')[1:]
    return [r.split('"')[0] for r in rows if kind in r.split("</tr>")[0]]


async def test_nobody_merges_or_erases_a_member_alone_not_even_an_admin(server: str, shop: Shop) -> None:
    twin, keeper, leaving = await make_member(shop, points=40), await make_member(shop, points=5), await make_member(shop, points=90)
    agent, boss, other_boss = await make_staff("support"), await make_staff("admin"), await make_staff("admin")
    async with Office(server) as desk, Office(server) as supervisor, Office(server) as second:
        await desk.signed_in(agent)
        await supervisor.signed_in(boss)
        await second.signed_in(other_boss)
        await desk.get(f"/office/members/{keeper.membership_id}")
        asked = await desk.follow(await desk.post(f"/office/members/{keeper.membership_id}/merge",
                                                  {"duplicate": twin.card, "reason": "same person"}))
        assert "waits for a second person" in asked.text, asked.text[:2000]
        merge_id = _approval_ids((await supervisor.get("/office/approvals")).text, "member.merge")[0]
        await desk.get("/office/approvals")
        assert (await desk.post(f"/office/approvals/{merge_id}/approve")).status_code == 403  # support: no approver
        # an admin's own erasure request waits too, and he cannot approve it himself
        await supervisor.get(f"/office/members/{leaving.membership_id}")
        await supervisor.follow(await supervisor.post(f"/office/members/{leaving.membership_id}/erase",
                                                      {"reason": "asked by e-mail", "confirm": "yes"}))
        erase_id = _approval_ids((await supervisor.get("/office/approvals")).text, "member.erase")[0]
        assert (await supervisor.post(f"/office/approvals/{erase_id}/approve")).status_code == 403
        assert await account_balance(twin.account_id) == (40, 0) and await account_balance(leaving.account_id) == (90, 0)
        await second.get("/office/approvals")
        await second.follow(await second.post(f"/office/approvals/{merge_id}/approve"))
        again = await second.follow(await second.post(f"/office/approvals/{merge_id}/approve"))
        assert "already approved" in again.text  # exactly once
        assert await account_balance(keeper.account_id) == (45, 0)
        await second.follow(await second.post(f"/office/approvals/{erase_id}/approve"))
        assert await account_balance(leaving.account_id) == (0, 0)
        assert (await db.fetchval("SELECT status FROM customer WHERE id = $1", leaving.customer_id)) == "deleted"


async def test_only_admins_manage_staff(server: str) -> None:
    target = await make_staff("support")
    row = await StaffUser.select(StaffUser.id).where(StaffUser.email == target.email).first()
    for role in ("support", "auditor", "marketer", "finance", "import"):
        async with Office(server) as office:
            await office.signed_in(await make_staff(role))
            assert (await office.get("/office/staff")).status_code == 403, role
            for path, form in (("/office/staff", {"email": "x@example.org", "roles": "admin"}),
                               (f"/office/staff/{row['id']}/roles", {"roles": "admin"}),
                               (f"/office/staff/{row['id']}/deactivate", {})):
                assert (await office.post(path, form)).status_code == 403, (role, path)
    async with Office(server) as stranger:
        assert (await stranger.get("/office/staff")).status_code == 303
    assert await db.fetchval("SELECT roles FROM staff_user WHERE id = $1", row["id"]) == ["support"]
    assert await db.fetchval("SELECT count(*) FROM staff_user WHERE email = 'x@example.org'") == 0


async def test_no_csrf_bypass_on_merge_erasure_and_staff(server: str, shop: Shop) -> None:
    one, two = await make_member(shop), await make_member(shop)
    admin = await make_staff("admin")
    target = await make_staff("support")
    row = await StaffUser.select(StaffUser.id).where(StaffUser.email == target.email).first()
    before = await db.fetchval("SELECT count(*) FROM pending_approval")
    async with Office(server) as office:
        await office.signed_in(admin)
        for path, form in ((f"/office/members/{one.membership_id}/merge", {"duplicate": two.card, "reason": "dup"}),
                           (f"/office/members/{one.membership_id}/erase", {"reason": "asked", "confirm": "yes"}),
                           ("/office/staff", {"email": "csrf@example.org", "roles": "admin"}),
                           (f"/office/staff/{row['id']}/roles", {"roles": "admin"}),
                           (f"/office/staff/{row['id']}/deactivate", {})):
            for token in ("", "forged"):
                assert (await office.post(path, form, csrf=token)).status_code == 403, path
    assert await db.fetchval("SELECT count(*) FROM pending_approval") == before
    assert await db.fetchval("SELECT count(*) FROM staff_user WHERE email = 'csrf@example.org'") == 0
    assert await db.fetchval("SELECT roles FROM staff_user WHERE id = $1", row["id"]) == ["support"]
    assert await db.fetchval("SELECT status FROM staff_user WHERE id = $1", row["id"]) == "active"


async def test_the_last_admin_stays_and_nobody_deactivates_themselves(server: str) -> None:
    admin, helper = await make_staff("admin"), await make_staff("support")
    me = await StaffUser.select(StaffUser.id).where(StaffUser.email == admin.email).first()
    other = await StaffUser.select(StaffUser.id).where(StaffUser.email == helper.email).first()
    others = [r["id"] for r in await db.fetch(
        "UPDATE staff_user SET status = 'disabled' WHERE status = 'active' AND 'admin' = ANY(roles) AND id <> $1 "
        "RETURNING id", me["id"])]
    try:
        async with Office(server) as office:
            await office.signed_in(admin)
            await office.get("/office/staff")
            page = await office.follow(await office.post(f"/office/staff/{me['id']}/roles", {"roles": "support"}))
            assert "last active admin" in page.text
            page = await office.follow(await office.post(f"/office/staff/{me['id']}/deactivate"))
            assert "yourself" in page.text
            assert await db.fetchval("SELECT roles FROM staff_user WHERE id = $1", me["id"]) == ["admin"]
            # a second admin, then the first may step down; a deactivated colleague is out at the next click
            await office.follow(await office.post(f"/office/staff/{other['id']}/roles", {"roles": "admin"}))
            async with Office(server) as colleague:
                await colleague.signed_in(helper)
                await office.follow(await office.post(f"/office/staff/{other['id']}/deactivate"))
                assert (await colleague.get("/office/staff")).status_code == 303
            await office.follow(await office.post(f"/office/staff/{other['id']}/reactivate"))
            stepped_down = await office.post(f"/office/staff/{me['id']}/roles", {"roles": "support"})
            assert stepped_down.status_code == 303
            assert await db.fetchval("SELECT roles FROM staff_user WHERE id = $1", me["id"]) == ["support"]
            assert (await office.follow(stepped_down)).status_code == 403  # the staff page is for admins only now
            log = await db.fetch("SELECT action FROM audit_event WHERE actor = $1 AND action LIKE 'staff.%' "
                                 "ORDER BY id", f"staff:{admin.email}")
            assert [r["action"] for r in log][-4:] == ["staff.roles", "staff.deactivated", "staff.activated",
                                                       "staff.roles"]
    finally:
        await db.fetch("UPDATE staff_user SET status = 'active' WHERE id = ANY($1::integer[])", others)


@pytest.mark.parametrize("bad", [{"email": "not an e-mail", "roles": "support"}, {"email": "ok@example.org"},
                                 {"email": "ok2@example.org", "roles": "root"}])
async def test_a_bad_new_staff_form_is_refused_and_creates_nobody(server: str, bad: dict[str, str]) -> None:
    async with Office(server) as office:
        await office.signed_in(await make_staff("admin"))
        await office.get("/office/staff")
        answer = await office.post("/office/staff", bad)
        assert answer.status_code == 422, answer.text[:500]
    assert await db.fetchval("SELECT count(*) FROM staff_user WHERE email = $1", bad["email"]) == 0


async def test_support_sends_a_code_only_to_the_contact_on_file_and_never_sees_it(server: str, shop: Shop,
                                                                                  valkey: object) -> None:
    import re

    from loyalty_core.shopper_auth.otp import read_inbox

    member = await make_member(shop)
    page_of = f"/office/members/{member.membership_id}"
    async with Office(server) as desk, Office(server) as reader:
        await desk.signed_in(await make_staff("support"))
        await desk.get(page_of)
        sent = await desk.follow(await desk.post(page_of + "/send-code", {"channel": "phone"}))
        messages = await read_inbox(valkey, member.phone, limit=1)
        code = re.search(r"\b(\d{6})\b", messages[0].text).group(1)  # type: ignore[union-attr]
        assert code not in sent.text
        for channel in ("email", "sms"):  # no e-mail on file; nonsense
            page = await desk.follow(await desk.post(page_of + "/send-code", {"channel": channel}))
            assert 'class="flash error"' in page.text, channel
        typed = await desk.post(page_of + "/send-code", {"channel": "+79990000000"})  # an address typed in
        assert typed.status_code == 400
        assert [m.text for m in await read_inbox(valkey, member.phone, limit=5)].count(messages[0].text) == 1
        await reader.signed_in(await make_staff("auditor"))
        await reader.get(page_of)
        assert (await reader.post(page_of + "/send-code", {"channel": "phone"})).status_code == 403
    trail = await db.fetch("SELECT after::text AS after FROM audit_event WHERE action = 'member.code_sent' "
                           "AND subject = $1", f"customer:{member.customer_id}")
    assert len(trail) == 1 and code not in trail[0]["after"]
