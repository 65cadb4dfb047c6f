"""The back office's support story over real HTTP (no JavaScript): sign-in with password + TOTP, finding a
member by phone notation, card, e-mail and a misspelt name, the member's page, card actions, adjustments with
four eyes, the birth-date correction, and the audit log that records each with who, what, reason and from where."""

from __future__ import annotations

import secrets

from loyalty_core.tables import Customer
from tests.factories import Shop, make_member
from tests.office.helpers import Office, make_staff

SURNAMES = ["Виноградова", "Колокольцева", "Земляникина", "Черноморцева", "Одуванчикова"]


async def named_member(shop: Shop, points: int = 0):
    member = await make_member(shop, points=points)
    surname = secrets.choice(SURNAMES) + secrets.token_hex(2).translate(str.maketrans("0123456789abcdef", "абвгдеёжзиклмноп"))
    email = f"m{secrets.token_hex(4)}@example.org"
    await Customer.update({Customer.name: f"Марина {surname}", Customer.email: email}).where(
        Customer.id == member.customer_id)
    return member, surname, email


async def test_support_finds_a_member_every_way_and_replaces_a_lost_card(server: str, shop: Shop) -> None:
    member, surname, email = await named_member(shop, points=120)
    agent = await make_staff("support")
    async with Office(server) as office:
        await office.signed_in(agent)
        national = "8 (" + member.phone[2:5] + ") " + member.phone[5:8] + "-" + member.phone[8:10] + "-" + member.phone[10:]
        misspelt = surname[:3] + surname[4:]  # one letter lost
        for query in (national, member.phone, member.card, email.upper(), misspelt, "марина " + misspelt):
            found = await office.get("/office/members", q=query)
            assert found.status_code == 200 and f"/office/members/{member.membership_id}" in found.text, query
        page = await office.get(f"/office/members/{member.membership_id}")
        assert page.status_code == 200 and surname in page.text and member.card in page.text
        replaced = await office.post(f"/office/members/{member.membership_id}/cards/{member.card}/replace",
                                     {"reason": "Lost card", "note": "lost on the bus"})
        page = await office.follow(replaced)
        assert 'data-testid="flash"' in page.text and "card.replace" in page.text, page.text[:2000]
        assert "replaced" in page.text
    auditor = await make_staff("auditor")
    async with Office(server) as office:
        await office.signed_in(auditor)
        log = await office.get("/office/audit", action="card.replace", subject=f"customer:{member.customer_id}")
        assert log.status_code == 200 and agent.email in log.text and "lost on the bus" in log.text
        assert "127.0.0.1" in log.text  # from where


async def test_an_adjustment_above_the_limit_waits_for_a_second_person(server: str, shop: Shop) -> None:
    member, _, _ = await named_member(shop)
    agent, boss, other_boss = await make_staff("support"), await make_staff("admin"), await make_staff("admin")
    page_of = f"/office/members/{member.membership_id}"
    async with Office(server) as desk, Office(server) as supervisor, Office(server) as second:
        await desk.signed_in(agent)
        await supervisor.signed_in(boss)
        await second.signed_in(other_boss)
        await supervisor.follow(await supervisor.post("/office/settings", {"points": "1000"}))
        small = await desk.follow(await desk.post(page_of + "/adjust", {"points": "50", "reason": "Goodwill"}))
        assert 'data-testid="balance">50<' in small.text, small.text[:3000]
        big = await desk.follow(await desk.post(page_of + "/adjust", {"points": "5000", "reason": "Lost purchase",
                                                                      "note": "receipt 77"}))
        assert 'data-testid="waiting"' in big.text and 'data-testid="balance">50<' in big.text, big.text[:3000]
        approval = (await supervisor.get("/office/approvals")).text.split('data-testid="approval-')[1].split('"')[0]
        await desk.get("/office/approvals")
        assert (await desk.post(f"/office/approvals/{approval}/approve")).status_code == 403  # support: not an approver
        # an admin's own big adjustment waits too, and he cannot approve it himself
        await supervisor.get(page_of)
        await supervisor.follow(await supervisor.post(page_of + "/adjust", {"points": "-2000", "reason": "Fraud"}))
        mine = [a for a in (await supervisor.get("/office/approvals")).text.split('data-testid="approval-')[1:]]
        own = next(a.split('"')[0] for a in mine if boss.email in a)
        refused = await supervisor.post(f"/office/approvals/{own}/approve")
        assert refused.status_code == 403, refused.text[:500]
        await second.get("/office/approvals")
        done = await second.follow(await second.post(f"/office/approvals/{approval}/approve"))
        assert done.status_code == 200 and 'data-testid="flash"' in done.text
        again = await second.follow(await second.post(f"/office/approvals/{approval}/approve"))
        assert "already approved" in again.text
        await second.follow(await second.post(f"/office/approvals/{own}/reject", {"reason": "not like this"}))
        page = await desk.get(page_of)
        assert 'data-testid="balance">5' in page.text and "5\u00a0050" in page.text or "5 050" in page.text \
            or "5050" in page.text, page.text[:3000]
        await supervisor.follow(await supervisor.post("/office/settings", {"points": "10000"}))
    auditor = await make_staff("auditor")
    async with Office(server) as office:
        await office.signed_in(auditor)
        log = await office.get("/office/audit", subject=f"approval:{approval}")
        assert "approval.requested" in log.text and "approval.approved" in log.text and other_boss.email in log.text


