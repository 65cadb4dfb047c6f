"""A marketer's draft over real PostgreSQL: edit a rule with the form, see the diff, get it published by a second
person; refused saves, stale drafts, restores, and the generic approvals path."""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty_core.errors import Conflict, ValidationFailed
from loyalty_core.office import approvals, audit
from loyalty_core.office.approvals import SelfApproval
from loyalty_core.rules import admin as rules_admin
from loyalty_core.rules_office import drafts
from loyalty_core.rules_office.drafts import NotEditable
from loyalty_core.rules_office.rule_form import rule_from_form
from loyalty_core.tables import PendingApproval, RulesDraft
from tests.rules_office.helpers import actor, promo_shop, winter_form

NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


async def _live_version(code: str) -> int:
    return (await rules_admin.live_rules(code)).version


async def test_a_marketer_doubles_a_rate_sees_the_diff_and_another_person_publishes_it(db_pool: None) -> None:
    shop = await promo_shop()
    anna, boris = actor("anna"), actor("boris")
    before = await _live_version(shop.program_code)
    draft = await drafts.start(shop.program_code, anna, NOW, title="Double winter")
    assert draft.status == "draft" and draft.base_version == before and not await drafts.changes(draft)

    rule = rule_from_form(winter_form("10", **{"schedule.hours": "18-21"}), drafts.rule_of(draft, "winter")[1])
    draft = await drafts.save_rule(draft.id, "promo", rule, anna, NOW, replacing="winter")
    [change] = await drafts.changes(draft)
    assert (change.what, change.how, change.code, change.group) == ("rule", "changed", "winter", "promo")
    fields = {f.path: (f.before, f.after) for f in change.fields}
    assert fields["effect.bp"] == (500, 1000)
    assert fields["schedule.hours"] == (None, [{"start": 18, "end": 21}]) and len(fields) == 2

    proposal = await drafts.propose(draft.id, anna, "Winter push", NOW)
    assert proposal.status == "pending" and proposal.requested_ref == anna.ref
    with pytest.raises(NotEditable):  # what the approver sees is what gets published
        await drafts.save_rule(draft.id, "promo", rule, anna, NOW, replacing="winter")
    with pytest.raises(SelfApproval):
        await drafts.approve(draft.id, anna, NOW)
    assert await _live_version(shop.program_code) == before

    published = await drafts.approve(draft.id, boris, NOW)
    assert published.status == "published" and published.published_version == before + 1
    live = await rules_admin.live_rules(shop.program_code)
    assert live.version == before + 1
    assert live.document["groups"][0]["rules"][0]["effect"]["bp"] == 1000
    versions = await rules_admin.versions(shop.program_code, None, 1)
    assert "proposed by " + anna.name in versions[0].comment and boris.name in versions[0].comment
    [event] = await audit.events_of(f"program:{shop.program_code}")
    assert event.action == "rules.published" and event.actor == boris.name
    assert event.after["proposed_by"] == anna.name and event.before == {"version": before}
    assert (await approvals.get(proposal.approval_id)).status == "approved"


async def test_a_save_the_engine_refuses_names_the_field_and_stores_nothing(db_pool: None) -> None:
    shop = await promo_shop()
    anna = actor()
    draft = await drafts.start(shop.program_code, anna, NOW)
    rule = rule_from_form(winter_form("120"), drafts.rule_of(draft, "winter")[1])
    with pytest.raises(ValidationFailed) as refused:
        await drafts.save_rule(draft.id, "promo", rule, anna, NOW, replacing="winter")
    assert "rule 'winter': effect.bp: 12000 is outside 0..10000" in refused.value.extra["errors"]
    # a points mechanic in the discount group: the engine says it does not belong there
    with pytest.raises(ValidationFailed) as misplaced:
        await drafts.save_rule(draft.id, "sale", rule_from_form(winter_form("7"), None), anna, NOW,
                               replacing="winter")
    assert any("effect.kind: 'percent_points' does not belong in a discount group" in m
               for m in misplaced.value.extra["errors"])
    assert (await drafts.get(draft.id)).document == draft.document
    with pytest.raises(ValidationFailed):
        await drafts.propose(draft.id, anna, "", NOW)  # nothing changed: nothing to publish


