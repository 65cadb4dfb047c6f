"""Optional OpenTelemetry traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, the server sends a span per request over
OTLP/HTTP (to a real receiver here), named by route template, inside the till's trace when it sends traceparent."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import ROOT
from tests.cli.instances import free_port, stop, wait_ready

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP receiver keeping every span it is sent: (name, trace id hex, attributes)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, dict[str, str]]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        for span in scope.spans:
                            attributes = {a.key: a.value.string_value or str(a.value.int_value) for a in span.attributes}
                            collector.spans.append((span.name, span.trace_id.hex(), attributes))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_a_request_is_a_span_in_the_tills_trace(services: tuple[str, str], collector: Collector, tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, KOPILKA_SECRET_KEY="test-secret", KOPILKA_PUBLIC_URL=f"http://127.0.0.1:{port}",
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.server_address[1]}",
               OTEL_BSP_SCHEDULE_DELAY="100", OTEL_SERVICE_NAME="kopilka-test")
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "backend.app:create_app", "--host",
                                 "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/health", log)
        trace_id = secrets.token_hex(16)
        answer = httpx.post(f"http://127.0.0.1:{port}/pos/v1/identify", json={"scan": "x"}, timeout=10,
                            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})
        assert answer.status_code == 401
        deadline = time.monotonic() + 20
        while not [s for s in collector.spans if s[1] == trace_id]:
            assert time.monotonic() < deadline, (collector.spans, log.read_text()[-2000:])
            time.sleep(0.05)
        ours = [s for s in collector.spans if s[1] == trace_id]
        assert any("/pos/v1/identify" in name for name, _, _ in ours), ours
        assert any(attrs.get("http.route") == "/pos/v1/identify" or attrs.get("http.status_code") == "401"
                   for _, _, attrs in ours), ours
        assert not [s for s in collector.spans if "/health" in s[0]]  # liveness probes are not traced
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text()


def test_traces_asked_for_with_an_unknown_exporter_refuse_to_start(services: tuple[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", "from backend.app import create_app; create_app()"], cwd=ROOT,
                          env=dict(os.environ, KOPILKA_OTEL_TRACES="jaeger"), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "KOPILKA_OTEL_TRACES='jaeger'" in done.stderr