async def test_support_corrects_a_birth_date_with_a_reason(server: str, shop: Shop) -> None:
    member, _, _ = await named_member(shop)
    agent = await make_staff("support")
    async with Office(server) as desk:
        await desk.signed_in(agent)
        await desk.get(f"/office/members/{member.membership_id}")
        page = await desk.follow(await desk.post(f"/office/members/{member.membership_id}/birth-date",
                                                 {"birth_date": "1985-03-04", "reason": "passport shown"}))
        assert "customer.birth_date" in page.text and "passport shown" in page.text
        refused = await desk.follow(await desk.post(f"/office/members/{member.membership_id}/adjust",
                                                    {"points": "abc", "reason": "Goodwill"}))
        assert 'role="alert"' in refused.text


async def test_a_staff_member_signs_out_and_the_session_is_gone(server: str, shop: Shop) -> None:
    agent = await make_staff("support")
    async with Office(server) as desk:
        await desk.signed_in(agent)
        cookie = desk.client.cookies.get("kp_office")
        out = await desk.post("/office/logout")
        assert out.status_code == 303 and out.headers["location"] == "/office/login"
        desk.client.cookies.set("kp_office", cookie, path="/office")
        again = await desk.get("/office/members")
        assert again.status_code == 303 and again.headers["location"].startswith("/office/login")


async def test_an_approved_write_off_that_no_longer_fits_fails_and_moves_nothing(http, shop: Shop) -> None:
    """Approved after the member spent the points: the approval is `failed` with the problem, the balance stays."""
    from loyalty_core.setup.keys import create_operator_key
    from tests.factories import unique

    member = await make_member(shop, points=30)
    desk = {"Authorization": f"Bearer {(await create_operator_key(unique('desk'), ['support'])).key}"}
    boss = {"Authorization": f"Bearer {(await create_operator_key(unique('boss'), ['admin'])).key}"}
    asked = await http.post(f"/admin/v1/members/{member.membership_id}/adjustments", headers=desk,
                            json={"points": -20_000, "reason": "fraud"})
    assert asked.status_code == 202, asked.text
    decided = await http.post(f"/admin/v1/approvals/{asked.json()['approval_id']}/approve", headers=boss)
    assert decided.status_code == 200 and decided.json()["status"] == "failed", decided.text
    assert decided.json()["result"]["problem"]["status"] in (409, 422)  # not enough points
    history = await http.get(f"/admin/v1/members/{member.membership_id}/history", headers=desk)
    assert history.json()["balance"]["active"] == 30
    listed = await http.get("/admin/v1/approvals", headers=desk)
    assert all(a["id"] != asked.json()["approval_id"] for a in listed.json())


async def test_a_mass_adjustment_above_the_limit_waits_as_one_approval(http, shop: Shop) -> None:
    from loyalty_core.setup.keys import create_operator_key
    from tests.factories import unique

    first, second = await make_member(shop), await make_member(shop)
    desk = {"Authorization": f"Bearer {(await create_operator_key(unique('desk'), ['support'])).key}"}
    boss = {"Authorization": f"Bearer {(await create_operator_key(unique('boss'), ['admin'])).key}"}
    body = {"membership_ids": [first.membership_id, second.membership_id], "points": 50_000, "reason": "storm"}
    asked = await http.post("/admin/v1/adjustments/mass", headers=desk, json=body)
    assert asked.status_code == 202 and asked.headers["location"].endswith(str(asked.json()["approval_id"])), asked.text
    one = await http.get(asked.headers["location"], headers=desk)
    assert one.json()["status"] == "pending" and one.json()["kind"] == "points.adjust_many"
    done = await http.post(f"/admin/v1/approvals/{asked.json()['approval_id']}/approve", headers=boss)
    assert done.json()["status"] == "approved" and done.json()["result"]["done"] == 2, done.text
    for member in (first, second):
        history = await http.get(f"/admin/v1/members/{member.membership_id}/history", headers=desk)
        assert history.json()["balance"]["active"] == 50_000


async def test_the_office_speaks_english_when_asked(server: str, shop: Shop) -> None:
    agent = await make_staff("support")
    async with Office(server) as desk:
        await desk.signed_in(agent)
        switched = await desk.get("/office/lang/en", next="/office/members")
        assert switched.status_code == 303 and switched.headers["location"] == "/office/members"
        page = await desk.get("/office/members")
        assert '<html lang="en">' in page.text and "Find a member" in page.text
        foreign = await desk.get("/office/lang/en", next="https://evil.example/")
        assert foreign.headers["location"] == "/office/"
