"""Start `kopilka serve` instances (and other kopilka commands) as real processes against the test services."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.cli.conftest import ROOT, kopilka_argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited early:\n" + log.read_text())
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{proc.args} did not become ready:\n" + log.read_text())


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextlib.contextmanager
def serving(log: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None,
            workers: int = 1) -> Iterator[str]:
    """`kopilka serve --no-demo` on its own port (the services' URLs come from the environment); its base URL."""
    port = port or free_port()
    environment = dict(env or os.environ)
    environment.setdefault("KOPILKA_SECRET_KEY", "test-secret")
    environment["KOPILKA_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [*kopilka_argv(), "serve", "--no-demo", "--port", str(port), "--workers", str(workers),
             "--log-level", "warning", *args],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, base + "/ready", log)
        yield base
    finally:
        stop(proc)
