"""TLS client settings shared by the outbound HTTP clients (Google, APNs, FCM).

`verify` is True (system trust store), False (never in production), or the
path of a CA bundle, which is how tests trust their local fake servers.
httpx 0.28 deprecates string paths, so we build the SSLContext ourselves.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(verify: str | Path | bool = True, *, cert_path: str | Path | None = None,
                       key_path: str | Path | None = None, key_password: str | None = None) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is True:
        context = ssl.create_default_context()
    else:
        context = ssl.create_default_context(cafile=str(verify))
    if cert_path is not None:
        context.load_cert_chain(str(cert_path), str(key_path) if key_path else None, password=key_password)
    return context
