"""The `kopilka` command: serve, migrate, demo data, till keys, card series, ledger jobs, the push worker.

Every command that touches the database starts (or joins) the embedded servers when no URL
is configured, then runs one coroutine that opens the pool, does the work and closes it.
Results go to stdout (one value per line where a script may read them); progress and
errors go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEMO_KEY_FILE = "demo_till_key"
DEMO_CARD_SECRETS_FILE = "demo_card_secrets.json"


class CommandError(Exception):
    """A failure the operator can fix: printed as one line, exit status 1."""


# --- output ----------------------------------------------------------------------------


def say(*lines: str) -> None:
    for line in lines:
        print(line, flush=True)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Progress:
    """Line-based progress on stderr: one line at every 10% step (and at the end)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self._shown = label, total, -1

    def update(self, done: int, extra: str = "") -> None:
        if self.total <= 0:
            return
        step = min(10, done * 10 // self.total)
        if step > self._shown:
            self._shown = step
            note(f"{self.label}: {done}/{self.total} ({step * 10}%){'  ' + extra if extra else ''}")


# --- running against the database -------------------------------------------------------


def _services() -> tuple[str, str, bool]:
    """(database URL, valkey URL, embedded?) — starting embedded servers for what is not configured."""
    from backend import infra
    from backend.settings import get_settings

    embedded = not (os.environ.get("KOPILKA_DATABASE_URL") and os.environ.get("KOPILKA_VALKEY_URL"))
    if embedded:
        note(f"starting embedded services under {get_settings().data_dir} ...")
    db_url, valkey_url = infra.ensure_services(get_settings().data_dir)
    return db_url, valkey_url, embedded


def run_db(work: Callable[[], Awaitable[T]], pool_max: int = 4, needs_schema: bool = True) -> T:
    """Run `work` in one event loop with the connection pool open around it."""
    from backend import cache_bus
    from loyalty_core import cache, db
    from loyalty_core.tables import Program

    db_url, valkey_url, _ = _services()
    db.configure(db_url, 1, pool_max)
    _configure_app_secret()

    async def invalidate(message: cache.Invalidation) -> None:
        await cache_bus.publish_once(valkey_url, message)

    async def main() -> T:
        # a command that revokes a key or changes the catalog tells the serving workers (their caches)
        cache.set_publisher(invalidate)
        try:
            async with db.pool():
                if needs_schema and (await Program.raw("SELECT to_regclass('program') IS NULL AS missing"))[0]["missing"]:
                    raise CommandError("the database has no schema yet: run `kopilka migrate` first")
                return await work()
        finally:
            cache.set_publisher(None)

    return asyncio.run(main())


# --- commands ----------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    from loyalty_core import db

    run_db(db.migrate, needs_schema=False)  # piccolo reports each migration it applies
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from loyalty_core.setup.demo import seed_demo

    info = run_db(lambda: seed_demo(datetime.now(UTC), force=args.force))
    if not info.created:
        say("A program already exists; nothing seeded (use --force to add another demo program).")
        return 0
    if info.till_key is not None:
        _remember_demo_key(info.till_key.key)
    _remember_card_secrets(info.card_secrets)
    say(*info.describe())
    return 0


def _actor() -> str:
    """Who ran the command, for the audit trail of key changes."""
    import getpass

    return f"cli ({getpass.getuser()})"


def cmd_till_key_create(args: argparse.Namespace) -> int:
    from loyalty_core.setup.keys import issue_till_key

    issued = run_db(lambda: issue_till_key(args.store, args.till, _actor(), datetime.now(UTC)))
    say(f"Till key {issued.key_id} for store {issued.store_code}, till {issued.till_code} (shown once; only its hash is stored):")
    say(issued.key)
    return 0


def cmd_till_key_list(args: argparse.Namespace) -> int:
    from loyalty_core.setup.keys import list_till_keys

    found = run_db(lambda: list_till_keys(args.store, include_revoked=args.all))
    _say_keys(found, "till", args.all, lambda k: f"store {k.store}\ttill {k.till}")
    return 0


def _say_keys(found: list[Any], kind: str, all_: bool, describe: Callable[[Any], str]) -> None:
    """`key list`: a line per key (id, prefix, what `describe` says of it, created, revoked), then the count."""
    for k in found:
        revoked = f"  revoked {k.revoked_at:%Y-%m-%d %H:%M:%S}" if k.revoked_at else ""
        say(f"{k.id}\t{k.prefix}…\t{describe(k)}\tcreated {k.created_at:%Y-%m-%d %H:%M:%S}{revoked}")
    note(f"{len(found)} {kind} key(s){'' if all_ else ' in use (--all: revoked ones too)'}")


def cmd_till_key_revoke(args: argparse.Namespace) -> int:
    from loyalty_core.setup.keys import revoke_till_key

    k = run_db(lambda: revoke_till_key(args.id, datetime.now(UTC), _actor()))
    say(f"till key {k.id} ({k.prefix}…, store {k.store}, till {k.till}) revoked at {k.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def cmd_operator_key_create(args: argparse.Namespace) -> int:
    from loyalty_core.setup.keys import create_operator_key

    issued = run_db(lambda: create_operator_key(args.name, args.role, _actor(), datetime.now(UTC)))
    say(f"Operator key {issued.id} {issued.name!r}, roles {', '.join(issued.roles)} (shown once; only its hash is stored):")
    say(issued.key)
    return 0


def cmd_operator_key_list(args: argparse.Namespace) -> int:
    from loyalty_core.setup.keys import list_operator_keys

    found = run_db(lambda: list_operator_keys(include_revoked=args.all))
    _say_keys(found, "operator", args.all, lambda k: f"{k.name}\troles {','.join(k.roles)}")
    return 0


def cmd_operator_key_revoke(args: argparse.Namespace) -> int:
    from loyalty_core.setup.keys import revoke_operator_key

    k = run_db(lambda: revoke_operator_key(args.id, datetime.now(UTC), _actor()))
    say(f"operator key {k.id} ({k.prefix}…, {k.name}) revoked at {k.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def cmd_staff_create(args: argparse.Namespace) -> int:
    """A back-office account; the password from a prompt (or one line of stdin when piped), never an argument."""
    import getpass

    from loyalty_core.office.staff import create

    password: str | None = None
    if not args.oidc:
        if sys.stdin.isatty():
            password = getpass.getpass("Password (12 characters or more): ")
            if getpass.getpass("Again: ") != password:
                raise CommandError("the passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\n")
    roles = [r for value in args.role for r in value.split(",") if r]
    made = run_db(lambda: create(args.email, roles, password, datetime.now(UTC), name=args.name or "", actor=_actor()))
    say(f"Staff member {made.id} {made.email}, roles {', '.join(made.roles)}")
    if made.totp_uri:
        say("Scan this into an authenticator app now (shown once; the second factor at every sign-in):")
        say(made.totp_uri)
    return 0


def _configure_app_secret() -> None:
    """Registration keys its welcome-bonus hashes with the app secret, as the server does (demo seeding, imports)."""
    from backend.settings import get_settings
    from loyalty_core.till import identify

    identify.configure_qr_secret(get_settings().security.secret_key)


def cmd_cards_emit(args: argparse.Namespace) -> int:
    """Large series go in parts (a tenth, at least 10 000), each its own transaction, printed as stored:
    one card a line, `number<TAB>secret`; the secret is printed with the card and shown only here."""
    from loyalty_core.setup.entities import emit_cards

    chunk = max(10_000, -(-args.count // 10))
    progress = Progress("emit", args.count)

    async def work() -> int:
        program_id = await _program_id(args.program)
        done = 0
        while done < args.count:
            cards = await emit_cards(program_id, args.series, min(chunk, args.count - done), kind=args.kind)
            say(*(f"{c.number}\t{c.secret}" for c in cards))
            done += len(cards)
            if args.count > chunk:
                progress.update(done)
        return done

    emitted = run_db(work)
    note(f"emitted {emitted} {args.kind} cards in series {args.series!r}")
    return 0


async def _program_id(code: str | None) -> int:
    from loyalty_core.tables import Program

    rows = await Program.select(Program.id, Program.code).order_by(Program.id)
    if code is not None:
        match = [r["id"] for r in rows if r["code"] == code]
        if not match:
            raise CommandError(f"program {code!r} does not exist (known: {', '.join(r['code'] for r in rows) or 'none'})")
        return match[0]
    if len(rows) == 1:
        return rows[0]["id"]
    if not rows:
        raise CommandError("there is no program yet: run `kopilka demo` or create one first")
    raise CommandError(f"several programs exist, pass --program (one of: {', '.join(r['code'] for r in rows)})")


def cmd_ledger_settle(args: argparse.Namespace) -> int:
    from backend.jobs import SettleResult, settle
    from loyalty_core.tables import Account

    now = datetime.now(UTC)

    async def work() -> SettleResult:
        rows = await Account.raw(
            "SELECT count(DISTINCT account) AS n FROM point_lot WHERE "
            "(state = 'pending' AND activates_at <= {}) OR (state = 'active' AND expires_at <= {})",
            now, now,
        )
        progress = Progress("settle", rows[0]["n"])
        note(f"settle: {progress.total} accounts have points due as of {now:%Y-%m-%d %H:%M:%S} UTC")
        # the same work the worker's scheduled `settle` job does (backend/jobs.py)
        report = await settle(
            now,
            args.batch,
            progress=lambda r: progress.update(
                r.accounts, f"activated {r.activated_points}, expired {r.expired_points}"  # type: ignore[attr-defined]
            ),
        )
        note(f"settle: {report.expiring_soon_queued} 'points expiring soon' messages queued")
        note(f"settle: {report.tier_changes} tiers changed as their 12-month window moved")
        return report

    report = run_db(work)
    say(
        f"settled {report.accounts} accounts in {report.batches} batches: "
        f"{report.activated_points} points activated, {report.expired_points} points expired"
    )
    return 0


def cmd_reports_refresh(args: argparse.Namespace) -> int:
    """What the worker's `reports` job does, now: sum the ledger into the finance reports' aggregates."""
    from loyalty_core.reports.refresh import refresh

    note("reports: summing " + ("every day of the ledger" if args.full else "the days since the last refresh")
         + " (one transaction; a big ledger's first full run takes minutes)")
    result = run_db(lambda: refresh(full=args.full))
    say(result.summary())
    return 1 if result.skipped else 0


def cmd_ledger_verify(args: argparse.Namespace) -> int:
    from loyalty_core.ledger.verify import verify_all

    checked: list[str] = []

    def progress(done: int, total: int, name: str) -> None:
        checked.append(name)
        note(f"verify: {done}/{total} {name}")

    violations = run_db(lambda: verify_all(progress=progress))
    if not violations:
        say(f"ledger OK: {len(checked)} invariants hold over all accounts")
        return 0
    say(f"LEDGER INVARIANTS VIOLATED: {len(violations)} finding(s)")
    for v in violations:
        say(f"- {v.invariant}: {v.subject}: {v.detail}")
    return 1


def _database_shape(db_url: str) -> tuple[int, int]:
    """(tables, server major version) of the database at `db_url`."""
    import asyncpg

    async def shape() -> tuple[int, int]:
        conn = await asyncpg.connect(db_url)
        try:
            tables = await conn.fetchval(
                "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
            return int(tables), int(await conn.fetchval("SHOW server_version_num")) // 10000
        finally:
            await conn.close()

    return asyncio.run(shape())


def cmd_backup(args: argparse.Namespace) -> int:
    from backend import backup

    db_url, _, _ = _services()
    note(f"backing up {_redact(db_url)} to {args.file} (online: tills keep working) ...")
    try:
        size = backup.backup(db_url, Path(args.file), *_database_shape(db_url))
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from exc
    say(f"backup written: {Path(args.file).resolve()} ({size} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from backend import backup

    if not Path(args.file).is_file():
        raise CommandError(f"{args.file}: no such file")
    db_url, _, _ = _services()
    existing, server_major = _database_shape(db_url)
    if existing and not args.replace:
        raise CommandError(f"{_redact(db_url)} already has {existing} tables: add --replace to drop them and load the "
                           "backup instead (stop `kopilka serve` and the worker first)")
    note(f"restoring {args.file} into {_redact(db_url)} (one transaction: all or nothing) ...")
    try:
        backup.restore(db_url, Path(args.file), replace=args.replace, server_major=server_major)
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from exc
    say(f"restored {args.file}; check it with `kopilka ledger verify`")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from backend.push.campaigns import run_campaign_sender
    from backend.push.worker import run_worker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kopilka").setLevel(logging.INFO)

    from backend import jobs

    try:
        schedule = jobs.parse_schedule()
    except jobs.ScheduleError as exc:
        raise CommandError(str(exc)) from exc
    if args.jobs:
        for job in run_db(lambda: jobs.statuses(schedule)):
            every = f"every {job.every}" if job.every else "off"
            last = f"last {job.last_started_at:%Y-%m-%d %H:%M:%S} UTC: {job.last_result}" if job.last_started_at else "never ran"
            due = f"next {job.next_at:%Y-%m-%d %H:%M:%S} UTC" if job.next_at else "-"
            say(f"{job.name}\t{every}\t{due}\t{last}\t({job.description})")
        note("schedule from KOPILKA_JOBS (name=10m,...; name=off); one worker leads them (PostgreSQL advisory lock)")
        return 0

    async def work() -> int:
        if args.once:
            return await run_worker(once=True)
        gauges = _serve_worker_metrics()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)  # finish the batch in hand, then stop
        note("worker running; Ctrl-C or SIGTERM stops it after the current batch")
        # the scheduled jobs run beside the outbox delivery; only the leader among the workers runs them
        scheduler = asyncio.create_task(jobs.run_scheduler(stop, schedule=schedule))
        # campaign messages have an outbox of their own (backend/push/campaigns.py), delivered beside it
        campaigns = asyncio.create_task(run_campaign_sender(stop))
        try:
            return await run_worker(stop)
        finally:
            stop.set()
            await scheduler
            await campaigns
            if gauges is not None:
                gauges.cancel()

    handled = run_db(work, pool_max=8)
    if args.once:
        say(f"delivered a batch of {handled} notification(s)")
    else:
        note("worker stopped")
    return 0


def _serve_worker_metrics() -> asyncio.Task[None] | None:
    """The worker's own /metrics (push results, job runs, its pool) on KOPILKA_WORKER_METRICS_PORT, loopback unless
    KOPILKA_WORKER_METRICS_HOST says otherwise: it has no token, so only a private network may reach it.
    Returns the task keeping the pool gauges fresh."""
    port = os.environ.get("KOPILKA_WORKER_METRICS_PORT")
    if not port:
        return None
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    host = os.environ.get("KOPILKA_WORKER_METRICS_HOST", "127.0.0.1")
    start_http_server(int(port), addr=host, registry=registry)
    note(f"worker metrics on http://{host}:{port}/metrics")
    from backend.observability import pool_gauges_loop

    return asyncio.create_task(pool_gauges_loop())


# --- serve -------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    metrics_dir = _metrics_dir()  # before anything imports prometheus_client: it picks its storage on import
    from backend.settings import default_public_url, get_settings

    if args.port is not None:
        os.environ["KOPILKA_PORT"] = str(args.port)
    if args.host is not None:
        os.environ["KOPILKA_HOST"] = args.host
    if args.dev:
        os.environ["KOPILKA_DEV_MODE"] = "1"  # the worker processes read it too
    get_settings.cache_clear()
    codes = _code_delivery(get_settings().server.host, args.unsafe_dev_gateway)  # before anything starts
    _refuse_a_taken_port(get_settings().server.host, get_settings().server.port)
    # Ctrl-C and SIGTERM end with a normal exit that stops the embedded servers we started or adopted
    _stop_on_sigterm()
    from backend import infra

    try:
        db_url, valkey_url, embedded = _services()
        infra.supervise_embedded()  # a dead embedded Valkey is started again within a second
        settings = get_settings()
        banner = run_db(lambda: _prepare(seed=args.demo), pool_max=2, needs_schema=False)
        server = settings.server
        base = default_public_url(server.host, server.port)
        say(
            "",
            f"Kopilka on {base}  ({args.workers} worker process{'es' if args.workers != 1 else ''})",
            f"  personal account  {base}/",
            f"  OpenAPI           {base}/schema",
            f"  liveness          {base}/health",
            f"  readiness         {base}/ready",
            f"  PostgreSQL        {'embedded, ' if embedded else ''}{_redact(db_url)}",
            f"  Valkey            {'embedded, ' if embedded else ''}{_redact(valkey_url)}",
            f"  sign-in codes     {codes}",
            *banner,
            "",
        )
        import uvicorn

        from backend import observability

        uvicorn.run(
            "backend.app:create_app",
            factory=True,
            host=server.host,
            port=server.port,
            workers=args.workers,
            log_level=args.log_level,
            proxy_headers=True,
            forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
            access_log=False,  # the app logs one JSON line per request, with its request id (backend.observability)
            log_config=observability.uvicorn_log_config(),  # uvicorn's own lines as JSON too
            # a stop never waits for ever on a connection that stays open (a live page's stream, a slow client)
            timeout_graceful_shutdown=10,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if metrics_dir is not None:
            import shutil

            shutil.rmtree(metrics_dir, ignore_errors=True)
        # a second Ctrl-C or SIGTERM must not cut the stop short and leave a server behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        infra.stop_embedded()
    note("kopilka stopped")
    return 0


def _metrics_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR for this server's worker processes: each writes its samples there and /metrics
    adds them up. A directory of this server's own (removed when it stops), unless the operator set one
    (then it must be emptied before each start, docs/operations.md)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    import tempfile

    path = tempfile.mkdtemp(prefix="kopilka-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


async def _prepare(seed: bool) -> list[str]:
    """Migrate, seed the demo when the database has no program, and describe what a visitor can use."""
    from loyalty_core import db
    from loyalty_core.setup.demo import load_demo, seed_demo

    await db.migrate()
    if seed:
        info = await seed_demo(datetime.now(UTC))
        if info.created:
            note("seeded the demo program (empty database)")
            if info.till_key is not None:
                _remember_demo_key(info.till_key.key)
            _remember_card_secrets(info.card_secrets)
    demo = await load_demo()
    if demo is None:
        return []
    key = await _demo_till_key(demo)
    demo.card_secrets = await _demo_card_secrets(demo)
    return ["", *demo.describe(till_key=key)]


def _card_secrets_file() -> Path:
    return _key_file().with_name(DEMO_CARD_SECRETS_FILE)


def _remember_card_secrets(found: dict[str, str]) -> None:
    path = _card_secrets_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=1) + "\n")
    path.chmod(0o600)


async def _demo_card_secrets(demo: Any) -> dict[str, str]:
    """The secrets printed with the demo cards shown, kept beside the demo till key (the database has only
    their hashes); cards whose kept secret no longer matches get a new one."""
    from loyalty_core.setup.demo import card_secrets_for

    path = _card_secrets_file()
    try:
        remembered = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        remembered = {}
    found = await card_secrets_for(demo, remembered if isinstance(remembered, dict) else {})
    if found != remembered:
        _remember_card_secrets(found)
    return found


def _key_file() -> Path:
    from backend.settings import get_settings

    return get_settings().data_dir / DEMO_KEY_FILE


def _remember_demo_key(key: str) -> None:
    path = _key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)


async def _demo_till_key(demo: Any) -> str | None:
    """The demo till's key kept under the data dir; a fresh one when it is missing or no longer valid."""
    from loyalty_core.setup.entities import create_till_key, hash_secret
    from loyalty_core.tables import TillKey

    path = _key_file()
    if path.exists():
        key = path.read_text().strip()
        if key and await TillKey.exists().where((TillKey.key_hash == hash_secret(key)) & TillKey.revoked_at.is_null()):
            return key
    if demo.till is None:
        return None
    issued = await create_till_key(*demo.till)
    _remember_demo_key(issued.key)
    return issued.key


def _refuse_a_taken_port(host: str, port: int) -> None:
    """Say so before migrating and printing URLs that belong to whoever holds the port (uvicorn would only
    fail after all that, with "[Errno 98] ... address already in use" under the banner)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed port in TIME_WAIT is free
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"port {port} on {host} is already in use (another `kopilka serve` or `make run`?): stop it, "
                    "or choose another port with --port or KOPILKA_PORT"
                ) from None
            raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _code_delivery(host: str, unsafe: bool) -> str:
    """How sign-in codes leave the server; the development gateway only on loopback unless told it is unsafe."""
    from backend.settings import get_settings

    get_settings.cache_clear()  # `serve --dev` has just set the environment
    identity = get_settings().identity
    if not identity.dev_mode:
        return identity.otp_gateway or "NO GATEWAY: shoppers cannot sign in (set KOPILKA_OTP_GATEWAY, docs/identity.md)"
    if not _is_loopback(host):
        if not unsafe:
            raise CommandError(
                f"refusing to serve on {host} in development mode (--dev, KOPILKA_DEV_MODE or KOPILKA_OTP_GATEWAY=dev): "
                "its code gateway prints every sign-in code to the log instead of sending it, so anyone who can "
                "reach this address could sign in as any shopper. Configure KOPILKA_OTP_GATEWAY (docs/identity.md), "
                "or serve on 127.0.0.1; for a throwaway demo add --unsafe-dev-gateway"
            )
        note(f"WARNING: development code gateway on {host}: whoever reads this log can sign in as any shopper")
    return "printed in this log by the development gateway (--dev; never on a public address)"


def _redact(url: str) -> str:
    """Hide a password in a URL for printing."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# --- argument parsing ------------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {number}")
    return number


def _code(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 64:
        raise argparse.ArgumentTypeError("must be 1..64 characters")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kopilka", description="Kopilka loyalty platform")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="migrate, seed the demo when empty, and serve the API")
    serve.add_argument("--host", help="bind address (default KOPILKA_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=_positive, help="port (default KOPILKA_PORT or 8000)")
    serve.add_argument("--workers", type=_positive, default=int(os.environ.get("KOPILKA_WORKERS", "1")),
                       help="worker processes (default KOPILKA_WORKERS or 1)")
    serve.add_argument("--no-demo", dest="demo", action="store_false",
                       default=os.environ.get("KOPILKA_SEED_DEMO", "1").lower() not in {"0", "false", "no", "off"},
                       help="do not seed the demo program into an empty database (also KOPILKA_SEED_DEMO=0)")
    serve.add_argument("--dev", action="store_true",
                       help="development mode: sign-in codes are printed in the log instead of sent (loopback only)")
    serve.add_argument("--unsafe-dev-gateway", action="store_true",
                       help="allow development mode on a non-loopback address: anyone reading the log can sign in as anyone")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(handler=cmd_migrate)

    demo = commands.add_parser("demo", help="seed the demo program, stores, catalog, cards and shoppers")
    demo.add_argument("--force", action="store_true", help="add another demo program even if programs exist")
    demo.set_defaults(handler=cmd_demo)

    till_key = commands.add_parser("till-key", help="till API keys").add_subparsers(dest="action", required=True, metavar="ACTION")
    create = till_key.add_parser("create", help="issue a key for a till (the till is created on first use)")
    create.add_argument("--store", required=True, type=_code, help="store code")
    create.add_argument("--till", required=True, type=_code, help="till code within the store")
    create.set_defaults(handler=cmd_till_key_create)
    listing = till_key.add_parser("list", help="keys in use, one per line: id, prefix, store, till, created")
    listing.add_argument("--store", type=_code, help="only this store's tills")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.set_defaults(handler=cmd_till_key_list)
    revoke = till_key.add_parser("revoke", help="revoke a key (its id from `till-key list`); it stops working at once")
    revoke.add_argument("id", type=_positive, help="key id")
    revoke.set_defaults(handler=cmd_till_key_revoke)

    operator_key = commands.add_parser("operator-key", help="operator API keys with roles").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create = operator_key.add_parser("create", help="issue an operator key; the key is the last line, shown once")
    create.add_argument("--name", required=True, help="who or what uses the key, e.g. 'call centre desk 4'")
    create.add_argument("--role", required=True, action="append", choices=["admin", "support", "marketer", "import"],
                        help="repeat for several roles; admin may do everything, keys included")
    create.set_defaults(handler=cmd_operator_key_create)
    listing = operator_key.add_parser("list", help="keys in use, one per line: id, prefix, name, roles, created")
    listing.add_argument("--all", action="store_true", help="revoked keys too")
    listing.set_defaults(handler=cmd_operator_key_list)
    revoke = operator_key.add_parser("revoke", help="revoke a key (its id from `operator-key list`) at once")
    revoke.add_argument("id", type=_positive, help="key id")
    revoke.set_defaults(handler=cmd_operator_key_revoke)

    staff = commands.add_parser("staff", help="back-office staff accounts (/office)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create = staff.add_parser("create", help="a local account (password + TOTP; prints the TOTP URI once) or --oidc")
    create.add_argument("--email", required=True, help="the staff member's e-mail (their sign-in name)")
    create.add_argument("--role", required=True, action="append",
                        help="support, marketer, admin, import or auditor; repeat or separate with commas")
    create.add_argument("--name", help="shown in the back office and the audit")
    create.add_argument("--oidc", action="store_true",
                        help="no password: signs in with the company's OIDC provider, with these roles")
    create.set_defaults(handler=cmd_staff_create)

    cards = commands.add_parser("cards", help="card series").add_subparsers(dest="action", required=True, metavar="ACTION")
    emit = cards.add_parser("emit", help="emit a series of unregistered cards and print their numbers and secrets")
    emit.add_argument("--series", required=True, type=_code, help="series name, e.g. plastic-2026-11")
    emit.add_argument("--count", required=True, type=_positive, help="how many cards")
    emit.add_argument("--program", type=_code, help="program code (needed when there are several)")
    emit.add_argument("--kind", default="plastic", choices=["plastic", "virtual"])
    emit.set_defaults(handler=cmd_cards_emit)

    ledger = commands.add_parser("ledger", help="ledger jobs").add_subparsers(dest="action", required=True, metavar="ACTION")
    settle = ledger.add_parser("settle", help="apply due activations and expirations in batches")
    settle.add_argument("--batch", type=_positive, default=500, help="accounts per transaction (default 500)")
    settle.set_defaults(handler=cmd_ledger_settle)
    ledger.add_parser("verify", help="check every ledger invariant; exit 1 when one fails").set_defaults(
        handler=cmd_ledger_verify
    )

    reports = commands.add_parser("reports", help="finance reports").add_subparsers(dest="action", required=True,
                                                                                  metavar="ACTION")
    refresh = reports.add_parser("refresh", help="sum the ledger into the finance reports now (the worker's job)")
    refresh.add_argument("--full", action="store_true", help="re-sum every day, not only the days since the last run")
    refresh.set_defaults(handler=cmd_reports_refresh)

    backup = commands.add_parser("backup", help="write a consistent copy of the database to FILE while it serves")
    backup.add_argument("file", help="where to write the backup (pg_dump custom format)")
    backup.set_defaults(handler=cmd_backup)
    restore = commands.add_parser("restore", help="load a backup made by `kopilka backup` (all or nothing)")
    restore.add_argument("file", help="the backup file")
    restore.add_argument("--replace", action="store_true",
                         help="drop what the database holds first (stop serve and the worker before)")
    restore.set_defaults(handler=cmd_restore)

    worker = commands.add_parser("worker", help="deliver the notification outbox (push, wallet pass updates)")
    worker.add_argument("--once", action="store_true", help="deliver one batch and exit")
    worker.add_argument("--jobs", action="store_true", help="show the scheduled jobs (KOPILKA_JOBS), when they last ran and run next")
    worker.set_defaults(handler=cmd_worker)

    from backend.imports_cli import add_parser as add_import_parser

    add_import_parser(commands)
    from backend.segments_cli import add_parser as add_segments_parser

    add_segments_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from loyalty_core.errors import DomainError

    try:
        return int(args.handler(args) or 0)
    except (CommandError, DomainError) as exc:
        note(f"kopilka: error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
