"""Observability: Prometheus metrics, the request id and one JSON log line per request (docs/operations.md).

Metrics use Litestar's Prometheus integration (request latency per route template) and prometheus_client
for the rest. With several uvicorn workers every process writes its samples to PROMETHEUS_MULTIPROC_DIR
(`kopilka serve` sets it up) and /metrics adds them up, so any worker answering a scrape gives the
whole server's figures. Figures read from the database (outbox backlog and age, when jobs last ran) are
read when /metrics is scraped, not kept in memory.

Who may read /metrics: with KOPILKA_METRICS_TOKEN set, whoever sends `Authorization: Bearer <token>`;
without it, only a client on this machine (loopback) whose request did not pass a proxy. The figures
are not secret, but they tell an outsider the chain's sales rate and the server's weak spots.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("kopilka.observability")
access_log = logging.getLogger("kopilka.access")

PREFIX = "kopilka"

# --- business and worker metrics ---------------------------------------------------------------

CONFIRMS = Counter(f"{PREFIX}_confirms_total", "Sales confirmed (a replayed receipt answered again counts again)",
                   ["channel"])  # online | batch
REDEMPTIONS = Counter(f"{PREFIX}_redemptions_total", "Confirmed sales that paid with points")
RETURNS = Counter(f"{PREFIX}_returns_total", "Returns and same-day cancels", ["kind"])  # return | cancel
POINTS_ACCRUED = Counter(f"{PREFIX}_points_accrued_total", "Points accrued by confirmed online sales")
POINTS_SPENT = Counter(f"{PREFIX}_points_spent_total", "Points spent by confirmed online sales")
POINTS_CLAWED_BACK = Counter(f"{PREFIX}_points_clawed_back_total", "Accrued points taken back by returns and cancels")
POINTS_REFUNDED = Counter(f"{PREFIX}_points_refunded_total", "Spent points given back by returns and cancels")

PUSH_RESULTS = Counter(f"{PREFIX}_push_results_total", "Push deliveries by provider, result and reason",
                       ["provider", "result", "reason"])
JOB_RUNS = Counter(f"{PREFIX}_job_runs_total", "Scheduled job runs", ["job", "outcome"])  # ok | failed
JOB_DURATION = Histogram(f"{PREFIX}_job_duration_seconds", "Scheduled job run time", ["job"],
                         buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))

# asyncpg's pool, per process; summed over the live worker processes
POOL_SIZE = Gauge(f"{PREFIX}_db_pool_connections", "Open connections in the database pools", multiprocess_mode="livesum")
POOL_IN_USE = Gauge(f"{PREFIX}_db_pool_connections_in_use", "Pool connections lent out to requests",
                    multiprocess_mode="livesum")
POOL_MAX = Gauge(f"{PREFIX}_db_pool_connections_max", "The pools' size limits", multiprocess_mode="livesum")

_REASON = re.compile(r"(HTTP \d{3})|([A-Za-z][A-Za-z0-9_.-]{0,39})")


def push_reason(reason: str) -> str:
    """A provider's reason as a label: its code (BadDeviceToken, UNREGISTERED, HTTP 503), never free text,
    so a message with an id in it cannot grow the label set."""
    if reason.startswith("transport error"):
        return "transport-error"
    match = _REASON.match(reason.strip())
    return match.group(0) if match and match.end() == len(reason.strip()) else "other"


def count_push(provider: str, result: str, reason: str = "") -> None:
    PUSH_RESULTS.labels(provider, result, push_reason(reason) if reason else "").inc()


def count_confirm(out: Any, channel: str = "online") -> None:
    CONFIRMS.labels(channel).inc()
    totals = getattr(out, "totals", None)
    if totals is None:
        return
    if totals.redeemed_points > 0:
        REDEMPTIONS.inc()
        POINTS_SPENT.inc(totals.redeemed_points)
    if totals.accrued_points > 0:
        POINTS_ACCRUED.inc(totals.accrued_points)


def count_batch(results: Iterable[Any]) -> None:
    confirmed = sum(1 for r in results if r.status == "confirmed")
    if confirmed:
        CONFIRMS.labels("batch").inc(confirmed)


def count_return(out: Any, kind: str) -> None:
    RETURNS.labels(kind).inc()
    if out.clawed_back_points > 0:
        POINTS_CLAWED_BACK.inc(out.clawed_back_points)
    if out.refunded_points > 0:
        POINTS_REFUNDED.inc(out.refunded_points)


def update_pool_gauges() -> None:
    from loyalty_core.piccolo_conf import DB

    pool = DB.pool
    if pool is None:
        return
    size = pool.get_size()
    POOL_SIZE.set(size)
    POOL_IN_USE.set(size - pool.get_idle_size())
    POOL_MAX.set(pool.get_max_size())


async def pool_gauges_loop(interval: float = 2.0) -> None:
    """Keep this process's pool gauges fresh (a scrape lands on one worker; the others report from here)."""
    while True:
        try:
            update_pool_gauges()
        except Exception:  # a metric must never take the server down
            log.exception("pool gauges")
        await asyncio.sleep(interval)


