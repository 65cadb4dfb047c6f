"""Security headers on every response: a strict Content-Security-Policy, no framing, nosniff, Referrer-Policy,
and HSTS when the request came over https.

The website runs only its own static scripts (htmx with `allowEval: false`, no inline script, no inline
style), so `script-src 'self'` and `style-src 'self'` hold and an injected `<script>` does not run.
`frame-ancestors 'none'` (and X-Frame-Options for old browsers) keeps the block/replace forms out of
another site's frame. The OpenAPI page (`/schema`, Swagger UI from a CDN) keeps only the framing rule.

HSTS only when the request's scheme is https: uvicorn sets it from `X-Forwarded-Proto` when the peer is
one of FORWARDED_ALLOW_IPS, so a proxy that terminates TLS gets it and plain-HTTP development does not.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
DOCS_CSP = "frame-ancestors 'none'"
HSTS = "max-age=31536000"
_COMMON = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),  # no paths or query strings (OIDC codes, next=...) to other sites
    ("cross-origin-opener-policy", "same-origin"),
)


async def add_security_headers(message: Message, scope: Scope) -> None:
    """A `before_send` hook: it sees every response start, also the router's own 404/405 that no middleware wraps."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in _COMMON:
        headers[name] = value
    if "content-security-policy" not in headers:
        headers["content-security-policy"] = DOCS_CSP if scope["path"].startswith("/schema") else CSP
    if scope.get("scheme") == "https":
        headers["strict-transport-security"] = HSTS
