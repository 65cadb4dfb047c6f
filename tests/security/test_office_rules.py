"""Abuse tests of the back office's rule editor (/office/rules): only marketers and admins reach it; nobody
publishes alone (not even an admin approving their own proposal); a draft the engine refuses is never proposed or
published; a draft changed after it was proposed is not what gets published; CSRF; oversized forms."""

from __future__ import annotations

import re

import httpx
import msgspec
import pytest

from loyalty_core.office import staff
from loyalty_core.rules import admin as rules_admin
from loyalty_core.tables import PendingApproval, RulesDraft
from tests.factories import Shop
from tests.office.helpers import Office, make_staff
from tests.rules_office.helpers import promo_shop

OUTSIDERS = [role for role in ("support", "auditor", "import", "finance") if role in staff.ROLES]


async def _draft(office: Office, shop: Shop) -> int:
    await office.get("/office/rules/", program=shop.program_code)
    made = await office.post("/office/rules/drafts", {"program": shop.program_code})
    assert made.status_code == 303, made.text[:500]
    return int(made.headers["location"].rsplit("/", 1)[1])


async def _edit_winter(office: Office, draft: int, bp: str) -> httpx.Response:
    await office.get(f"/office/rules/drafts/{draft}/rules/winter")
    return await office.post(f"/office/rules/drafts/{draft}/rules/winter", {
        "group": "promo", "code": "winter", "name": "Winter points", "priority": "0", "active": "on",
        "effect.kind": "percent_points", "effect.bp": bp})


def _paths(draft: int) -> list[tuple[str, str]]:
    base = f"/office/rules/drafts/{draft}"
    return [("GET", "/office/rules/"), ("GET", base), ("GET", base + "/rules/winter"), ("GET", base + "/raw"),
            ("GET", base + "/new-rule"), ("GET", base + "/effect-fields"), ("POST", "/office/rules/drafts"),
            ("POST", base + "/rules/winter"), ("POST", base + "/rules"), ("POST", base + "/raw"),
            ("POST", base + "/replay"), ("POST", base + "/propose"), ("POST", base + "/approve"),
            ("POST", base + "/reject"), ("POST", base + "/discard"), ("POST", base + "/rules/winter/delete"),
            ("POST", "/office/rules/versions/1/restore"), ("GET", base + "/groups/promo"), ("GET", base + "/new-group"),
            ("POST", base + "/groups"), ("POST", base + "/groups/promo"), ("GET", base + "/settings"),
            ("POST", base + "/settings")]


@pytest.mark.parametrize("role", OUTSIDERS)
async def test_support_auditors_importers_and_finance_get_403_on_every_rules_page_and_action(server: str, role: str
                                                                                            ) -> None:
    shop = await promo_shop()
    async with Office(server) as marketer, Office(server) as outsider:
        await marketer.signed_in(await make_staff("marketer"))
        draft = await _draft(marketer, shop)
        await outsider.signed_in(await make_staff(role))
        for method, path in _paths(draft):
            answer = await (outsider.get(path) if method == "GET" else outsider.post(path, {"program": shop.program_code,
                                                                                         "days": "30"}))
            assert answer.status_code == 403, (role, method, path, answer.status_code)
        home = await outsider.get("/office/")
        assert 'href="/office/rules"' not in home.text
    assert (await RulesDraft.select(RulesDraft.status).where(RulesDraft.id == draft).first())["status"] == "draft"


async def test_a_stranger_gets_the_sign_in_page(server: str) -> None:
    shop = await promo_shop()
    async with Office(server) as marketer:
        await marketer.signed_in(await make_staff("marketer"))
        draft = await _draft(marketer, shop)
    async with Office(server) as stranger:
        for method, path in _paths(draft):
            answer = await (stranger.get(path) if method == "GET" else stranger.post(path))
            assert answer.status_code == 303 and answer.headers["location"].startswith("/office/login"), path


