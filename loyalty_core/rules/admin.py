"""The marketer edits a program's rules: groups, rules, settings. Every change is validated by the
engine and published as a new immutable rules version; confirmed sales keep the version they used.

The source of truth is the live version's document (Program.rules_version -> RulesVersion); an edit
takes the program's row lock, applies one change to a copy of that document and publishes the result,
so two marketers editing at once serialise and neither loses the other's change. The document is
edited as plain JSON so the engine's validation can name the rule and field of each problem.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec

from loyalty_core.engine import ProgramRules, ProgramSettings, RuleGroup, RuleValidationError, validate_program
from loyalty_core.engine.program import Rule
from loyalty_core.engine.validate import _locate
from loyalty_core import db
from loyalty_core.errors import Conflict, NotFound, ValidationFailed
from loyalty_core.piccolo_conf import DB
from loyalty_core.rules import programs
from loyalty_core.setup import entities as setup

# --- the statements ------------------------------------------------------------------------------------------

PROGRAM = "SELECT id, code, rules_version FROM program WHERE code = $1"
LOCK_PROGRAM = PROGRAM + " FOR UPDATE"
# $2 and $3 the cursor (the oldest version shown, or NULL), $4 the page
VERSIONS = (
    "SELECT version, comment, created_by, created_at FROM rules_version WHERE program = $1 "
    "AND ($2::int IS NULL OR version < $3) ORDER BY version DESC LIMIT $4"
)
VERSION = "SELECT version, comment, created_by, created_at FROM rules_version WHERE program = $1 AND version = $2"

Document = dict[str, Any]


class Edit(msgspec.Struct, frozen=True, kw_only=True):
    """How to publish: a dry run validates only; `expected_version` refuses a change based on a stale read."""

    author: str = ""
    comment: str = ""
    dry_run: bool = False
    expected_version: int | None = None


class RulesChange(msgspec.Struct, kw_only=True):
    program: str
    version: int  # the new live version; for a dry run, the live one (nothing was published)
    published: bool
    group: RuleGroup | None = None
    rule: Rule | None = None
    settings: ProgramSettings | None = None


class LiveRules(msgspec.Struct, kw_only=True):
    program: str
    version: int
    document: dict[str, Any]  # the engine's ProgramRules as JSON (Litestar cannot describe its struct defaults)


class VersionSummary(msgspec.Struct, kw_only=True):
    version: int
    live: bool
    comment: str
    created_by: str
    created_at: dt.datetime


class VersionDocument(VersionSummary, kw_only=True):
    document: dict[str, Any]  # the engine's ProgramRules as JSON


def checked(document: Document) -> ProgramRules:
    """The engine's verdict on a document; its messages name the rule and the field."""
    try:
        return validate_program(document)
    except RuleValidationError as exc:
        # msgspec quotes the path (`$.groups[0]...`); name the rule even where the engine's locator did not
        messages = [_locate(m.replace("`", ""), document) if " - at `$" in m else m for m in exc.messages]
        raise ValidationFailed(f"The rules are not valid: {'; '.join(messages)}", errors=messages) from None


async def _program(code: str, lock: bool = False) -> dict[str, Any]:
    row = await db.fetchrow(LOCK_PROGRAM if lock else PROGRAM, code)
    if row is None:
        raise NotFound(f"program {code!r} does not exist")
    return dict(row)


async def _raw_document(program_id: int, version: int) -> Document:
    document = await programs.stored_document(program_id, version)
    return msgspec.json.decode(document) if isinstance(document, str | bytes) else dict(document)


async def live_raw_document(program_code: str) -> tuple[dict[str, Any], Document]:
    """The program row and its live rules document as plain JSON (for a draft to start from)."""
    program = await _program(program_code)
    return program, await _raw_document(program["id"], program["rules_version"])


async def _edit(program_code: str, edit: Edit, change: Callable[[Document], Document]) -> tuple[int, bool, ProgramRules]:
    async with DB.transaction():
        program = await _program(program_code, lock=True)
        live = program["rules_version"]
        if edit.expected_version is not None and edit.expected_version != live:
            raise Conflict(
                f"The rules changed meanwhile: version {live} is live, the edit was based on {edit.expected_version}",
                live_version=live,
            )
        document = checked(change(await _raw_document(program["id"], live)))
        if edit.dry_run:
            return live, False, document
        version = await setup.publish_rules(program["id"], document, comment=edit.comment, author=edit.author)
        return version, True, document


# --- reading ------------------------------------------------------------------------------------


async def live_rules(program_code: str) -> LiveRules:
    program = await _program(program_code)
    document = await programs.rules_document(program["id"], program["rules_version"])
    return LiveRules(program=program_code, version=program["rules_version"], document=msgspec.to_builtins(document))


async def groups(program_code: str) -> list[RuleGroup]:
    program = await _program(program_code)
    return (await programs.rules_document(program["id"], program["rules_version"])).groups  # type: ignore[attr-defined, no-any-return]


def _find(items: list[Any], code: str, what: str) -> Any:
    for item in items:
        if item.code == code:
            return item
    raise NotFound(f"{what} {code!r} does not exist")


async def group(program_code: str, group_code: str) -> RuleGroup:
    return _find(await groups(program_code), group_code, "rule group")  # type: ignore[no-any-return]


async def versions(program_code: str, before: int | None, limit: int) -> list[VersionSummary]:
    program = await _program(program_code)
    rows = await db.fetch(VERSIONS, program["id"], before, before, limit)
    return [VersionSummary(live=r["version"] == program["rules_version"], **dict(r)) for r in rows]


