"""`kopilka serve` on a fresh machine: embedded servers, migrations, demo data, then a clean stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from loyalty_core.cards import is_valid_card_number
from tests.cli.conftest import ROOT, kopilka_argv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's temp root: another pytest starting meanwhile resets that root to 0700,
    and the embedded PostgreSQL (its own system user when run as root) could no longer reach it."""
    path = Path(tempfile.mkdtemp(prefix="kopilka-serve-"))
    yield path / "kopilka"
    shutil.rmtree(path, ignore_errors=True)


def test_serve_starts_everything_itself_and_stops_cleanly_on_sigterm(tmp_path: Path, data_dir: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPILKA_")}
    env.update(KOPILKA_DATA_DIR=str(data_dir), KOPILKA_SECRET_KEY="serve-test")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*kopilka_argv(), "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
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
                proc.kill()

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
