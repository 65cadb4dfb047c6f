"""Operator API for a program's rules: groups, rules, settings, versions.

Bodies are the engine's own JSON (ProgramRules / RuleGroup / Rule / ProgramSettings). They are taken
as plain JSON and handed to the engine's validation, so a mistake comes back as a 422 problem naming
the rule and the field ("rule 'happy-hours': schedule.hours: end 25 is outside 0..24").
Every change is published as a new immutable version; `?dry_run=true` only validates.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import Provide
from litestar.params import QueryParameter

from backend.admin.auth import current_operator, require_roles
from loyalty_core.rules import admin as rules_admin
from loyalty_core.rules.admin import Edit, LiveRules, RulesChange, VersionDocument, VersionSummary
from loyalty_core.engine import RuleGroup

EDITORS = [require_roles("marketer")]
READERS = [require_roles("marketer", "support")]

Json = dict[str, Any]


DryRun = Annotated[bool, QueryParameter(name="dry_run", description="validate only, publish nothing")]
ExpectedVersion = Annotated[
    int | None, QueryParameter(name="expected_version", ge=1, description="refuse (409) if another version went live")
]
Comment = Annotated[str, QueryParameter(name="comment", max_length=500, description="why: kept with the version")]


def edit_options(request: Request, dry_run: DryRun = False, expected_version: ExpectedVersion = None,
                 comment: Comment = "") -> Edit:
    return Edit(author=current_operator(request).name, comment=comment, dry_run=dry_run,
                expected_version=expected_version)


def _created(change: RulesChange) -> Response[RulesChange]:
    return Response(change, status_code=201 if change.published else 200)


class RulesController(Controller):
    path = "/admin/v1/programs/{program:str}/rules"
    tags = ["operator rules"]
    dependencies = {"edit": Provide(edit_options, sync_to_thread=False)}

    @get("/", guards=READERS, summary="The live rules document and its version")
    async def live(self, program: str) -> LiveRules:
        return await rules_admin.live_rules(program)

    @put("/", guards=EDITORS, summary="Publish a whole rules document")
    async def replace(self, program: str, data: Json, edit: Edit) -> RulesChange:
        return await rules_admin.replace_document(program, data, edit)

    @put("/settings", guards=EDITORS, summary="Publish new settings: tiers, limits, point value, expiry")
    async def settings(self, program: str, data: Json, edit: Edit) -> RulesChange:
        return await rules_admin.replace_settings(program, data, edit)

    @get("/groups", guards=READERS, summary="The live rule groups with their rules")
    async def list_groups(self, program: str) -> list[RuleGroup]:
        return await rules_admin.groups(program)

    @get("/groups/{group_code:str}", guards=READERS, summary="One rule group with its rules")
    async def get_group(self, program: str, group_code: str) -> RuleGroup:
        return await rules_admin.group(program, group_code)

    @post("/groups", guards=EDITORS, summary="Add a rule group (published as a new version)")
    async def create_group(self, program: str, data: Json, edit: Edit) -> Response[RulesChange]:
        return _created(await rules_admin.create_group(program, data, edit))

    @put("/groups/{group_code:str}", guards=EDITORS, summary="Replace a rule group and its rules")
    async def replace_group(self, program: str, group_code: str, data: Json, edit: Edit) -> RulesChange:
        return await rules_admin.replace_group(program, group_code, data, edit)

    @delete("/groups/{group_code:str}", guards=EDITORS, status_code=200, summary="Remove a rule group")
    async def delete_group(self, program: str, group_code: str, edit: Edit) -> RulesChange:
        return await rules_admin.delete_group(program, group_code, edit)

    @post("/groups/{group_code:str}/rules", guards=EDITORS, summary="Add a rule to a group")
    async def create_rule(self, program: str, group_code: str, data: Json, edit: Edit) -> Response[RulesChange]:
        return _created(await rules_admin.create_rule(program, group_code, data, edit))

    @put("/groups/{group_code:str}/rules/{rule_code:str}", guards=EDITORS, summary="Replace a rule")
    async def replace_rule(self, program: str, group_code: str, rule_code: str, data: Json,
                           edit: Edit) -> RulesChange:
        return await rules_admin.replace_rule(program, group_code, rule_code, data, edit)

    @delete("/groups/{group_code:str}/rules/{rule_code:str}", guards=EDITORS, status_code=200, summary="Remove a rule")
    async def delete_rule(self, program: str, group_code: str, rule_code: str, edit: Edit) -> RulesChange:
        return await rules_admin.delete_rule(program, group_code, rule_code, edit)

    @get("/versions", guards=READERS, summary="Published versions, newest first")
    async def versions(
        self, program: str, before: Annotated[int | None, QueryParameter(name="before", ge=1)] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=200)] = 50,
    ) -> list[VersionSummary]:
        return await rules_admin.versions(program, before, limit)

    @get("/versions/{number:int}", guards=READERS, summary="One version's document")
    async def version(self, program: str, number: int) -> VersionDocument:
        return await rules_admin.version(program, number)

    @post("/versions/{number:int}/restore", guards=EDITORS, summary="Publish an old version again")
    async def restore(self, program: str, number: int, edit: Edit) -> Response[RulesChange]:
        return _created(await rules_admin.restore_version(program, number, edit))


ROUTES = [RulesController]
