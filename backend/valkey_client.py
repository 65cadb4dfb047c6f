"""The Valkey client for KOPILKA_VALKEY_URL: a plain server, or a primary found through Valkey Sentinel.

    redis://host:6379/0, valkey://…, rediss://…, unix:///path/valkey.sock     one server
    valkey+sentinel://[:password@]s1:26379,s2:26379,s3:26379/<primary name>/<db>[?sentinel_password=…]

With Sentinel the client asks the sentinels which server is the primary of <primary name> and connects
to it; when Sentinel fails over, the next command on a broken connection asks again and goes to the new
primary (valkey-py's SentinelConnectionPool). What a failover costs (docs/operations.md): commands in
flight fail (a 503 `dependency-unavailable`, the till retries), rate-limit counters and one-time codes
written in the last moment before the failover may be lost (replication is asynchronous), live dashboard
streams reconnect. The password in the URL is the primary's; the sentinels' own password, if any, is
`sentinel_password`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEMES = {"valkey+sentinel", "redis+sentinel", "sentinel"}
DEFAULT_SENTINEL_PORT = 26379


class SentinelUrl:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        credentials, _, hosts = parts.netloc.rpartition("@")
        self.password = unquote(credentials.partition(":")[2]) or None if credentials else None
        self.sentinels: list[tuple[str, int]] = []
        for entry in hosts.split(","):
            host, sep, port = entry.strip().rpartition(":")
            if not sep:
                host, port = port, str(DEFAULT_SENTINEL_PORT)
            if not host or not port.isdigit():
                raise ValueError(f"KOPILKA_VALKEY_URL: bad sentinel address {entry!r}")
            self.sentinels.append((host.strip("[]"), int(port)))
        path = [p for p in parts.path.split("/") if p]
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("KOPILKA_VALKEY_URL: a sentinel URL names the primary and a database: "
                             "valkey+sentinel://host:26379,host2:26379/<primary name>/0")
        self.service = unquote(path[0])
        self.db = int(path[1]) if len(path) == 2 else 0
        self.sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]


def connect(url: str, **options: Any) -> Any:
    """An asyncio Valkey client for `url`; `options` as for valkey.asyncio.from_url (timeouts, decoding)."""
    import valkey.asyncio as valkey_asyncio

    if urlsplit(url).scheme not in SENTINEL_SCHEMES:
        return valkey_asyncio.from_url(url, **options)
    from valkey.asyncio.sentinel import Sentinel

    parsed = SentinelUrl(url)
    timeouts = {k: v for k, v in options.items() if k in {"socket_timeout", "socket_connect_timeout"}}
    sentinel = Sentinel(parsed.sentinels, sentinel_kwargs={"password": parsed.sentinel_password, **timeouts})
    return sentinel.master_for(parsed.service, db=parsed.db, password=parsed.password, **options)