async def test_nobody_publishes_alone_not_even_an_admin(server: str) -> None:
    shop = await promo_shop()
    before = (await rules_admin.live_rules(shop.program_code)).version
    async with Office(server) as boss:
        await boss.signed_in(await make_staff("admin"))
        draft = await _draft(boss, shop)
        assert (await _edit_winter(boss, draft, "15")).status_code == 303
        await boss.get(f"/office/rules/drafts/{draft}")
        assert (await boss.post(f"/office/rules/drafts/{draft}/propose", {"reason": "mine"})).status_code == 303
        page = await boss.get(f"/office/rules/drafts/{draft}")
        assert 'data-testid="approve"' not in page.text  # no button for the proposer ...
        refused = await boss.post(f"/office/rules/drafts/{draft}/approve")
        assert refused.status_code == 403  # ... and no way around it
        approval = (await RulesDraft.select(RulesDraft.approval).where(RulesDraft.id == draft).first())["approval"]
        assert (await boss.post(f"/office/approvals/{approval}/approve")).status_code == 403  # nor the generic page
    assert (await rules_admin.live_rules(shop.program_code)).version == before
    row = await PendingApproval.select(PendingApproval.status).where(PendingApproval.id == approval).first()
    assert row["status"] == "pending"


async def test_a_draft_the_engine_refuses_is_neither_saved_nor_proposed_nor_published(server: str) -> None:
    shop = await promo_shop()
    before = (await rules_admin.live_rules(shop.program_code)).version
    async with Office(server) as anna, Office(server) as boris:
        await anna.signed_in(await make_staff("marketer"))
        await boris.signed_in(await make_staff("marketer"))
        draft = await _draft(anna, shop)
        refused = await _edit_winter(anna, draft, "150")  # 150 %: the engine's limit is 100 %
        assert refused.status_code == 422
        assert re.search(r'data-testid="error-effect\.bp">[^<]*15000 is outside 0\.\.10000', refused.text)
        await anna.get(f"/office/rules/drafts/{draft}/raw")
        raw = await anna.post(f"/office/rules/drafts/{draft}/raw", {"document": '{"groups": [{"code": 1}]}'})
        assert raw.status_code == 422 and 'data-testid="errors"' in raw.text
        stored = await RulesDraft.select(RulesDraft.document).where(RulesDraft.id == draft).first()
        assert '"bp":500' in stored["document"].replace(" ", "")
        # a stored draft that went bad some other way (say, the engine got stricter) is refused at the door too
        _, live = await rules_admin.live_raw_document(shop.program_code)
        live["groups"][0]["rules"][0]["effect"] = {"kind": "multiplier", "factor_bp": 10}
        await RulesDraft.update({RulesDraft.document: msgspec.json.encode(live).decode()}).where(RulesDraft.id == draft)
        await anna.get(f"/office/rules/drafts/{draft}")
        proposed = await anna.post(f"/office/rules/drafts/{draft}/propose", {"reason": "x"})
        assert proposed.status_code == 422 and "factor_bp: 10 is below 10000" in proposed.text
        assert await PendingApproval.count().where(PendingApproval.subject == f"rules_draft:{draft}") == 0
        # proposed while valid, then changed under the approver's feet: what was proposed is not what would go out
        live["groups"][0]["rules"][0]["effect"] = {"kind": "percent_points", "bp": 600}
        await RulesDraft.update({RulesDraft.document: msgspec.json.encode(live).decode()}).where(RulesDraft.id == draft)
        await anna.get(f"/office/rules/drafts/{draft}")
        assert (await anna.post(f"/office/rules/drafts/{draft}/propose", {"reason": "x"})).status_code == 303
        live["groups"][0]["rules"][0]["effect"] = {"kind": "percent_points", "bp": 10_000}
        await RulesDraft.update({RulesDraft.document: msgspec.json.encode(live).decode()}).where(RulesDraft.id == draft)
        await boris.get(f"/office/rules/drafts/{draft}")
        approved = await boris.follow(await boris.post(f"/office/rules/drafts/{draft}/approve"))
        assert "changed after it was proposed" in approved.text
    assert (await rules_admin.live_rules(shop.program_code)).version == before