async def version(program_code: str, number: int) -> VersionDocument:
    program = await _program(program_code)
    row = await db.fetchrow(VERSION, program["id"], number)
    if row is None:
        raise NotFound(f"program {program_code!r} has no rules version {number}")
    document = await programs.rules_document(program["id"], number)
    return VersionDocument(live=number == program["rules_version"], document=msgspec.to_builtins(document), **dict(row))


# --- changing -----------------------------------------------------------------------------------


def _index(items: list[Document], code: str, what: str) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("code") == code:
            return i
    raise NotFound(f"{what} {code!r} does not exist")


def _with_code(data: Document, code: str, what: str) -> Document:
    if data.get("code", code) != code:
        raise ValidationFailed(f"{what} code in the body ({data['code']!r}) differs from the one in the path ({code!r})")
    return {**data, "code": code}


def _require_code(data: Document, what: str) -> str:
    code = data.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValidationFailed(f"{what}: code: a non-empty string is required")
    return code


async def create_group(program_code: str, data: Document, edit: Edit) -> RulesChange:
    code = _require_code(data, "group")

    def change(doc: Document) -> Document:
        groups_ = doc.setdefault("groups", [])
        if any(g.get("code") == code for g in groups_):
            raise Conflict(f"rule group {code!r} already exists: change it with PUT")
        groups_.append(data)
        return doc

    version_, published, document = await _edit(program_code, edit, change)
    return RulesChange(program=program_code, version=version_, published=published,
                       group=_find(document.groups, code, "rule group"))


async def replace_group(program_code: str, group_code: str, data: Document, edit: Edit) -> RulesChange:
    data = _with_code(data, group_code, "group")

    def change(doc: Document) -> Document:
        groups_ = doc.setdefault("groups", [])
        groups_[_index(groups_, group_code, "rule group")] = data
        return doc

    version_, published, document = await _edit(program_code, edit, change)
    return RulesChange(program=program_code, version=version_, published=published,
                       group=_find(document.groups, group_code, "rule group"))


async def delete_group(program_code: str, group_code: str, edit: Edit) -> RulesChange:
    def change(doc: Document) -> Document:
        groups_ = doc.setdefault("groups", [])
        del groups_[_index(groups_, group_code, "rule group")]
        return doc

    version_, published, _ = await _edit(program_code, edit, change)
    return RulesChange(program=program_code, version=version_, published=published)


def _rules_of(doc: Document, group_code: str) -> list[Document]:
    groups_ = doc.setdefault("groups", [])
    return groups_[_index(groups_, group_code, "rule group")].setdefault("rules", [])  # type: ignore[no-any-return]


async def create_rule(program_code: str, group_code: str, data: Document, edit: Edit) -> RulesChange:
    code = _require_code(data, "rule")

    def change(doc: Document) -> Document:
        rules = _rules_of(doc, group_code)
        if any(r.get("code") == code for r in rules):
            raise Conflict(f"rule {code!r} already exists in group {group_code!r}: change it with PUT")
        rules.append(data)
        return doc

    return await _rule_change(program_code, group_code, code, edit, change)


async def replace_rule(program_code: str, group_code: str, rule_code: str, data: Document, edit: Edit) -> RulesChange:
    data = _with_code(data, rule_code, "rule")

    def change(doc: Document) -> Document:
        rules = _rules_of(doc, group_code)
        rules[_index(rules, rule_code, "rule")] = data
        return doc

    return await _rule_change(program_code, group_code, rule_code, edit, change)


async def delete_rule(program_code: str, group_code: str, rule_code: str, edit: Edit) -> RulesChange:
    def change(doc: Document) -> Document:
        rules = _rules_of(doc, group_code)
        del rules[_index(rules, rule_code, "rule")]
        return doc

    version_, published, document = await _edit(program_code, edit, change)
    return RulesChange(program=program_code, version=version_, published=published,
                       group=_find(document.groups, group_code, "rule group"))


async def _rule_change(
    program_code: str, group_code: str, rule_code: str, edit: Edit, change: Callable[[Document], Document]
) -> RulesChange:
    version_, published, document = await _edit(program_code, edit, change)
    group_ = _find(document.groups, group_code, "rule group")
    return RulesChange(program=program_code, version=version_, published=published, group=group_,
                       rule=_find(group_.rules, rule_code, "rule"))


async def replace_settings(program_code: str, data: Document, edit: Edit) -> RulesChange:
    """Tiers, limits, point value, activation and expiry: the program's settings as one object."""

    def change(doc: Document) -> Document:
        doc["settings"] = data
        return doc

    version_, published, document = await _edit(program_code, edit, change)
    return RulesChange(program=program_code, version=version_, published=published, settings=document.settings)


async def replace_document(program_code: str, data: Document, edit: Edit) -> RulesChange:
    """A whole rules document at once (an export from another environment, a rollback to an old version)."""
    version_, published, _ = await _edit(program_code, edit, lambda _: dict(data))
    return RulesChange(program=program_code, version=version_, published=published)


async def restore_version(program_code: str, number: int, edit: Edit) -> RulesChange:
    """Roll back: an old version's document published again as a new version (history stays linear)."""
    program = await _program(program_code)
    old = await _raw_document(program["id"], number)
    edit = msgspec.structs.replace(edit, comment=edit.comment or f"restore of version {number}")
    version_, published, _ = await _edit(program_code, edit, lambda _: old)
    return RulesChange(program=program_code, version=version_, published=published)