async def test_a_draft_overtaken_by_another_publish_fails_on_approval_and_nothing_is_published(db_pool: None) -> None:
    shop = await promo_shop()
    anna, boris = actor(), actor()
    draft = await drafts.start(shop.program_code, anna, NOW)
    rule = rule_from_form(winter_form("8"), drafts.rule_of(draft, "winter")[1])
    await drafts.save_rule(draft.id, "promo", rule, anna, NOW, replacing="winter")
    proposal = await drafts.propose(draft.id, anna, "", NOW)
    # meanwhile someone publishes through the admin API
    _, live = await rules_admin.live_raw_document(shop.program_code)
    live["settings"]["max_redeem_share_bp"] = 2000
    overtaking = await rules_admin.replace_document(shop.program_code, live, rules_admin.Edit(author="api"))

    after = await drafts.approve(draft.id, boris, NOW)
    assert after.status == "draft" and after.stale  # back to editing; it says why it cannot go
    assert await _live_version(shop.program_code) == overtaking.version
    failed = await approvals.get(proposal.approval_id)
    assert failed.status == "failed" and "changed meanwhile" in failed.result["problem"]["detail"]
    with pytest.raises(Conflict):
        await drafts.propose(draft.id, anna, "", NOW)


async def test_restore_publishes_a_copy_of_an_old_version_as_a_new_version(db_pool: None) -> None:
    shop = await promo_shop()
    anna, boris = actor(), actor()
    first = await _live_version(shop.program_code)
    draft = await drafts.start(shop.program_code, anna, NOW)
    await drafts.save_rule(draft.id, "promo", rule_from_form(winter_form("9"), None), anna, NOW, replacing="winter")
    await drafts.propose(draft.id, anna, "", NOW)
    await drafts.approve(draft.id, boris, NOW)

    restore = await drafts.start(shop.program_code, boris, NOW, from_version=first)
    assert restore.title == f"Restore of version {first}" and restore.base_version == first + 1
    [change] = await drafts.changes(restore)
    assert {f.path: (f.before, f.after) for f in change.fields}["effect.bp"] == (900, 500)
    await drafts.propose(restore.id, boris, "back to the old rate", NOW)
    done = await drafts.approve(restore.id, anna, NOW)
    assert done.published_version == first + 2
    _, old = await rules_admin.live_raw_document(shop.program_code)
    assert old["groups"][0]["rules"][0]["effect"]["bp"] == 500
    created = await audit.events_of(f"rules_draft:{restore.id}")
    assert any(e.action == "rules.draft_created" and e.after["from_version"] == first for e in created)


async def test_the_office_approvals_page_decides_a_rules_publish_through_the_draft(db_pool: None) -> None:
    shop = await promo_shop()
    anna, boss = actor(), actor("admin")
    draft = await drafts.start(shop.program_code, anna, NOW)
    await drafts.save_rule(draft.id, "promo", rule_from_form(winter_form("6"), None), anna, NOW, replacing="winter")
    proposal = await drafts.propose(draft.id, anna, "", NOW)
    with pytest.raises(SelfApproval):
        await approvals.approve(proposal.approval_id, anna, NOW)
    rejected = await approvals.reject(proposal.approval_id, boss, "not this month", NOW)
    assert rejected.status == "rejected" and (await drafts.get(draft.id)).status == "draft"
    again = await drafts.propose(draft.id, anna, "", NOW)
    assert (await approvals.approve(again.approval_id, boss, NOW)).status == "approved"
    assert (await drafts.get(draft.id)).status == "published"
    assert await PendingApproval.count().where(PendingApproval.subject == f"rules_draft:{draft.id}") == 2


