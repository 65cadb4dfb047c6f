"""A minimal HTTP/1.1 server on asyncio streams and h11 (keep-alive, Content-Length bodies)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h11
import msgspec


class HttpRequest(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class HttpResponse(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    body: bytes = b""
    headers: dict[str, str] = {}


Handler = Callable[[HttpRequest], HttpResponse]


class Http1Server:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(conn, reader)
                if request is None:
                    break
                response = self._handler(request)
                headers = [("content-length", str(len(response.body))), *response.headers.items()]
                writer.write(conn.send(h11.Response(status_code=response.status, headers=headers)))
                writer.write(conn.send(h11.Data(data=response.body)) if response.body else b"")
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (ConnectionError, h11.RemoteProtocolError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> HttpRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)  # b"" marks EOF; h11 then yields ConnectionClosed
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body.extend(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                target = head.target.decode()
                path, _, query = target.partition("?")
                headers = {k.decode().lower(): v.decode() for k, v in head.headers}
                return HttpRequest(method=head.method.decode(), path=path, query=query,
                                   headers=headers, body=bytes(body))
