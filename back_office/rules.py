"""Marketing: the rules of a program, drafts edited with a form per mechanic, the diff against the live version,
the replay over past receipts, and publishing by a second person (docs/back-office.md, "Marketing: rules").

Every page and action: `marketer` (or `admin`). Handlers parse, call one service of loyalty_core.rules_office,
and render; the engine's validator has the last word on every save."""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter

from back_office import web
from back_office.rules_forms import JSON_HINTS, UNIT_HINTS, by_field, label, messages_of, posted
from loyalty_core.errors import DomainError, NotFound, ValidationFailed
from loyalty_core.rules import admin as rules_admin
from loyalty_core.rules_office import drafts, replay
from loyalty_core.rules_office.mechanics import MECHANICS, SETTINGS_FIELDS, FormErrors, settings_from_form, settings_to_form
from loyalty_core.rules_office.rule_form import group_from_form, group_to_form, rule_from_form, rule_to_form
from loyalty_core.tables import Program

MARKETING = [web.roles("marketer")]
DraftId = Annotated[int, PathParameter(name="draft_id", ge=1, le=2**31 - 1)]
RuleCode = Annotated[str, PathParameter(name="rule_code", max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
GroupCode = Annotated[str, PathParameter(name="group_code", max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Version = Annotated[int, PathParameter(name="number", ge=1, le=2**31 - 1)]
Code = Annotated[str, QueryParameter(max_length=64)]
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _draft_page(draft_id: int) -> str:
    return f"{web.PATH}/rules/drafts/{draft_id}"


async def _program_code(code: str) -> str:
    query = Program.select(Program.code)
    row = await (query.where(Program.code == code) if code else query.order_by(Program.id)).first()
    if row is None:
        raise NotFound(f"program {code!r} does not exist" if code else "no loyalty program is configured")
    return row["code"]  # type: ignore[no-any-return]


def _one(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[-1].strip()


class RulesController(Controller):
    path = web.PATH + "/rules"
    include_in_schema = False

    @get("/", guards=MARKETING)
    async def overview(self, request: Request, program: Code = "") -> Response:
        code = await _program_code(program)
        live = await rules_admin.live_rules(code)
        programs = [r["code"] for r in await Program.select(Program.code).order_by(Program.id)]
        return await web.page(request, "office_rules.html", program=code, programs=programs, live=live,
                              drafts=await drafts.listing(code), versions=await rules_admin.versions(code, None, 30),
                              weekdays=WEEKDAYS, mechanics=MECHANICS)

    @post("/drafts", guards=MARKETING)
    async def new_draft(self, request: Request) -> Response:
        form = await posted(request)
        code = await _program_code(_one(form, "program"))
        draft = await drafts.start(code, web.actor_of(request), web.utc_now(), title=_one(form, "title"))
        await web.flash(request, "Draft created")
        return web.back_to(_draft_page(draft.id))

    @post("/versions/{number:int}/restore", guards=MARKETING)
    async def restore(self, request: Request, number: Version) -> Response:
        """A restore is a new draft holding the old version's document: it is published like any draft."""
        form = await posted(request)
        code = await _program_code(_one(form, "program"))
        draft = await drafts.start(code, web.actor_of(request), web.utc_now(), from_version=number)
        await web.flash(request, "Draft created")
        return web.back_to(_draft_page(draft.id))

    @get("/drafts/{draft_id:int}", guards=MARKETING)
    async def draft(self, request: Request, draft_id: DraftId) -> Response:
        return await self._draft(request, await drafts.get(draft_id))

    async def _draft(self, request: Request, draft: drafts.DraftOut, *, status: int = 200, result: Any = None,
                     days: int = 30, cap: int = replay.MAX_RECEIPTS, problem: str = "") -> Response:
        proposal = await drafts.proposal(draft.id) if draft.status == "proposed" else None
        return await web.page(request, "office_rules_draft.html", status=status, draft=draft,
                              changes=await drafts.changes(draft), proposal=proposal, result=result, days=days,
                              cap=cap, max_days=replay.MAX_DAYS, max_cap=replay.MAX_RECEIPTS, problem=problem,
                              mine=proposal is not None and proposal.requested_ref == web.actor_of(request).ref,
                              mechanics=MECHANICS, weekdays=WEEKDAYS)

    @post("/drafts/{draft_id:int}/replay", guards=MARKETING)
    async def run_replay(self, request: Request, draft_id: DraftId) -> Response:
        form = await posted(request)
        draft = await drafts.get(draft_id)
        try:
            days, cap = int(_one(form, "days") or 30), int(_one(form, "receipts") or replay.MAX_RECEIPTS)
        except ValueError:
            raise ValidationFailed("Days and receipts: whole numbers") from None
        result = await replay.replay_draft(draft.program, draft.document, days, web.utc_now(), cap)
        return await self._draft(request, draft, result=result, days=days, cap=cap)

    # --- the editor ---------------------------------------------------------------------------

    @get("/drafts/{draft_id:int}/new-rule", guards=MARKETING)
    async def new_rule(self, request: Request, draft_id: DraftId, group: Code = "",
                       kind: Annotated[str, QueryParameter(name="effect.kind", max_length=64)] = "") -> Response:
        draft = await drafts.get(draft_id)
        values = {"active": True, "priority": "0", "effect.kind": kind or "percent_points"}
        return await self._editor(request, draft, None, group, values)

    @get("/drafts/{draft_id:int}/rules/{rule_code:str}", guards=MARKETING)
    async def edit_rule(self, request: Request, draft_id: DraftId, rule_code: RuleCode,
                        kind: Annotated[str, QueryParameter(name="effect.kind", max_length=64)] = "") -> Response:
        draft = await drafts.get(draft_id)
        group, rule = drafts.rule_of(draft, rule_code)
        values = rule_to_form(rule)
        if kind and kind != values["effect.kind"]:
            values = {k: v for k, v in values.items() if not k.startswith("effect.")} | {"effect.kind": kind}
        return await self._editor(request, draft, rule_code, group, values)

    @get("/drafts/{draft_id:int}/effect-fields", guards=MARKETING)
    async def effect_fields(self, request: Request, draft_id: DraftId,
                            kind: Annotated[str, QueryParameter(name="effect.kind", max_length=64)] = "") -> Response:
        """htmx: the fields of another mechanic, as the marketer picks it."""
        await drafts.get(draft_id)
        return web.render(request, "office_rules_effect.html", mechanic=MECHANICS.get(kind), values={},
                          errors={}, label=label, unit_hints=UNIT_HINTS, json_hints=JSON_HINTS)

    async def _editor(self, request: Request, draft: drafts.DraftOut, rule_code: str | None, group: str,
                      values: dict[str, Any], *, errors: dict[str, str] | None = None,
                      general: list[str] | None = None, status: int = 200) -> Response:
        groups = draft.document.get("groups") or []
        tiers = [t.get("code") for t in (draft.document.get("settings") or {}).get("tiers", []) if isinstance(t, dict)]
        return await web.page(request, "office_rules_editor.html", status=status, draft=draft, rule_code=rule_code,
                              group=group or (groups[0]["code"] if groups else ""), groups=groups, tiers=tiers,
                              values=values, errors=errors or {}, general=general or [], mechanics=MECHANICS,
                              mechanic=MECHANICS.get(str(values.get("effect.kind"))), label=label,
                              unit_hints=UNIT_HINTS, json_hints=JSON_HINTS, weekdays=WEEKDAYS)

    @post("/drafts/{draft_id:int}/rules", guards=MARKETING)
    async def add_rule(self, request: Request, draft_id: DraftId) -> Response:
        return await self._save(request, draft_id, None)

    @post("/drafts/{draft_id:int}/rules/{rule_code:str}", guards=MARKETING)
    async def save_rule(self, request: Request, draft_id: DraftId, rule_code: RuleCode) -> Response:
        return await self._save(request, draft_id, rule_code)

    async def _save(self, request: Request, draft_id: int, rule_code: str | None) -> Response:
        form = await posted(request)
        draft = await drafts.get(draft_id)
        existing = drafts.rule_of(draft, rule_code)[1] if rule_code else None
        group = _one(form, "group")
        values: dict[str, Any] = {k: (v if k in ("schedule.weekdays", "target.tiers") else v[-1]) for k, v in form.items()}
        values["active"] = _one(form, "active") == "on"
        values["target.registered_only"] = _one(form, "target.registered_only") == "on"
        try:
            rule = rule_from_form(form, existing)
            await drafts.save_rule(draft_id, group, rule, web.actor_of(request), web.utc_now(), replacing=rule_code)
        except FormErrors as exc:
            return await self._editor(request, draft, rule_code, group, values, errors=exc.errors, status=422)
        except ValidationFailed as exc:
            fields = set(values) | {"group", "code", "effect.kind"}
            placed, general = by_field(messages_of(exc), str(values.get("code", "")), fields)
            return await self._editor(request, draft, rule_code, group, values, errors=placed, general=general,
                                      status=422)
        await web.flash(request, "Rule saved")
        return web.back_to(_draft_page(draft_id))

    @get("/drafts/{draft_id:int}/new-group", guards=MARKETING)
    async def new_group(self, request: Request, draft_id: DraftId) -> Response:
        draft = await drafts.get(draft_id)
        return await self._group(request, draft, None, {"stage": "accrual", "mode": "stack", "active": True,
                                                        "priority": "0"})

    @get("/drafts/{draft_id:int}/groups/{group_code:str}", guards=MARKETING)
    async def edit_group(self, request: Request, draft_id: DraftId, group_code: GroupCode) -> Response:
        draft = await drafts.get(draft_id)
        return await self._group(request, draft, group_code, group_to_form(drafts.group_of(draft, group_code)))

    async def _group(self, request: Request, draft: drafts.DraftOut, group_code: str | None, values: dict[str, Any],
                     *, errors: dict[str, str] | None = None, general: list[str] | None = None,
                     status: int = 200) -> Response:
        return await web.page(request, "office_rules_group.html", status=status, draft=draft, group_code=group_code,
                              values=values, errors=errors or {}, general=general or [])

    @post("/drafts/{draft_id:int}/groups", guards=MARKETING)
    async def add_group(self, request: Request, draft_id: DraftId) -> Response:
        return await self._save_group(request, draft_id, None)

    @post("/drafts/{draft_id:int}/groups/{group_code:str}", guards=MARKETING)
    async def save_group(self, request: Request, draft_id: DraftId, group_code: GroupCode) -> Response:
        return await self._save_group(request, draft_id, group_code)

    async def _save_group(self, request: Request, draft_id: int, group_code: str | None) -> Response:
        form = await posted(request)
        draft = await drafts.get(draft_id)
        existing = drafts.group_of(draft, group_code) if group_code else None
        values: dict[str, Any] = {k: v[-1] for k, v in form.items()}
        values["active"], values["cascade"] = _one(form, "active") == "on", _one(form, "cascade") == "on"
        try:
            group = group_from_form(form, existing)
            await drafts.save_group(draft_id, group, web.actor_of(request), web.utc_now(), replacing=group_code)
        except FormErrors as exc:
            return await self._group(request, draft, group_code, values, errors=exc.errors, status=422)
        except ValidationFailed as exc:
            placed, general = by_field(messages_of(exc), str(values.get("code", "")), set(values), what="group")
            return await self._group(request, draft, group_code, values, errors=placed, general=general, status=422)
        await web.flash(request, "Group saved")
        return web.back_to(_draft_page(draft_id))

    @get("/drafts/{draft_id:int}/settings", guards=MARKETING)
    async def settings(self, request: Request, draft_id: DraftId) -> Response:
        draft = await drafts.get(draft_id)
        return await self._settings(request, draft, settings_to_form(draft.document.get("settings") or {}))

    async def _settings(self, request: Request, draft: drafts.DraftOut, values: dict[str, Any], *,
                        errors: dict[str, str] | None = None, general: list[str] | None = None,
                        status: int = 200) -> Response:
        return await web.page(request, "office_rules_settings.html", status=status, draft=draft, values=values,
                              errors=errors or {}, general=general or [], fields=SETTINGS_FIELDS, label=label,
                              unit_hints=UNIT_HINTS, json_hints=JSON_HINTS)

    @post("/drafts/{draft_id:int}/settings", guards=MARKETING)
    async def save_settings(self, request: Request, draft_id: DraftId) -> Response:
        form = await posted(request)
        draft = await drafts.get(draft_id)
        values = {k: v[-1] for k, v in form.items()}
        try:
            settings = settings_from_form(values, draft.document.get("settings") or {})
            await drafts.save_settings(draft_id, settings, web.actor_of(request), web.utc_now())
        except FormErrors as exc:
            return await self._settings(request, draft, values, errors=exc.errors, status=422)
        except ValidationFailed as exc:
            placed: dict[str, str] = {}
            general = []
            for message in messages_of(exc):
                where, _, rest = message.partition(": ")
                field, _, text = rest.partition(": ")
                if where == "settings" and field in values:
                    placed[field] = text
                else:
                    general.append(message)
            return await self._settings(request, draft, values, errors=placed, general=general, status=422)
        await web.flash(request, "Settings saved")
        return web.back_to(_draft_page(draft_id))

    @post("/drafts/{draft_id:int}/rules/{rule_code:str}/delete", guards=MARKETING)
    async def delete_rule(self, request: Request, draft_id: DraftId, rule_code: RuleCode) -> Response:
        await posted(request)
        await self._act(request, drafts.delete_rule(draft_id, rule_code, web.actor_of(request), web.utc_now()),
                        "Rule removed")
        return web.back_to(_draft_page(draft_id))

    @get("/drafts/{draft_id:int}/raw", guards=MARKETING)
    async def raw(self, request: Request, draft_id: DraftId) -> Response:
        draft = await drafts.get(draft_id)
        return await web.page(request, "office_rules_raw.html", draft=draft,
                              text=json.dumps(draft.document, ensure_ascii=False, indent=2), general=[])

    @post("/drafts/{draft_id:int}/raw", guards=MARKETING)
    async def save_raw(self, request: Request, draft_id: DraftId) -> Response:
        form = await posted(request)
        draft = await drafts.get(draft_id)
        text = _one(form, "document")
        try:
            try:
                document = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(f"Not valid JSON: {exc.msg} (line {exc.lineno})") from None
            await drafts.save_document(draft_id, document, web.actor_of(request), web.utc_now())
        except ValidationFailed as exc:
            return await web.page(request, "office_rules_raw.html", status=422, draft=draft, text=text,
                                  general=messages_of(exc))
        await web.flash(request, "Document saved")
        return web.back_to(_draft_page(draft_id))

    # --- four eyes ----------------------------------------------------------------------------

    async def _act(self, request: Request, call: Any, done: str) -> None:
        try:
            await call
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            await web.flash(request, "! " + "; ".join(messages_of(exc)))
        else:
            await web.flash(request, done)

    @post("/drafts/{draft_id:int}/propose", guards=MARKETING)
    async def propose(self, request: Request, draft_id: DraftId) -> Response:
        form = await posted(request)
        draft = await drafts.get(draft_id)
        try:
            await drafts.propose(draft_id, web.actor_of(request), _one(form, "reason"), web.utc_now())
        except ValidationFailed as exc:
            return await self._draft(request, draft, status=422, problem="; ".join(messages_of(exc)))
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            await web.flash(request, "! " + exc.detail)
        else:
            await web.flash(request, "Proposed: waits for a second person")
        return web.back_to(_draft_page(draft_id))

    @post("/drafts/{draft_id:int}/approve", guards=MARKETING)
    async def approve(self, request: Request, draft_id: DraftId) -> Response:
        await posted(request)
        try:
            draft = await drafts.approve(draft_id, web.actor_of(request), web.utc_now())
        except DomainError as exc:
            if exc.status in (403, 404):
                raise
            await web.flash(request, "! " + exc.detail)  # e.g. someone else decided it a moment before
            return web.back_to(_draft_page(draft_id))
        if draft.status == "published":
            await web.flash(request, "Published")
        else:
            found = await drafts.get(draft_id)
            await web.flash(request, "! " + (await _failure(found) or "The draft could not be published"))
        return web.back_to(_draft_page(draft_id))

    @post("/drafts/{draft_id:int}/reject", guards=MARKETING)
    async def reject(self, request: Request, draft_id: DraftId) -> Response:
        form = await posted(request)
        await self._act(request, drafts.reject(draft_id, web.actor_of(request), _one(form, "reason"), web.utc_now()),
                        "Sent back to editing")
        return web.back_to(_draft_page(draft_id))

    @post("/drafts/{draft_id:int}/discard", guards=MARKETING)
    async def discard(self, request: Request, draft_id: DraftId) -> Response:
        await posted(request)
        await self._act(request, drafts.discard(draft_id, web.actor_of(request), web.utc_now()), "Draft discarded")
        return web.back_to(f"{web.PATH}/rules/")


async def _failure(draft: drafts.DraftOut) -> str:
    """Why the last approval of this draft failed (its problem), for the flash."""
    rows = await Program.raw(
        "SELECT result FROM pending_approval WHERE subject = {} AND status = 'failed' ORDER BY id DESC LIMIT 1",
        f"rules_draft:{draft.id}")
    if not rows:
        return ""
    result = json.loads(rows[0]["result"]) if isinstance(rows[0]["result"], str) else rows[0]["result"]
    return str((result or {}).get("problem", {}).get("detail", ""))
