"""`kopilka serve` on a fresh machine: embedded servers, migrations, demo data, then a clean stop."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from loyalty_core.cards import is_valid_card_number
from tests import servers
from tests.cli.conftest import ROOT, kopilka_argv


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's temp root: another pytest starting meanwhile resets that root to 0700,
    and the embedded PostgreSQL (its own system user when run as root) could no longer reach it."""
    path = Path(tempfile.mkdtemp(prefix="kopilka-serve-"))
    yield path / "kopilka"
    # a failed test may leave servers behind: stop any process still using the directory
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if str(path) in " ".join(p.info["cmdline"] or [])]
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(leftovers, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    shutil.rmtree(path, ignore_errors=True)


def test_serve_starts_everything_itself_and_stops_cleanly_on_sigterm(tmp_path: Path, data_dir: Path) -> None:
    port = servers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPILKA_")}
    env.update(KOPILKA_DATA_DIR=str(data_dir), KOPILKA_SECRET_KEY="serve-test")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*kopilka_argv(), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        try:
            ready = _wait_ready(proc, f"http://127.0.0.1:{port}/ready", log)
            assert ready == {"status": "ok", "checks": {"postgresql": "ok", "valkey": "ok"}}
            key = re.search(r"demo till key\s+(tk_\S+)", log.read_text())
            assert key, log.read_text()
            shopper = httpx.post(f"http://127.0.0.1:{port}/pos/v1/identify", json={"scan": "+79990000001"},
                                 headers={"Authorization": f"Bearer {key[1]}"}, timeout=10)
            assert shopper.status_code == 200, shopper.text
            assert shopper.json()["member"]["name"] == "Анна Смирнова"
            started = psutil.Process(proc.pid).children(recursive=True)
            postmaster = data_dir / "pg" / "postmaster.pid"
            assert postmaster.exists()

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

    output = log.read_text()
    assert f"http://127.0.0.1:{port}/schema" in output and "/ready" in output
    cards = re.findall(r"\b\d{13}\b", output.split("plastic cards", 1)[1].splitlines()[0])
    assert len(cards) >= 5 and all(is_valid_card_number(c) for c in cards)
    assert "Traceback" not in output
    assert not postmaster.exists(), "the embedded PostgreSQL is still running"
    socket_path = re.search(r"Valkey\s+embedded, unix://(\S+)", output)
    assert socket_path and not Path(socket_path[1]).exists(), "the embedded Valkey is still running"
    _, alive = psutil.wait_procs(started, timeout=10)  # multiprocessing's helper may take a moment
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], f"left behind: {alive}"


def _wait_ready(proc: subprocess.Popen[str], url: str, log: Path, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("serve exited early:\n" + log.read_text())
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not become ready:\n" + log.read_text())


def _serve_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPILKA_")}
    env.update(KOPILKA_DATA_DIR=str(data_dir), KOPILKA_SECRET_KEY="serve-test")
    return env


def _start_serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[str]:
    """`kopilka serve` in a process group of its own, as a terminal or a service manager runs it."""
    with open(log, "a") as out:
        return subprocess.Popen(
            [*kopilka_argv(), "serve", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=_serve_env(data_dir), stdout=out, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )


@contextlib.contextmanager
def _serving(data_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`kopilka serve`, ready, and its base URL; the test stops or kills it, its group is killed if left running."""
    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_serve(data_dir, port, log)
    try:
        _wait_ready(proc, base + "/ready", log)
        yield proc, base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _postgres_of(data_dir: Path) -> list[psutil.Process]:
    """Every postgres process serving this data dir (the postmaster names it on its command line)."""
    pgdata = str((data_dir / "pg").resolve())
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and pgdata in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _valkey_of(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    return [p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "valkey-server"]


def test_serve_after_a_kill_9_stops_the_database_it_adopted(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "serve.log"
    with _serving(data_dir, log) as (killed, _):
        postmaster = _postgres_of(data_dir)
        assert postmaster, "the embedded PostgreSQL is not running"
        os.killpg(killed.pid, signal.SIGKILL)  # the whole group: serve, its uvicorn, its Valkey
        killed.wait(10)
        assert _postgres_of(data_dir), "PostgreSQL runs detached: it outlives the killed group"

    with _serving(data_dir, log) as (second, _):
        assert {p.pid for p in _postgres_of(data_dir)} == {p.pid for p in postmaster}, "adopted, not restarted"
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, log.read_text()

    _, left = psutil.wait_procs(postmaster, timeout=15)
    assert not left and not _postgres_of(data_dir), f"the embedded PostgreSQL is still running: {left}"
    assert not (data_dir / "pg" / "postmaster.pid").exists()
    assert "Traceback" not in log.read_text()


def test_serve_restarts_the_embedded_valkey_when_it_dies(tmp_path: Path, data_dir: Path) -> None:
    log = tmp_path / "serve.log"
    with _serving(data_dir, log) as (proc, base):
        (first,) = _valkey_of(proc)
        first.kill()
        first.wait(10)

        deadline = time.monotonic() + 15
        while not (restarted := _valkey_of(proc)):
            assert time.monotonic() < deadline, "the embedded Valkey was not started again:\n" + log.read_text()
            time.sleep(0.1)
        assert restarted[0].pid != first.pid
        # the app's client reconnects to the new server: /ready pings it through that client
        assert _wait_ready(proc, base + "/ready", log, timeout=15)["checks"]["valkey"] == "ok"

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    assert not _postgres_of(data_dir)
    assert "Traceback" not in log.read_text()
