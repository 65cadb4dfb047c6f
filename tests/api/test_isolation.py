"""No shopper reads or changes another's data: every endpoint that takes an id is tried with a foreign one."""

from __future__ import annotations

from tests.factories import count_rows, make_shop, sale_body


async def test_every_id_taking_endpoint_refuses_a_foreign_id(http, shop, shopper_factory) -> None:
    victim = await shopper_factory()
    mallory = await shopper_factory()
    sale = await http.post("/pos/v1/sales/confirm", headers=shop.headers,
                           json=sale_body(shop, [("cheese", 1, 59_900)], card=victim.card))
    sale_id = sale.json()["sale_id"]
    device = (await victim.send("POST", "/me/devices", json={"platform": "apns", "token": "apns-" + victim.to[1:]})).json()
    snapshot = [await count_rows(t) for t in ("card", "push_device", "membership", "customer")]
    statuses = {
        "qr.svg": (await mallory.get(f"/cards/{victim.card}/qr.svg")).status_code,
        "qr.png": (await mallory.get(f"/cards/{victim.card}/qr.png")).status_code,
        "qr-token": (await mallory.get(f"/cards/{victim.card}/qr-token")).status_code,
        "block": (await mallory.send("POST", f"/cards/{victim.card}/block", json={"reason": "mine now"})).status_code,
        "replace": (await mallory.send("POST", f"/cards/{victim.card}/replace", json={})).status_code,
        "bind": (await mallory.send("POST", "/cards", json={"number": victim.card})).status_code,
        "purchase": (await mallory.get(f"/purchases/{sale_id}")).status_code,
        "device": (await mallory.send("DELETE", f"/me/devices/{device['id']}")).status_code,
    }
    # binding someone else's card: 409 `card-taken` since issue 10 (POS_API's problem type; the card never moves)
    assert statuses.pop("bind") == 409
    assert statuses == dict.fromkeys(statuses, 404), statuses
    # lists only ever show one's own rows
    for path in ("/cards", "/purchases", "/history", "/coupons", "/me/devices"):
        body = (await mallory.get(path)).json()
        items = body["items"] if isinstance(body, dict) else body
        assert victim.card not in str(items) and str(sale_id) not in [str(i.get("id")) for i in items], path
    assert [await count_rows(t) for t in ("card", "push_device", "membership", "customer")] == snapshot
    victim_cards = (await victim.get("/cards")).json()
    assert [c["status"] for c in victim_cards] == ["active"]
    assert [d["id"] for d in (await victim.get("/me/devices")).json()] == [device["id"]]


async def test_a_program_the_shopper_never_joined_is_not_theirs(shopper_factory) -> None:
    shopper = await shopper_factory()
    other = await make_shop()
    response = await shopper.get("/balance", params={"program": other.program_code})
    assert response.status_code == 404 and "not a member" in response.json()["detail"]
    assert (await shopper.get("/balance", params={"program": "no-such-program"})).status_code == 404
