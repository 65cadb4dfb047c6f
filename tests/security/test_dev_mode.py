"""Development mode (the code gateway that prints codes instead of sending them) is an explicit, loopback-only choice.

A stranger never gets a sign-in code over HTTP; `kopilka serve` on a public address refuses the development
gateway unless told in a flag named unsafe; docker-compose (which publishes the port) has no development mode.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests import servers
from tests.cli.conftest import ROOT, kopilka_argv
from tests.factories import Shop
from tests.identity.shopper import new_ip, new_phone


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_health(proc: subprocess.Popen[str], base: str, log: Path, timeout: float = 90) -> None:
    servers.wait_until(lambda: servers.status(base + "/health") == 200, proc, log, timeout)


def _stop(proc: subprocess.Popen[str]) -> None:
    servers.stop(proc, 60)


def default_env(**extra: str) -> dict[str, str]:
    """The test services with every development setting removed: what an installation gets by default."""
    env = {k: v for k, v in os.environ.items() if k not in ("KOPILKA_DEV_MODE", "KOPILKA_OTP_GATEWAY")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def default_server(services: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under uvicorn with default settings (no development mode), on loopback."""
    log = tmp_path_factory.mktemp("default-server") / "server.log"
    with servers.uvicorn_app(log, env=default_env(), timeout=90, stop_timeout=60) as app:
        yield app.base


async def test_a_stranger_gets_no_code_over_http_with_default_settings(default_server: str, valkey) -> None:
    phone, before = new_phone(), await valkey.llen("kopilka:dev:inbox")
    async with httpx.AsyncClient(base_url=default_server, headers={"X-Forwarded-For": new_ip()}) as stranger:
        asked = await stranger.post("/api/v1/auth/otp/request", json={"to": phone})
        # no gateway configured: nothing is sent, nothing is kept, and the shopper is told so
        assert asked.status_code == 503, asked.text
        assert asked.json()["type"].endswith("/otp-gateway-missing")
        for query in ({}, {"to": phone}):
            inbox = await stranger.get("/api/v1/dev/inbox", params=query)
            assert inbox.status_code == 404 and phone not in inbox.text
    assert await valkey.llen("kopilka:dev:inbox") == before
    assert not await valkey.exists(f"kopilka:otp:phone:{phone}")


async def test_the_old_inbox_is_gone_even_in_development_mode(http: httpx.AsyncClient) -> None:
    """The suite's own server runs in development mode; its codes are still not on HTTP."""
    phone = new_phone()
    headers = {"X-Forwarded-For": new_ip()}
    assert (await http.post("/api/v1/auth/otp/request", json={"to": phone}, headers=headers)).status_code == 202
    for path in ("/api/v1/dev/inbox", f"/api/v1/dev/inbox?to={phone}", "/dev/inbox"):
        response = await http.get(path, headers=headers)
        assert response.status_code == 404 and not re.search(r"\b\d{6}\b", response.text), path


@pytest.mark.parametrize(("host", "how"), [
    ("0.0.0.0", ["--dev"]), ("::", ["--dev"]), ("192.0.2.10", ["--dev"]), ("shop.example.org", ["--dev"]),
    ("0.0.0.0", ["env:KOPILKA_DEV_MODE=1"]), ("0.0.0.0", ["env:KOPILKA_OTP_GATEWAY=dev"]),
])
def test_serve_on_a_public_address_refuses_the_development_gateway(services, how: list[str], host: str) -> None:
    port = servers.free_port()
    env, args = default_env(), []
    for item in how:
        if item.startswith("env:"):
            key, _, value = item[4:].partition("=")
            env[key] = value
        else:
            args.append(item)
    started = time.monotonic()
    result = subprocess.run([*kopilka_argv(), "serve", "--host", host, "--port", str(port), *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 20
    assert "refusing to serve on" in result.stderr and "--unsafe-dev-gateway" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Kopilka on" not in result.stdout  # nothing was started
    assert not _listening(port)


def test_serve_with_the_unsafe_flag_starts_on_a_public_address_and_says_so(services, tmp_path: Path) -> None:
    port = servers.free_port()
    log = tmp_path / "serve.log"
    env = default_env(KOPILKA_SECRET_KEY="test-secret")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*kopilka_argv(), "serve", "--host", "0.0.0.0", "--port", str(port), "--dev", "--unsafe-dev-gateway",
             "--no-demo", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_health(proc, f"http://127.0.0.1:{port}", log)
        finally:
            _stop(proc)
    assert "WARNING: development code gateway on 0.0.0.0" in log.read_text()


async def test_make_run_is_a_local_demo_where_codes_appear_in_the_terminal(shop: Shop, tmp_path: Path) -> None:
    """`make run` = `kopilka serve --dev` on loopback: a person reads the code in the terminal and signs in."""
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*\n\t(.+)$", makefile, re.M)
    assert run and run[1].split()[1:] == ["serve", "--dev"], run
    port = servers.free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*kopilka_argv(), "serve", "--dev", "--port", str(port), "--no-demo", "--log-level", "warning"],
                                cwd=ROOT, env=default_env(KOPILKA_SECRET_KEY="test-secret"), stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_health(proc, base, log)
            assert "sign-in codes     printed in this log by the development gateway" in log.read_text()
            phone, ip = new_phone(), new_ip()
            with httpx.Client(base_url=base, headers={"X-Forwarded-For": ip}) as person:
                assert person.post("/api/v1/auth/otp/request", json={"to": phone}).status_code == 202
                deadline = time.monotonic() + 10
                while not (found := re.search(rf"to {re.escape(phone)}: Kopilka: your code is (\d{{6}})", log.read_text())):
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.05)
                logged = person.post("/api/v1/auth/otp/verify", params={"program": shop.program_code},
                                     json={"to": phone, "code": found[1]})
                assert logged.status_code == 200, logged.text
        finally:
            _stop(proc)


def test_docker_compose_and_the_image_have_no_development_mode() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        assert "KOPILKA_DEV_MODE" not in environment, name
        gateway = str(environment.get("KOPILKA_OTP_GATEWAY", ""))
        assert "dev" not in gateway.replace("${KOPILKA_OTP_GATEWAY:-}", ""), (name, gateway)
        command = " ".join(service.get("command") or [])
        assert "--dev" not in command and "--unsafe" not in command, name
    apis = [service for name, service in compose["services"].items() if name.startswith("api")]
    assert apis and all("0.0.0.0" in api["command"] for api in apis)  # reachable: why development mode stays out
    assert compose["services"]["proxy"]["ports"]  # and published through the proxy
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--dev" not in dockerfile and "KOPILKA_DEV_MODE" not in dockerfile and "--unsafe" not in dockerfile