def mark_process_dead() -> None:
    """A worker process that stops: its live gauges leave the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())


# --- /metrics ------------------------------------------------------------------------------------


def prometheus_config() -> PrometheusConfig:
    # group_path: the label is the route template (/pos/v1/sales/{sale_id}/cancel), not the raw path,
    # so ids and scanners' random URLs never grow the label set (unmatched URLs are not recorded)
    return PrometheusConfig(
        app_name="kopilka", prefix=PREFIX, group_path=True, exclude=["^/metrics$"],
        buckets=[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10],
    )


@functools.cache
def metrics_token() -> str:
    return os.environ.get("KOPILKA_METRICS_TOKEN", "")


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    token = metrics_token()
    if token:
        scheme, _sep, given = connection.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise NotAuthorizedException("Send Authorization: Bearer <KOPILKA_METRICS_TOKEN>",
                                         headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return
    # no token: this machine only. A request relayed by a proxy on this machine comes from loopback too,
    # so a forwarding header (which such a proxy adds) means the client is elsewhere.
    relayed = any(h in connection.headers for h in ("x-forwarded-for", "forwarded", "x-real-ip"))
    if relayed or not _loopback(connection.client.host if connection.client else None):
        raise PermissionDeniedException("Metrics are served to this machine only unless KOPILKA_METRICS_TOKEN is set")


class _DatabaseFigures(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[GaugeMetricFamily]:
        return self.families


_BACKLOG_CAP = 1_000_000  # counting beyond this would make a scrape itself a load on a sick database


async def database_figures() -> list[GaugeMetricFamily]:
    from loyalty_core import db

    backlog = GaugeMetricFamily(f"{PREFIX}_outbox_backlog", "Notifications waiting for the worker (pending, capped)")
    due_age = GaugeMetricFamily(f"{PREFIX}_outbox_oldest_due_seconds",
                                "How long the most overdue pending notification has waited past its due time")
    last_run = GaugeMetricFamily(f"{PREFIX}_job_last_finished_timestamp_seconds",
                                 "When a scheduled job last finished (unix time)", labels=["job"])
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM notification WHERE status = 'pending' LIMIT $1) p) AS backlog, "
        "(SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM notification "
        " WHERE status = 'pending' AND next_attempt_at <= now()) AS age",
        _BACKLOG_CAP,
    )
    backlog.add_metric([], float(row["backlog"]) if row else 0.0)
    due_age.add_metric([], float(row["age"] or 0.0) if row else 0.0)
    for job in await db.fetch("SELECT name, extract(epoch FROM last_finished_at) AS at FROM scheduled_job "
                              "WHERE last_finished_at IS NOT NULL"):
        last_run.add_metric([job["name"]], float(job["at"]))
    return [backlog, due_age, last_run]


class MetricsController(Controller):
    """GET /metrics in Prometheus text format; readers as in the module docstring."""

    path = "/metrics"
    guards = [metrics_guard]
    include_in_schema = False

    @get()
    async def metrics(self) -> Response:
        update_pool_gauges()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = REGISTRY
        body = generate_latest(registry)
        try:
            extra = CollectorRegistry()
            extra.register(_DatabaseFigures(await database_figures()))
            body += generate_latest(extra)
        except Exception:  # the database's figures are missing from this scrape; the rest still answers
            log.warning("metrics: the database figures could not be read", exc_info=True)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


# --- request id and the request log -------------------------------------------------------------

REQUEST_ID_HEADER = "x-request-id"
# what a till may send as its request id: no spaces, quotes or line breaks (a log line must stay one line
# and one JSON value), at most 128 characters; anything else is replaced by an id of ours
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestLog:
    """Outermost ASGI layer: gives every HTTP request an id (the till's X-Request-ID when well-formed),
    returns it in the X-Request-ID header, and logs one JSON line when the request ends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", ()))
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # the route template, never the raw path: paths and queries can carry ids and phone numbers
            access_log.info("request", extra={
                "request_id": request_id,
                "method": scope.get("method"),
                "route": scope.get("path_template") or "(unmatched)",
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "client": (scope.get("client") or (None,))[0],
            })


# Not ASCII-escaped, JSON keeps these three as they are, but they end a line for Python's splitlines()
# and for some log viewers: escaped, so no value can start a line of its own
_LINE_ENDS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


class JsonLines(JsonFormatter):
    """python-json-logger's formatter, with the Unicode line ends escaped too (one record, one line)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for raw, escaped in _LINE_ENDS.items():
            text = text.replace(raw, escaped)
        return text


def logging_config() -> Any:
    """Litestar's logging set-up with its one output handler writing JSON lines (python-json-logger), so
    every logger that reaches the root (ours, Litestar's, the libraries') writes one JSON value per line;
    line breaks and control characters in a message are escaped, never a new line."""
    from litestar.logging.config import LoggingConfig

    access = os.environ.get("KOPILKA_REQUEST_LOG", "1").lower() not in {"0", "false", "no", "off"}
    return LoggingConfig(
        formatters={"standard": {
            "()": "backend.observability.JsonLines",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            # Cyrillic as it is (the shoppers' SMS, names, explanations): a terminal and log tools read UTF-8;
            # line breaks and control characters are still escaped
            "json_ensure_ascii": False,
        }},
        loggers={"kopilka": {"level": "INFO"}, "kopilka.access": {"level": "INFO" if access else "WARNING"}},
    )


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging (start-up, errors) in the same JSON lines, for `kopilka serve`."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    json_lines = {"()": "backend.observability.JsonLines", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                  "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                  "json_ensure_ascii": False}
    config["formatters"] = {"default": json_lines, "access": dict(json_lines)}
    return config


# --- traces (optional) -----------------------------------------------------------------------------


def tracing_plugins() -> list[Any]:
    """OpenTelemetry traces through Litestar's plugin, when asked for: OTEL_EXPORTER_OTLP_ENDPOINT (or
    KOPILKA_OTEL_TRACES=otlp) sends spans over OTLP/HTTP to a collector, KOPILKA_OTEL_TRACES=console prints
    them one JSON per line. A till's `traceparent` header puts the request's span into the till's trace.
    Needs the `otel` extra (pip install 'kopilka[otel]')."""
    mode = os.environ.get("KOPILKA_OTEL_TRACES", "").strip().lower()
    if not mode and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        mode = "otlp"
    if mode in ("", "off", "0", "no"):
        return []
    if mode not in ("otlp", "console"):
        raise RuntimeError(f"KOPILKA_OTEL_TRACES={mode!r}: use otlp, console or off")
    try:
        from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError as exc:
        raise RuntimeError("traces are asked for (KOPILKA_OTEL_TRACES or OTEL_EXPORTER_OTLP_ENDPOINT) but "
                           "OpenTelemetry is not installed: pip install 'kopilka[otel]'") from exc
    exporter: SpanExporter
    if mode == "console":
        exporter = ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + "\n")
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # endpoint, headers and timeout from the standard OTEL_EXPORTER_OTLP_* variables
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "kopilka")}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, exclude=["^/metrics$", "^/health$"]))]
