"""docker-compose.yml without Docker: the file's services, commands and variables are checked against the code,
the proxy's config against the API services, and the very commands its services run (migrate, two API
instances, the worker) are run against real PostgreSQL and Redis-protocol servers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from backend.cli import build_parser
from tests.cli.conftest import ROOT, fetch_value, kopilka_argv
from tests.cli.instances import free_port, stop, wait_ready

COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"
KOPILKA_SERVICES = {"migrate", "api-1", "api-2", "worker"}
SECRETS = {"KOPILKA_SECRET_KEY": "compose-test-secret", "KOPILKA_METRICS_TOKEN": "compose-metrics-token"}

_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, over strings in lists and mappings."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3]
        given = env.get(name)
        if op and op.endswith("?") and not given:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and not given:
            return arg
        return given or ""

    return _VARIABLE.sub(one, value)


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env if env is not None else SECRETS)


def _source_text() -> str:
    return "\n".join(p.read_text() for d in ("backend", "loyalty_core", "personal_account", "wallet_passes")
                     for p in (ROOT / d).rglob("*.py"))


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_services_commands_and_variables_match_the_code() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "valkey", "proxy", *KOPILKA_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["valkey"]["image"].startswith("valkey/valkey:")
    assert services["proxy"]["image"].startswith("nginx:")
    parser, source = build_parser(), _source_text()
    for name in KOPILKA_SERVICES:
        service = services[name]
        assert service["image"] == "kopilka:latest" and service["build"] == ".", name
        command = service["command"]
        assert command[0] == "kopilka", name
        parser.parse_args(command[1:])  # a command `kopilka` accepts (SystemExit otherwise)
        environment = service["environment"]
        for variable in environment:  # every variable is one the code reads: no typo silently ignored
            assert f'"{variable}"' in source, (name, variable)
        assert "KOPILKA_DEV_MODE" not in environment and "--dev" not in command, name
        db = urlsplit(environment["KOPILKA_DATABASE_URL"])
        pg = services["postgres"]["environment"]
        assert (db.hostname, db.port, db.username, db.password, db.path) == (
            "postgres", 5432, pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], "/" + pg["POSTGRES_DB"])
        assert urlsplit(environment["KOPILKA_VALKEY_URL"]).hostname == "valkey"
    assert services["migrate"]["command"] == ["kopilka", "migrate"]
    assert services["worker"]["command"] == ["kopilka", "worker"]
    for name in ("api-1", "api-2"):
        command = services[name]["command"]
        assert command[:2] == ["kopilka", "serve"] and _option(command, "--host") == "0.0.0.0"
        assert "ports" not in services[name]  # only the proxy is published
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["worker"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # the secret key has no default: compose refuses to start without it
    with pytest.raises(KeyError, match="KOPILKA_SECRET_KEY"):
        compose({})


def test_the_proxy_routes_to_both_api_instances() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert any(v.startswith("./deploy/nginx.conf:/etc/nginx/conf.d/") for v in proxy["volumes"])
    assert set(proxy["depends_on"]) == {"api-1", "api-2"}
    config = NGINX.read_text()
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", config, re.S)
    assert upstream
    servers = set(re.findall(r"server ([\w.-]+:\d+)", upstream[2]))
    assert servers == {f"{name}:{_option(services[name]['command'], '--port')}" for name in ("api-1", "api-2")}
    published = proxy["ports"][0].rsplit(":", 1)[1]
    assert re.search(rf"listen {published};", config)
    locations = re.findall(r"location ([^{]+)\{(.*?)\n    \}", config, re.S)
    assert {path.strip() for path, _ in locations} >= {"/", "/live/", "= /metrics"}
    for path, body in locations:
        if path.strip() == "= /metrics":
            assert "return 404" in body  # metrics are scraped from the instances with the token, not here
        else:
            assert f"proxy_pass http://{upstream[1]};" in body, path
            assert "X-Forwarded-For $remote_addr" in body, path  # replaced, never the client's own


def _environment(service: dict[str, Any], db_url: str, valkey_url: str, data_dir: Path, **changes: str) -> dict[str, str]:
    """The service's environment from the file, with the servers' addresses of this machine."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV"}}
    env.update({k: str(v) for k, v in service["environment"].items()})
    env.update(KOPILKA_DATABASE_URL=db_url, KOPILKA_VALKEY_URL=valkey_url, KOPILKA_DATA_DIR=str(data_dir), **changes)
    return env