async def test_a_draft_whose_stored_document_went_bad_cannot_be_proposed(db_pool: None) -> None:
    shop = await promo_shop()
    anna = actor()
    draft = await drafts.start(shop.program_code, anna, NOW)
    bad = {**draft.document, "groups": [{"code": "promo", "name": "P", "stage": "accrual",
                                         "rules": [{"code": "x", "name": "X", "effect": {"kind": "multiplier",
                                                                                         "factor_bp": 5}}]}]}
    import msgspec

    await RulesDraft.update({RulesDraft.document: msgspec.json.encode(bad).decode()}).where(RulesDraft.id == draft.id)
    with pytest.raises(ValidationFailed) as refused:
        await drafts.propose(draft.id, anna, "", NOW)
    assert "rule 'x': effect.factor_bp: 5 is below 10000 (x1)" in refused.value.extra["errors"]
    assert await PendingApproval.count().where(PendingApproval.subject == f"rules_draft:{draft.id}") == 0


async def test_the_raw_view_saves_a_whole_document_the_engine_accepts(db_pool: None) -> None:
    shop = await promo_shop()
    anna = actor()
    draft = await drafts.start(shop.program_code, anna, NOW)
    document = {**draft.document, "settings": {**draft.document["settings"], "max_redeem_share_bp": 5000}}
    saved = await drafts.save_document(draft.id, document, anna, NOW)
    [change] = await drafts.changes(saved)
    assert change.what == "settings" and [(f.path, f.before, f.after) for f in change.fields] == [
        ("max_redeem_share_bp", 3000, 5000)]
    with pytest.raises(ValidationFailed):
        await drafts.save_document(draft.id, {"settings": {"point_value_minor": 0}}, anna, NOW)
    assert (await drafts.get(draft.id)).document == document
    discarded = await drafts.discard(draft.id, anna, NOW)
    assert discarded.status == "discarded"
    with pytest.raises(NotEditable):
        await drafts.save_document(draft.id, document, anna, NOW)


async def test_a_marketer_adds_a_discount_group_and_the_engine_guards_its_fields(db_pool: None) -> None:
    from loyalty_core.rules_office.rule_form import group_from_form

    shop = await promo_shop()
    anna = actor()
    draft = await drafts.start(shop.program_code, anna, NOW)
    form = {"code": ["weekend"], "name": ["Weekend"], "stage": ["discount"], "mode": ["best"], "active": ["on"],
            "cascade": ["on"], "priority": ["5"]}
    draft = await drafts.save_group(draft.id, group_from_form(form, None), anna, NOW)
    assert drafts.group_of(draft, "weekend") == {"code": "weekend", "name": "Weekend", "stage": "discount",
                                                 "mode": "best", "cascade": True, "active": True, "priority": 5,
                                                 "rules": []}
    # cascade is for discounts only: moving the group to accrual is refused, naming the group and the field
    with pytest.raises(ValidationFailed) as refused:
        await drafts.save_group(draft.id, group_from_form({**form, "stage": ["accrual"]}, None), anna, NOW,
                                replacing="weekend")
    assert "group 'weekend': cascade: only discount groups cascade" in refused.value.extra["errors"]
    # renaming the promo group keeps its rules
    promo = {**drafts.group_of(draft, "promo"), "name": "Promotions 2027"}
    draft = await drafts.save_group(draft.id, {k: v for k, v in promo.items() if k != "rules"}, anna, NOW,
                                    replacing="promo")
    assert [r["code"] for r in drafts.group_of(draft, "promo")["rules"]] == ["winter"]
    kinds = {(c.what, c.how, c.code) for c in await drafts.changes(draft)}
    assert kinds == {("group", "added", "weekend"), ("group", "changed", "promo")}


async def test_the_programs_settings_are_changed_in_a_draft_and_checked_by_the_engine(db_pool: None) -> None:
    shop = await promo_shop()
    anna = actor()
    draft = await drafts.start(shop.program_code, anna, NOW)
    settings = {**draft.document["settings"], "max_redeem_share_bp": 5000}
    draft = await drafts.save_settings(draft.id, settings, anna, NOW)
    [change] = await drafts.changes(draft)
    assert change.what == "settings" and change.fields[0].path == "max_redeem_share_bp"
    with pytest.raises(ValidationFailed) as refused:
        await drafts.save_settings(draft.id, {**settings, "point_value_minor": 0}, anna, NOW)
    assert "settings: point_value_minor: must be positive" in refused.value.extra["errors"]
    assert (await drafts.get(draft.id)).document["settings"]["point_value_minor"] == 100
