"""`kopilka segments ...`: list a program's segments, recompute them (all dynamic ones, or one), upload a static
segment's list from a CSV file, run the member events job by hand (docs/marketing.md)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cmd_list(args: argparse.Namespace) -> int:
    from backend.cli import run_db, say
    from loyalty_core.marketing import segments

    found = run_db(lambda: segments.list_segments(args.program))
    say(*(f"{s.code}\t{s.kind}\t{s.status}\t{s.member_count}\t{s.recomputed_at or '-'}\t{s.name}" for s in found))
    return 0


def cmd_recompute(args: argparse.Namespace) -> int:
    from backend.cli import run_db, say
    from loyalty_core.marketing import segments

    if args.code:
        if not args.program:
            raise SystemExit("kopilka segments recompute CODE needs --program")
        results = [run_db(lambda: segments.recompute_segment(args.program, args.code, _now()))]
    else:
        results = run_db(lambda: segments.recompute_all(
            _now(), progress=lambda r: say(f"{r.segment}: {r.members} members (+{r.added} -{r.removed}) {r.seconds} s")))
    say(f"{len(results)} segments recomputed")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from backend.cli import _actor, run_db, say
    from loyalty_core.marketing import segments

    text = Path(args.file).read_text(encoding="utf-8-sig")
    result = run_db(lambda: segments.upload_static(args.program, args.code, text, args.mode, _actor(), _now()))
    say(f"{result.rows} rows, {result.matched} matched, {result.members} members in {result.segment}",
        *(f"line {u.line}: {u.kind} {u.value}: {u.reason}" for u in result.unmatched))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from backend.cli import run_db, say
    from loyalty_core.marketing.events import run_member_events

    report = run_db(lambda: run_member_events(_now(), progress=lambda code: say(f"program {code} done")))
    say(report.summary())
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    seg = commands.add_parser("segments", help="member segments and member events (docs/marketing.md)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    listing = seg.add_parser("list", help="a program's segments: code, kind, status, members, recomputed, name")
    listing.add_argument("--program", required=True)
    listing.set_defaults(handler=cmd_list)
    recompute = seg.add_parser("recompute", help="recompute every dynamic segment, or one (CODE --program P)")
    recompute.add_argument("code", nargs="?")
    recompute.add_argument("--program")
    recompute.set_defaults(handler=cmd_recompute)
    upload = seg.add_parser("upload", help="a static segment's list from a CSV of cards, phones or member ids")
    upload.add_argument("code")
    upload.add_argument("file")
    upload.add_argument("--program", required=True)
    upload.add_argument("--mode", choices=("replace", "add"), default="replace")
    upload.set_defaults(handler=cmd_upload)
    seg.add_parser("events", help="run the member events job now (birthdays, referrals, ...)").set_defaults(
        handler=cmd_events)
