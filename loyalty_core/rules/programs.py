"""Rules documents by version, compiled once per program version and cached across requests."""

from __future__ import annotations

from typing import Any

import msgspec

from loyalty_core.errors import NotFound
from loyalty_core.tables import RulesVersion

_compiled: dict[tuple[int, int], object] = {}
_documents: dict[tuple[int, int], object] = {}


async def stored_document(program_id: int, version: int) -> Any:
    """A rules version's document as stored (JSON text or the decoded column); NotFound if there is none."""
    row = await (
        RulesVersion.select(RulesVersion.document)
        .where((RulesVersion.program == program_id) & (RulesVersion.version == version))
        .first()
    )
    if row is None:
        raise NotFound(f"program {program_id} has no rules version {version}")
    return row["document"]


async def rules_document(program_id: int, version: int) -> object:
    from loyalty_core.engine import ProgramRules

    key = (program_id, version)
    if key not in _documents:
        document = msgspec.json.decode(await stored_document(program_id, version), type=ProgramRules)
        _documents[key] = msgspec.structs.replace(document, version=version)
    return _documents[key]


async def compiled_program(program_id: int, version: int) -> object:
    """The engine's compiled program; versions are immutable, so the cache never goes stale."""
    from loyalty_core.engine import compile_program

    key = (program_id, version)
    if key not in _compiled:
        _compiled[key] = compile_program(await rules_document(program_id, version))  # type: ignore[arg-type]
    return _compiled[key]