async def test_no_csrf_bypass_on_the_rules_pages(server: str) -> None:
    shop = await promo_shop()
    before = (await rules_admin.live_rules(shop.program_code)).version
    async with Office(server) as anna, Office(server) as boris:
        await anna.signed_in(await make_staff("marketer"))
        await boris.signed_in(await make_staff("marketer"))
        draft = await _draft(anna, shop)
        assert (await _edit_winter(anna, draft, "12")).status_code == 303
        await anna.get(f"/office/rules/drafts/{draft}")
        assert (await anna.post(f"/office/rules/drafts/{draft}/propose", {"reason": "x"})).status_code == 303
        await boris.get(f"/office/rules/drafts/{draft}")
        for token in ("", "0" * 64, anna.csrf, boris.csrf + "x"):
            for path in (f"/office/rules/drafts/{draft}/approve", f"/office/rules/drafts/{draft}/reject",
                         "/office/rules/drafts"):
                assert (await boris.post(path, {"program": shop.program_code}, csrf=token)).status_code == 403, token
        async with httpx.AsyncClient(base_url=server) as foreign:  # a cross-site post carries no Strict cookie
            assert (await foreign.post(f"/office/rules/drafts/{draft}/approve")).status_code == 303
    assert (await rules_admin.live_rules(shop.program_code)).version == before
    assert (await RulesDraft.select(RulesDraft.status).where(RulesDraft.id == draft).first())["status"] == "proposed"


async def test_oversized_or_strange_forms_answer_4xx_and_change_nothing(server: str) -> None:
    shop = await promo_shop()
    async with Office(server) as anna:
        await anna.signed_in(await make_staff("marketer"))
        draft = await _draft(anna, shop)
        await anna.get(f"/office/rules/drafts/{draft}/rules/winter")
        base = f"/office/rules/drafts/{draft}"
        too_many = {f"x{i}": "1" for i in range(300)}
        assert (await anna.post(base + "/rules/winter", too_many)).status_code == 400
        assert (await anna.post(base + "/raw", {"document": "[" * 300_000})).status_code in (400, 413)
        unknown = await anna.post(base + "/rules/winter", {"group": "promo", "code": "winter", "name": "W",
                                                          "effect.kind": "free_money"})
        assert unknown.status_code == 422 and 'data-testid="error-effect.kind"' in unknown.text
        assert (await anna.post(base + "/replay", {"days": "100000"})).status_code == 422
        assert (await anna.post(base + "/replay", {"days": "7", "receipts": "9999999"})).status_code == 422
        assert (await anna.get("/office/rules/drafts/999999999")).status_code == 404
        assert (await anna.get(base + "/rules/no-such-rule")).status_code == 404
        await anna.get(base + "/settings")
        zero = await anna.post(base + "/settings", {"point_value_minor": "0", "expiry_days": "365"})
        assert zero.status_code == 422 and 'data-testid="error-point_value_minor">must be positive' in zero.text
        stored = await RulesDraft.select(RulesDraft.document).where(RulesDraft.id == draft).first()
        assert '"bp":500' in stored["document"].replace(" ", "")


async def test_without_javascript_the_mechanic_switch_still_shows_its_fields(server: str) -> None:
    shop = await promo_shop()
    async with Office(server) as anna:
        await anna.signed_in(await make_staff("marketer"))
        draft = await _draft(anna, shop)
        page = await anna.get(f"/office/rules/drafts/{draft}/new-rule", group="promo", **{"effect.kind": "multiplier"})
        assert page.status_code == 200 and 'name="effect.factor_bp"' in page.text and 'name="effect.bp"' not in page.text
        fragment = await anna.get(f"/office/rules/drafts/{draft}/effect-fields", **{"effect.kind": "m_for_n"})
        assert 'name="effect.m"' in fragment.text and "<html" not in fragment.text