def _argv(command: list[str], **options: str) -> list[str]:
    argv = list(command[1:])
    for flag, value in options.items():
        argv[argv.index(flag)] = flag
        argv[argv.index(flag) + 1] = value
    return [*kopilka_argv(), *argv]


def test_the_compose_commands_run_against_real_servers(empty_env: dict[str, str], services: tuple[str, str],
                                                      tmp_path: Path) -> None:
    # two instances of 4 workers would crowd a test machine: 2 each (KOPILKA_WORKERS, as the file allows)
    services_ = compose({**SECRETS, "KOPILKA_WORKERS": "2"})["services"]
    db_url, valkey_url = empty_env["KOPILKA_DATABASE_URL"], services[1]

    migrate = services_["migrate"]
    done = subprocess.run(_argv(migrate["command"]), cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=_environment(migrate, db_url, valkey_url, tmp_path / "migrate"))
    assert done.returncode == 0, done.stderr

    running: list[subprocess.Popen[str]] = []
    bases: list[str] = []
    try:
        for name in ("api-1", "api-2"):
            # the one change: two instances on one machine cannot both listen on port 8000
            port = free_port()
            log = tmp_path / f"{name}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen(
                    _argv(services_[name]["command"], **{"--port": str(port)}), cwd=ROOT, stdout=out,
                    stderr=subprocess.STDOUT, text=True, start_new_session=True,
                    env=_environment(services_[name], db_url, valkey_url, tmp_path / name))
            running.append(proc)
            bases.append(f"http://127.0.0.1:{port}")
            wait_ready(proc, bases[-1] + "/ready", log)
        assert "0 applied before" not in (tmp_path / "api-1.log").read_text()  # `migrate` had done it
        assert "Traceback" not in (tmp_path / "api-1.log").read_text() + (tmp_path / "api-2.log").read_text()

        import asyncio

        assert asyncio.run(fetch_value(empty_env, "SELECT count(*) FROM program")) == 1  # the demo, seeded once
        key = subprocess.run([*kopilka_argv(), "till-key", "create", "--store", "MSK-TVERSKAYA", "--till", "9"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60,
                             env=_environment(migrate, db_url, valkey_url, tmp_path / "cli")).stdout.split()[-1]
        for base in bases:
            identified = httpx.post(base + "/pos/v1/identify", json={"scan": "+79990000001"},
                                    headers={"Authorization": f"Bearer {key}"}, timeout=10)
            assert identified.status_code == 200, identified.text
            token = {"Authorization": f"Bearer {SECRETS['KOPILKA_METRICS_TOKEN']}"}
            assert httpx.get(base + "/metrics", timeout=10).status_code == 401  # the file sets a token
            assert httpx.get(base + "/metrics", headers=token, timeout=10).status_code == 200

        worker = services_["worker"]
        metrics_port = free_port()
        log = tmp_path / "worker.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                _argv(worker["command"]), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
                start_new_session=True, env=_environment(worker, db_url, valkey_url, tmp_path / "worker",
                                                         KOPILKA_WORKER_METRICS_PORT=str(metrics_port)))
        running.append(proc)
        wait_ready(proc, f"http://127.0.0.1:{metrics_port}/metrics", log)
        deadline = time.monotonic() + 20
        while "kopilka_db_pool_connections_max 8.0" not in (  # the worker's pool (run_db's pool_max), once read
                worker_metrics := httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text):
            assert time.monotonic() < deadline, worker_metrics
            time.sleep(0.1)
        assert "kopilka_push_results_total" in worker_metrics and "kopilka_job_runs_total" in worker_metrics
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
        assert "worker stopped" in log.read_text()
    finally:
        for proc in running:
            stop(proc)
    deadline = time.monotonic() + 10
    while any(p.poll() is None for p in running) and time.monotonic() < deadline:
        time.sleep(0.1)
