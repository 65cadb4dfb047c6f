"""Liveness and readiness: /ready checks PostgreSQL and Valkey for real."""

from __future__ import annotations

import msgspec
from litestar import Request, get
from litestar.response import Response

from loyalty_core.tables import Program


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}


@get("/health", tags=["health"], sync_to_thread=False)
def health() -> Health:
    return Health(status="ok")


@get("/ready", tags=["health"])
async def ready(request: Request) -> Response[Health]:
    checks: dict[str, str] = {}
    try:
        await Program.raw("SELECT 1").run()
        checks["postgresql"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["postgresql"] = f"error: {exc.__class__.__name__}"
    try:
        await request.app.state.valkey.ping()
        checks["valkey"] = "ok"
    except Exception as exc:
        checks["valkey"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return Response(Health(status="ok" if ok else "unavailable", checks=checks), status_code=200 if ok else 503)


ROUTES = [health, ready]
