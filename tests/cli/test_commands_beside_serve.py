"""A `kopilka` command run while `make run` serves (the README's till-key create, ledger settle ...)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

import psutil

from tests import servers
from tests.cli.conftest import ROOT, kopilka_argv
from tests.cli.test_serve import _serve_env, _serving, _valkey_of, _wait_ready, data_dir  # noqa: F401


def test_a_command_beside_serve_joins_its_valkey_and_leaves_it_running(tmp_path, data_dir) -> None:  # noqa: F811
    # it used to start a Valkey of its own on the same socket: serve's server was stopped as "stale", and the
    # socket vanished when the command exited, so serve's /ready stayed 503 until it was restarted
    log = tmp_path / "serve.log"
    with _serving(data_dir, log) as (proc, base):
        (valkey,) = _valkey_of(proc)
        socket_path = re.search(r"Valkey\s+embedded, unix://(\S+)", log.read_text())[1]

        for command in (["till-key", "list"], ["ledger", "settle"]):
            done = subprocess.run([*kopilka_argv(), *command], cwd=ROOT, env=_serve_env(data_dir),
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            assert "stopping a server left by a killed process" not in done.stderr

        assert valkey.is_running() and [p.pid for p in _valkey_of(proc)] == [valkey.pid]
        assert os.path.exists(socket_path)
        assert _wait_ready(proc, base + "/ready", log, timeout=5)["checks"]["valkey"] == "ok"
        assert "embedded Valkey exited" not in log.read_text()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    _, left = psutil.wait_procs([valkey], timeout=10)
    assert not left, "serve's Valkey outlived serve"


def test_a_second_serve_on_a_taken_port_says_so_before_starting_anything(tmp_path, data_dir) -> None:  # noqa: F811
    # it used to migrate, print the banner with URLs that belonged to the other server, and only then
    # fail in uvicorn with "[Errno 98] ... address already in use" (exit 3)
    port = servers.free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([*kopilka_argv(), "serve", "--dev", "--port", str(port)], cwd=ROOT,
                              env=_serve_env(data_dir), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr and "--port" in done.stderr
    assert "Kopilka on" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert not (data_dir / "pg").exists(), "nothing was started"
