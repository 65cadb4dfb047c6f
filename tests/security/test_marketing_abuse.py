"""Segments and member events at their boundaries: who may create and upload segments (marketer and admin keys;
support reads; tills, shoppers and other roles get nothing), bad input refused with nothing written, and the
referral that a shopper farms with a second phone on the same device or with their own card pays the referrer
nothing, however often the event job runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import msgspec
import pytest

from backend.admin.auth import create_operator_key
from loyalty_core import db
from loyalty_core.engine.effects import EventBonus, PercentDiscount
from loyalty_core.engine.program import Rule, RuleGroup
from loyalty_core.engine.targeting import Targeting
from loyalty_core.marketing.events import run_member_events
from tests.admin.conftest import problem
from tests.factories import account_balance, basic_rules, count_rows, make_member, make_shop, sale_body, unique
from tests.fuzzing import fuzz
from tests.identity.shopper import Shopper, new_phone

UTC = dt.timezone.utc
REFERRAL = RuleGroup(code="events", name="Events", stage="event", rules=[
    Rule(code="friend", name="Bring a friend", effect=EventBonus(event="first_purchase", points=100, referrer_points=300))])
LAPSING = {"fact": "days_since_last_purchase", "gte": 60}


async def operator_headers(*roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await create_operator_key(unique('op'), list(roles))).key}"}


async def buy(http, shop, card: str) -> None:
    response = await http.post("/pos/v1/sales/confirm", json=sale_body(shop, [("bread", 1, 4_990)], card=card),
                               headers=shop.headers)
    assert response.status_code == 200, response.text


async def account_of(customer_id: int, program_id: int) -> int:
    row = await db.fetchrow("SELECT a.id FROM account a JOIN membership m ON m.id = a.membership "
                            "WHERE m.customer = $1 AND m.program = $2", customer_id, program_id)
    assert row is not None
    return row["id"]


async def test_a_second_phone_on_the_same_device_farms_no_referral(http, db_pool) -> None:
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[REFERRAL]))
    me = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await me.log_in()
    code = (await me.get("/referral")).json()["code"]
    device = {"platform": "fcm", "token": "my-one-phone-" + unique("t")}
    assert (await me.send("POST", "/me/devices", json=device)).status_code in (200, 201)
    my_second_phone = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await my_second_phone.log_in(referral_code=code)
    assert (await my_second_phone.send("POST", "/me/devices", json=device)).status_code in (200, 201)
    real_friend = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await real_friend.log_in(referral_code=code)

    await buy(http, shop, my_second_phone.card)
    await buy(http, shop, real_friend.card)
    now = dt.datetime.now(UTC)
    reports = await asyncio.gather(*(run_member_events(now) for _ in range(3)))
    await run_member_events(now + dt.timedelta(hours=1))

    assert sum(r.referrals_refused for r in reports) == 1
    # the real friend earns me 300 once; my second phone earns me nothing (it keeps its own first-purchase bonus)
    assert await account_balance(await account_of(me.customer_id, shop.program_id)) == (300, 0)
    refused = await db.fetchrow(
        "SELECT e.detail::text AS d FROM member_event e JOIN membership m ON m.id = e.membership "
        "WHERE m.customer = $1 AND e.kind = 'first_purchase'", my_second_phone.customer_id)
    assert refused is not None and "referrer_refused" in refused["d"]


async def test_my_own_card_used_by_the_friend_farms_no_referral(http, db_pool) -> None:
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[REFERRAL]))
    me = await make_member(shop)
    await buy(http, shop, me.card)
    friend = await make_member(shop)
    await db.fetch("UPDATE membership SET referred_by = $2 WHERE id = $1", friend.membership_id, me.membership_id)
    # the card I bought with before now sits in the "friend's" membership, and the first purchase is made with it
    await db.fetch("UPDATE card SET membership = $2 WHERE number = $1", me.card, friend.membership_id)
    await buy(http, shop, me.card)

    report = await run_member_events(dt.datetime.now(UTC))

    assert report.referrals_refused >= 1
    events = await count_rows("member_event", "membership = {} AND kind = 'referral_referrer'", me.membership_id)
    assert events == 0


async def test_who_may_create_upload_and_read_segments(http, db_pool) -> None:
    shop = await make_shop()
    member = await make_member(shop)
    url = f"/admin/v1/segments/{shop.program_code}"
    body = {"code": "lapsing", "condition": LAPSING}
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in()
    revoked = await create_operator_key(unique("gone"), ["marketer"])
    await db.fetch("UPDATE operator_key SET revoked_at = now() WHERE id = $1", revoked.id)
    refused = {
        "no key": ({}, 401), "a till's key": (shop.headers, 401), "a shopper's token": (shopper.headers, 401),
        "a revoked marketer": ({"Authorization": f"Bearer {revoked.key}"}, 401),
        "support": (await operator_headers("support"), 403), "import": (await operator_headers("import"), 403),
    }
    for who, (headers, status) in refused.items():
        assert (await http.post(url, json=body, headers=headers)).status_code == status, who
        assert (await http.put(f"{url}/lapsing/members", content=f"card\n{member.card}\n",
                               headers=headers)).status_code == status, who
        assert (await http.put(f"{url}/attributes", content=f"card,pet\n{member.card},dog\n",
                               headers=headers)).status_code == status, who
        assert (await http.post(f"{url}/preview", json={"condition": LAPSING},
                                headers=headers)).status_code == status, who
    assert await count_rows("segment", "program = {}", shop.program_id) == 0
    assert await count_rows("member_attribute", "membership = {}", member.membership_id) == 0
    for who in ("a till's key", "a shopper's token", "no key", "import"):
        assert (await http.get(url, headers=refused[who][0])).status_code in (401, 403), who

    marketer = await operator_headers("marketer")
    created = await http.post(url, json=body, headers=marketer)
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "dynamic" and created.json()["condition"] == LAPSING
    admin = await operator_headers("admin")
    assert (await http.post(url, json={"code": "vip", "kind": "static"}, headers=admin)).status_code == 201
    uploaded = await http.put(f"{url}/vip/members", content=f"card\n{member.card}\n", headers=marketer)
    assert uploaded.status_code == 200 and uploaded.json()["members"] == 1, uploaded.text
    support = await operator_headers("support")
    listed = await http.get(url, headers=support)
    assert listed.status_code == 200 and [s["code"] for s in listed.json()] == ["lapsing", "vip"]
    audit = await count_rows("audit_event", "subject LIKE {}", f"segment:{shop.program_code}/%")
    assert audit == 3  # two creates and an upload, each with the operator's name


async def test_bad_segments_and_uploads_are_refused_with_nothing_written(http, db_pool) -> None:
    shop = await make_shop()
    url = f"/admin/v1/segments/{shop.program_code}"
    marketer = await operator_headers("marketer")
    assert (await http.post(url, json={"code": "vip", "kind": "static"}, headers=marketer)).status_code == 201
    assert (await http.post(url, json={"code": "lapsing", "condition": LAPSING}, headers=marketer)).status_code == 201
    before = await count_rows("segment"), await count_rows("segment_static_member"), await count_rows("audit_event")

    bad = await http.post(url, json={"code": "x", "condition": {"all": [{"fact": "tier", "gt": 1}, {"fact": "n"}]}},
                          headers=marketer)
    body = problem(bad, 422, "segment-condition-invalid")
    assert body["errors"][0].startswith("condition.all[0].gt:") and body["errors"][1].startswith("condition.all[1]")
    problem(await http.post(url, json={"code": "vip", "kind": "static"}, headers=marketer), 409, "segment-exists")
    problem(await http.post(url, json={"code": "DROP TABLE", "condition": LAPSING}, headers=marketer), 422,
            "validation-error")
    assert (await http.post(url, json={"code": "y", "condition": LAPSING, "sql": "1=1"},
                            headers=marketer)).status_code in (400, 422)
    problem(await http.put(f"{url}/vip/members", content=b"\xff\xfe\x00junk", headers=marketer), 422,
            "segment-upload-invalid")
    problem(await http.put(f"{url}/vip/members", content="name,age\nann,3\n", headers=marketer), 422,
            "segment-upload-invalid")
    problem(await http.put(f"{url}/lapsing/members", content="card\n123\n", headers=marketer), 409,
            "segment-kind-mismatch")
    problem(await http.put(f"{url}/nope/members", content="card\n123\n", headers=marketer), 404, "segment-not-found")
    problem(await http.patch(f"{url}/vip", json={"condition": LAPSING}, headers=marketer), 409, "segment-kind-mismatch")
    problem(await http.get(f"/admin/v1/segments/{unique('nope')}", headers=marketer), 404, "segment-not-found")

    assert (await count_rows("segment"), await count_rows("segment_static_member"),
            await count_rows("audit_event")) == before


@pytest.mark.parametrize("lapsing", [True, False])
async def test_a_shopper_sees_only_their_own_offers_never_segment_codes(http, db_pool, lapsing: bool) -> None:
    rule = Rule(code="miss-you", name="We miss you", effect=PercentDiscount(bp=1000),
                target=Targeting(segments=["lapsing-secret"]))
    shop = await make_shop(msgspec.structs.replace(basic_rules(), groups=[
        RuleGroup(code="promo", name="Promotions", stage="discount", rules=[rule])]))
    shopper = Shopper(http=http, to=new_phone(), program=shop.program_code)
    await shopper.log_in()
    if lapsing:
        await db.fetch("UPDATE membership SET segments = ARRAY['lapsing-secret']::varchar[] "
                       "WHERE customer = $1", shopper.customer_id)
    for path in ("/offers", "/me", "/balance"):
        response = await shopper.get(path)
        assert response.status_code == 200, (path, response.text)
        assert "lapsing-secret" not in response.text and "segments" not in response.text, path
    offers = [o["rule"] for o in (await shopper.get("/offers")).json()]
    assert offers == (["miss-you"] if lapsing else [])
    assert (await http.get(f"/admin/v1/segments/{shop.program_code}", headers=shopper.headers)).status_code == 401


async def test_no_segments_operation_fails_with_a_server_error(server: str, db_pool) -> None:
    shop = await make_shop()
    await make_member(shop)
    headers = await operator_headers("marketer")
    log = Path(os.environ.get("KOPILKA_TEST_SERVER_LOG", "/nonexistent"))
    offset = log.stat().st_size if log.exists() else 0
    failures, statuses = fuzz(server, "^/admin/v1/segments", headers, examples=25, budget_seconds=60,
                              min_operations=6, skip=set())
    if log.exists():
        with log.open("rb") as handle:
            handle.seek(offset)
            if b"Traceback" in (written := handle.read()):
                failures.append("traceback in the server log:\n" + written.decode(errors="replace")[-3000:])
    assert not failures, "\n".join(failures[:20])
    assert len(statuses) > 30
