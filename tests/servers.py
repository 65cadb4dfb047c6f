"""The app under uvicorn as a real process, for the suite's server and for tests that need one of their own
(other settings, several workers, a dependency of its own): start it, wait until it answers, stop it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(url: str, timeout: float = 1) -> int:
    """The status code of a GET, 0 while nothing answers."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return 0


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    """Until `ready()`; the process exiting first, or the time running out, fails with its log."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("the server did not get there:\n" + log.read_text())
        time.sleep(0.1)


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, as a service manager stops it; SIGKILL when it does not exit in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


class Server(NamedTuple):
    base: str
    proc: subprocess.Popen
    log: Path


@contextlib.contextmanager
def uvicorn_app(
    log: Path, *uvicorn_args: str, env: Mapping[str, str] | None = None, extra_env: Mapping[str, str] | None = None,
    log_level: str = "warning", ready: Callable[[], bool] | None = None, ready_path: str = "/health",
    timeout: float = 60, stop_timeout: float = 30,
) -> Iterator[Server]:
    """`backend.app:create_app` on a free loopback port, its output in `log`, with `env` (default: this process's)
    plus its port and public URL, the test secret and `extra_env`; ready when `ready()` holds, by default when
    `ready_path` answers 200. Stopped on exit."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = dict(os.environ if env is None else env, KOPILKA_PORT=str(port), KOPILKA_PUBLIC_URL=base,
                       KOPILKA_SECRET_KEY="test-secret")
    environment.update(extra_env or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", log_level, *uvicorn_args],
            cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(ready or (lambda: status(base + ready_path) == 200), proc, log, timeout)
        yield Server(base, proc, log)
    finally:
        stop(proc, stop_timeout)
