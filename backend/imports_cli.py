"""`kopilka import`: bring a chain's existing programme over (loyalty_core/imports, docs/import.md).

Dry run by default (validate, stage, report what would happen); `--apply` writes. Exit 0 only when the run is
applied and balanced (every accepted point is in the database), or a dry run found the files readable."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path


class _RichHooks:
    """A progress bar per file with rate and ETA (rich, as `kopilka backup`), and a line per applied phase."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskProgressColumn,
                                   TextColumn, TimeRemainingColumn)
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task):  # type: ignore[no-untyped-def]
                return Text(f"{task.speed:,.0f} rows/s" if task.speed else "")

        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                                 Rate(), TimeRemainingColumn(), console=self.console)
        self.task: object = None
        self.clock = time.monotonic()

    def file_started(self, name: str, kind: str, total_lines: int) -> None:
        if self.task is None:
            self.progress.start()
        self.task = self.progress.add_task(f"{name} ({kind})", total=max(total_lines - 1, 1))

    def rows_read(self, count: int) -> None:
        self.progress.advance(self.task, count)  # type: ignore[arg-type]

    def file_done(self, name: str) -> None:
        task = self.progress.tasks[-1]
        self.progress.update(self.task, completed=task.total)  # type: ignore[arg-type]

    def finish(self) -> None:
        self.progress.stop()

    def phase_done(self, phase: str) -> None:
        now = time.monotonic()
        self.console.print(f"import: {phase} applied ({now - self.clock:.1f} s)")
        self.clock = now


def cmd_import(args: argparse.Namespace) -> int:
    from backend.cli import CommandError, _actor, _program_id, note, run_db, say
    from loyalty_core.imports import read, report
    from loyalty_core.imports import run as runs

    inputs = [Path(p) for p in args.paths]
    if args.suggest_mapping:
        try:
            say(read.suggest_mapping(read.list_files(inputs)))
        except read.ReadError as exc:
            raise CommandError(str(exc)) from None
        return 0
    try:
        mapping = read.load_mapping(Path(args.mapping) if args.mapping else None)
    except read.ReadError as exc:
        raise CommandError(str(exc)) from None
    out_dir = Path(args.report_dir)
    now = datetime.now(UTC)
    hooks = _RichHooks()

    async def work() -> tuple[report.Reconciliation, int, bool]:
        program = await runs.load_program(await _program_id(args.program))
        try:
            staged = await runs.stage(program, inputs, mapping, now, hooks)
        except read.ReadError as exc:
            raise CommandError(str(exc)) from None
        finally:
            hooks.finish()
        note(f"import: run {staged.run[:12]} ({'staged now' if staged.fresh else 'already staged: the same files'})")
        if args.apply:
            hooks.clock = time.monotonic()
            done = await runs.apply(program, staged.run, now, _actor(), hooks)
            if not done:
                note("import: this run was applied before: nothing changed")
        rec = await report.reconcile(staged.run)
        out_dir.mkdir(parents=True, exist_ok=True)
        rejected = await report.write_rejects(staged.run, out_dir / f"import-{staged.run[:12]}-rejects.csv")
        return rec, rejected, staged.fresh

    rec, rejected, _ = run_db(work)
    text = report.markdown(rec, dry_run=not args.apply)
    md = out_dir / f"import-{rec.run[:12]}.md"
    md.write_text(text, encoding="utf-8")
    say(text)
    say(f"report: {md.resolve()}", f"rejects: {(out_dir / f'import-{rec.run[:12]}-rejects.csv').resolve()} ({rejected} rows)")
    if not args.apply:
        return 0
    return 0 if rec.balanced else 1


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    imp = commands.add_parser("import", help="import a legacy programme's members, cards, balances and tiers "
                                             "(dry run unless --apply; docs/import.md)")
    imp.add_argument("paths", nargs="+", help="a directory of exports, or the files (CSV or JSON Lines)")
    imp.add_argument("--program", help="program code (needed when there are several)")
    imp.add_argument("--mapping", help="TOML: which column is which field, and the formats (docs/import.md)")
    imp.add_argument("--apply", action="store_true", help="write (without it: validate, stage and report only)")
    imp.add_argument("--suggest-mapping", action="store_true", help="print a draft mapping from the files' headers")
    imp.add_argument("--report-dir", default=".", help="where the report and the rejects file go (default: here)")
    imp.set_defaults(handler=cmd_import)
