"""Merging a member registered twice and erasing a member on request, over real PostgreSQL: support proposes,
another admin approves once, the ledger moves or forfeits the points, and the trail says what happened."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from loyalty_core import db
from loyalty_core.errors import Conflict, DomainError, ValidationFailed
from loyalty_core.ledger.verify import verify_all
from loyalty_core.office import approvals, audit, member_care
from loyalty_core.office.approvals import Actor
from loyalty_core.tables import Customer
from tests.factories import Shop, account_balance, make_member, make_shop, sale_body

UTC = dt.UTC
AGENT = Actor(name="staff:agent@example.org", ref="staff:901", origin="10.0.0.1")
BOSS = Actor(name="staff:boss@example.org", ref="staff:902", origin="10.0.0.2")


async def _ours(account_ids: list[int]) -> list[object]:
    ours = {f"account {a}" for a in account_ids}
    return [v for v in await verify_all() if v.subject in ours or v.subject.split(" lot ")[0] in ours]


async def test_a_member_registered_twice_is_merged_once_with_cards_points_and_purchases(server: str, shop: Shop) -> None:
    now = dt.datetime.now(UTC)
    twin = await make_member(shop, points=700)
    keeper = await make_member(shop, points=300)
    await Customer.update({Customer.phone: None, Customer.email: "keeper@example.org"}).where(
        Customer.id == keeper.customer_id)
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        sold = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                               json=sale_body(shop, [("cheese", 1, 100_000)], card=twin.card))
        assert sold.status_code == 200, sold.text
    pending = await member_care.propose_merge(twin.membership_id, keeper.membership_id, "same person, two phones",
                                              AGENT, now)
    assert await account_balance(keeper.account_id) == (300, 0)  # nothing moves before the second person
    with pytest.raises(approvals.SelfApproval):
        await approvals.approve(pending.approval_id, AGENT, now)
    done = await approvals.approve(pending.approval_id, BOSS, now)
    assert done.status == "approved", done.result
    moved = done.result["moved"]
    assert moved["cards"] == [twin.card] and moved["sales"] == 1
    assert moved["contacts"] == ["phone"]
    active, pending_points = await account_balance(keeper.account_id)
    assert active == 1000 and pending_points > 0  # the sale's accrual waits in pending, dates kept
    assert moved["points"] == 700 + pending_points
    assert await account_balance(twin.account_id) == (0, 0)
    sale = await db.fetchrow("SELECT membership, account FROM sale WHERE id = $1", sold.json()["sale_id"])
    assert (sale["membership"], sale["account"]) == (keeper.membership_id, keeper.account_id)
    card = await db.fetchrow("SELECT membership, status FROM card WHERE number = $1", twin.card)
    assert (card["membership"], card["status"]) == (keeper.membership_id, "active")
    assert (await db.fetchrow("SELECT status FROM membership WHERE id = $1", twin.membership_id))["status"] == "closed"
    kept = await db.fetchrow("SELECT phone FROM customer WHERE id = $1", keeper.customer_id)
    assert kept["phone"] == twin.phone
    assert await _ours([twin.account_id, keeper.account_id]) == []
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:  # a purchase made before the merge comes back
        returned = await http.post(f"/pos/v1/sales/{sold.json()['sale_id']}/returns", headers=shop.headers,
                                   json={"return_id": "R-merge", "lines": [{"line_no": 1, "quantity": 1}]})
        assert returned.status_code == 200, returned.text
    after_return = await db.fetchrow("SELECT active, pending, debt FROM account WHERE id = $1", keeper.account_id)
    assert (after_return["active"], after_return["pending"], after_return["debt"]) == (1000, 0, 0), dict(after_return)
    assert await _ours([twin.account_id, keeper.account_id]) == []
    with pytest.raises(Conflict):  # exactly once
        await approvals.approve(pending.approval_id, BOSS, now)
    trail = await audit.events_of(f"membership:{keeper.membership_id}")
    assert [e.action for e in trail][:1] == ["member.merged"] and trail[0].after["points"] == moved["points"]
    assert trail[0].actor == BOSS.name and trail[0].reason == "same person, two phones"


async def test_a_merge_is_refused_across_programs_with_waiting_requests_or_into_a_deleted_member(shop: Shop) -> None:
    now = dt.datetime.now(UTC)
    one, two = await make_member(shop, points=10), await make_member(shop)
    elsewhere = await make_member(await make_shop())
    with pytest.raises(ValidationFailed, match="different programs"):
        await member_care.propose_merge(one.membership_id, elsewhere.membership_id, "same person", AGENT, now)
    with pytest.raises(ValidationFailed, match="itself"):
        await member_care.propose_merge(one.membership_id, one.membership_id, "same person", AGENT, now)
    await Customer.update({Customer.status: "deleted"}).where(Customer.id == two.customer_id)
    with pytest.raises(ValidationFailed, match="deleted"):
        await member_care.propose_merge(one.membership_id, two.membership_id, "same person", AGENT, now)
    three = await make_member(shop)
    big = await approvals.file("points.adjust", f"membership:{one.membership_id}", {}, 50_000, "Goodwill", AGENT, now)
    with pytest.raises(member_care.MemberBusy):
        await member_care.propose_merge(one.membership_id, three.membership_id, "same person", AGENT, now)
    await approvals.reject(big.approval_id, BOSS, "no", now)
    pending = await member_care.propose_merge(one.membership_id, three.membership_id, "same person", AGENT, now)
    with pytest.raises(member_care.MemberBusy):  # one request at a time per member
        await member_care.propose_erasure(three.membership_id, "asked by phone", AGENT, now)
    # the target was deleted while the merge waited: the approval fails, nothing moves
    await Customer.update({Customer.status: "deleted"}).where(Customer.id == three.customer_id)
    failed = await approvals.approve(pending.approval_id, BOSS, now)
    assert failed.status == "failed" and "deleted" in failed.result["problem"]["detail"]
    assert await account_balance(one.account_id) == (10, 0)


async def test_erasure_on_request_forfeits_points_through_the_ledger_and_forgets_the_person(shop: Shop) -> None:
    now = dt.datetime.now(UTC)
    member = await make_member(shop, points=450)
    await Customer.update({Customer.email: "erase-me@example.org", Customer.name: "Ольга Стёркина"}).where(
        Customer.id == member.customer_id)
    pending = await member_care.propose_erasure(member.membership_id, "asked by e-mail, ticket 5", AGENT, now)
    with pytest.raises(approvals.SelfApproval):
        await approvals.approve(pending.approval_id, AGENT, now)
    done = await approvals.approve(pending.approval_id, BOSS, now)
    assert done.status == "approved" and done.result["forfeited"]["active"] == 450
    assert await account_balance(member.account_id) == (0, 0)
    entries = await db.fetch("SELECT kind, amount, reason FROM ledger_entry WHERE account = $1 AND kind = 'expire'",
                             member.account_id)
    assert [(e["kind"], e["amount"]) for e in entries] == [("expire", -450)] and "erased" in entries[0]["reason"]
    person = await db.fetchrow("SELECT phone, email, name, status FROM customer WHERE id = $1", member.customer_id)
    assert dict(person) == {"phone": None, "email": None, "name": "", "status": "deleted"}
    card = await db.fetchrow("SELECT status, pass_auth_token FROM card WHERE number = $1", member.card)
    assert card["status"] == "blocked" and card["pass_auth_token"] is None
    assert await _ours([member.account_id]) == []
    trail = await audit.events_of(f"customer:{member.customer_id}")
    assert trail[0].action == "member.erased" and "Ольга" not in str(trail[0].after) + str(trail[0].before)
    with pytest.raises(DomainError):
        await member_care.propose_erasure(member.membership_id, "again", AGENT, now)


async def test_two_admins_approving_the_same_merge_at_once_merge_once(shop: Shop) -> None:
    import asyncio

    now = dt.datetime.now(UTC)
    twin, keeper = await make_member(shop, points=64), await make_member(shop, points=1)
    pending = await member_care.propose_merge(twin.membership_id, keeper.membership_id, "same person", AGENT, now)
    other = Actor(name="staff:boss2@example.org", ref="staff:903")
    outcomes = await asyncio.gather(approvals.approve(pending.approval_id, BOSS, now),
                                    approvals.approve(pending.approval_id, other, now), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["ApprovalOut", "Conflict"], outcomes
    assert await account_balance(keeper.account_id) == (65, 0)
    assert await db.fetchval("SELECT count(*) FROM ledger_entry WHERE account = $1 AND kind = 'transfer'",
                             keeper.account_id) == 1
    assert await _ours([twin.account_id, keeper.account_id]) == []
