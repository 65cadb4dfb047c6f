"""The app factory: small, so tests and production build the same app against their own services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from backend import cache_bus, observability, valkey_client
from backend.input_guard import InputGuard
from backend.problems import EXCEPTION_HANDLERS
from backend.read_replicas import ReadRouting
from backend.read_replicas import configure as configure_read_replicas
from backend.security_headers import add_security_headers
from backend.settings import Settings, get_settings
from backend.wiring import plugins, route_handlers, template_config
from loyalty_core import cache, db
from loyalty_core.till import identify
from wallet_passes.settings import check_pass_settings


async def _bounded(step: Awaitable[object], seconds: float) -> None:
    """Await a shutdown step for at most `seconds`; one that hangs is logged and left behind."""
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        logging.getLogger("kopilka").warning("shutdown: a step took over %s s and was left", seconds)


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    if not (settings.database.url and settings.valkey.url):
        from backend import infra

        infra.ensure_services(settings.data_dir)
        settings = get_settings()
    db.configure(settings.database.url or "", settings.database.pool_min, settings.database.pool_max)
    # reads that only show things go to KOPILKA_DATABASE_REPLICA_URLS when named (backend/read_replicas.py)
    configure_read_replicas(settings, lambda: app.state.valkey)
    identify.configure_qr_secret(settings.security.secret_key)
    # wallet: refuse a real Apple pass certificate with a plain-http web service; warn in development
    check_pass_settings(os.environ, settings.server.public_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # the pool is made on the serving loop and closed on it (one pool per loop)
        await db.start_pool()
        # bounded waits: a Valkey that hangs gives a 503 (backend.problems), not a request that never ends
        app.state.valkey = valkey_client.connect(settings.valkey.url or "", decode_responses=False,
                                                 socket_connect_timeout=2, socket_timeout=5)
        pool_gauges = asyncio.create_task(observability.pool_gauges_loop())
        # the worker's cache of till keys and catalog facts, kept fresh by the other workers' invalidations
        bus = cache_bus.CacheBus(settings.valkey.url or "")
        bus.start()
        cache.set_publisher(cache_bus.publisher(app.state.valkey))
        try:
            yield
        finally:
            # each step bounded: a Valkey that was just restarted or a stuck connection must not hold the stop
            cache.set_publisher(None)
            await _bounded(bus.stop(), 5)
            pool_gauges.cancel()
            await _bounded(app.state.valkey.aclose(), 5)
            await _bounded(db.close_pool(), 10)
            observability.mark_process_dead()

    app = Litestar(
        route_handlers=[*route_handlers(), observability.MetricsController],
        lifespan=[lifespan],  # first in, last out: plugins' lifespans run inside it (pool and Valkey ready)
        plugins=[*plugins(settings), *observability.tracing_plugins()],  # traces only when configured
        # malformed input is refused before any handler (docs/security-input.md); latency per route template
        middleware=[InputGuard(), observability.prometheus_config().middleware],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        before_send=[add_security_headers],  # CSP, no framing, nosniff, HSTS over https: on every answer
        openapi_config=OpenAPIConfig(
            title="Kopilka",
            version="1.0.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
        request_max_body_size=settings.server.max_body_bytes,
        compression_config=CompressionConfig(backend="gzip", minimum_size=2048),
        template_config=template_config(),
        state=State({"settings": settings}),
        debug=settings.server.debug,
        logging_config=observability.logging_config(),  # JSON lines (docs/operations.md)
    )
    # outermost: every request gets an id and a log line, also those refused before routing (404, bad input)
    # inside it: which reads may go to a replica, and the actor's writes remembered (backend/read_replicas.py)
    app.asgi_handler = observability.RequestLog(ReadRouting(app.asgi_handler))
    return app
