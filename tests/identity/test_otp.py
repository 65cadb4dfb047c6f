"""Logging in by code: delivery through the dev inbox, single use, brute force and flooding locked out."""

from __future__ import annotations

from tests.factories import count_rows
from tests.identity.shopper import Shopper, new_phone


async def test_first_login_by_sms_registers_the_shopper_with_a_virtual_card(http, shop, shopper_factory) -> None:
    shopper = await shopper_factory("8 (999) 123-" + new_phone()[-4:][:2] + "-" + new_phone()[-2:], log_in=False)
    sent = await shopper.request_code()
    assert sent.status_code == 202
    assert sent.json()["to"].startswith("+7999123") and sent.json()["channel"] == "sms"
    code = await shopper.last_code()
    response = await shopper.verify(code, name="Анна")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["new_customer"] and body["new_membership"] and body["token_type"] == "Bearer"
    rows = await http.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    me = rows.json()
    assert me["phone"] == sent.json()["to"] and me["name"] == "Анна"
    [membership] = me["memberships"]
    assert membership["program"] == shop.program_code and membership["status"] == "active"
    assert membership["card_number"] == body["card_number"] and len(membership["referral_code"]) == 8
    assert membership["tier"] == "basic"
    channel = await count_rows("membership", "customer = {} AND registration_channel = 'app'", body["customer_id"])
    assert channel == 1
    assert await count_rows("account a JOIN membership m ON m.id = a.membership", "m.customer = {}", body["customer_id"]) == 1


async def test_a_code_works_once(shopper_factory) -> None:
    shopper = await shopper_factory(log_in=False)
    await shopper.request_code()
    code = await shopper.last_code()
    assert (await shopper.verify(code)).status_code == 200
    again = await shopper.verify(code)
    assert again.status_code == 422
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["type"].endswith("/code-invalid")


async def test_five_wrong_codes_kill_the_code(shopper_factory) -> None:
    shopper = await shopper_factory(log_in=False)
    await shopper.request_code()
    code = await shopper.last_code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [(await shopper.verify(wrong)).json() for _ in range(5)]
    assert [a.get("attempts_left") for a in answers[:4]] == [4, 3, 2, 1]
    assert "no longer works" in answers[4]["detail"]
    # even the right code is dead now: the attacker's five guesses burnt it
    assert (await shopper.verify(code)).status_code == 422


async def test_guessing_across_fresh_codes_is_rate_limited_per_phone(http, shopper_factory) -> None:
    shopper = await shopper_factory(log_in=False)
    statuses = []
    for i in range(12):
        shopper.ip = f"10.200.{i}.1"  # even from many addresses
        statuses.append((await shopper.verify("000000")).status_code)
    assert statuses[:10] == [422] * 10 and statuses[10:] == [429, 429]


async def test_sending_is_rate_limited_per_phone_with_retry_after(shopper_factory) -> None:
    shopper = await shopper_factory(log_in=False)
    statuses = [(await shopper.request_code()).status_code for _ in range(6)]
    assert statuses == [202] * 5 + [429]
    limited = await shopper.request_code()
    assert limited.json()["type"].endswith("/rate-limited")
    assert 0 < int(limited.headers["retry-after"]) <= 900


async def test_sending_is_rate_limited_per_address(http, shop) -> None:
    ip = "10.250.250.250"
    statuses = []
    for _ in range(101):
        who = Shopper(http=http, to=new_phone(), ip=ip)
        statuses.append((await who.request_code()).status_code)
    assert statuses[-1] == 429 and statuses.count(202) == 100


async def test_bad_identifiers_are_refused_and_nothing_is_sent(http, shop) -> None:
    before = await count_rows("customer")
    for to in ["12", "not-a-phone", "a@b", "+7 000 000 00 00"]:
        response = await http.post("/api/v1/auth/otp/request", json={"to": to})
        assert response.status_code == 422, to
        assert response.json()["type"].endswith("/validation-error")
    missing = await http.post("/api/v1/auth/otp/verify", json={"code": "123456"})
    assert missing.status_code in (400, 422)
    assert await count_rows("customer") == before


async def test_login_by_email_finds_the_same_customer_next_time(shopper_factory) -> None:
    email = f"Anna.{new_phone()[-7:]}@Example.org"
    first = await shopper_factory(email)
    second = await shopper_factory(email.lower())
    assert first.customer_id == second.customer_id and first.card == second.card
