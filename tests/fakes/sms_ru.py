"""A local SMS.ru: its HTTP API (POST /sms/send, POST /sms/status, form fields, json=1) as documented, strictly,
run as a real process:

    python -m tests.fakes.sms_ru --api-id KEY --state /tmp/sms.jsonl --port-file /tmp/sms.port [--per-second 5]

- /sms/send: api_id must match (else status_code 200); `to` one number of 11 digits starting with 7 (202);
  `msg` non-empty UTF-8 (203), at most 670 characters (205); json=1 required (this fake speaks JSON only);
  GET is refused as SMS.ru refuses it for these fields (210). More than --per-second sends within a second
  are refused with 220 (SMS.ru's own rate limit is what the worker's throttle is there for).
- /sms/status: api_id, sms_id (comma separated): 103 for a delivered message, -1 for an unknown id.
- every accepted message is appended as a JSON line to --state (what the phone got); /_fake/fail?code=N&times=K
  makes the next K sends answer that code; /_fake/hang?times=K makes them hang until the client gives up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
import urllib.parse
from pathlib import Path

import h11

from tests.fakes.http1 import Http1Server, HttpRequest, HttpResponse


class FakeSmsRu:
    def __init__(self, api_id: str, state: Path, per_second: float) -> None:
        self.api_id, self.state, self.per_second = api_id, state, per_second
        self.sent: dict[str, dict] = {}
        self.fail: collections.deque[int] = collections.deque()
        self.hang = 0
        self.recent: collections.deque[float] = collections.deque()
        self.counter = 0

    @staticmethod
    def _json(body: dict, status: int = 200) -> HttpResponse:
        return HttpResponse(status=status, body=json.dumps(body, ensure_ascii=False).encode(),
                            headers={"content-type": "application/json; charset=utf-8"})

    def _error(self, code: int, text: str) -> HttpResponse:
        return self._json({"status": "ERROR", "status_code": code, "status_text": text})

    def _form(self, request: HttpRequest) -> dict[str, str] | None:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return None
        try:
            return dict(urllib.parse.parse_qsl(request.body.decode("utf-8"), strict_parsing=True,
                                               keep_blank_values=True))
        except (UnicodeDecodeError, ValueError):
            return {"_bad_utf8": "1"}

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/_fake/fail":
            q = dict(urllib.parse.parse_qsl(request.query))
            self.fail.extend([int(q["code"])] * int(q.get("times", "1")))
            return self._json({"ok": True})
        if request.path == "/_fake/hang":
            self.hang += int(dict(urllib.parse.parse_qsl(request.query)).get("times", "1"))
            return self._json({"ok": True})
        if request.path not in ("/sms/send", "/sms/status"):
            return self._error(211, "method not found")
        if request.method != "POST":
            return self._error(210, "use POST")
        form = self._form(request)
        if form is None:
            return self._error(210, "send the fields as application/x-www-form-urlencoded")
        if "_bad_utf8" in form:
            return self._error(212, "the text must be UTF-8")
        if form.get("json") != "1":
            return HttpResponse(status=200, body=b"100\n")  # the plain-text answer this fake does not speak
        if form.get("api_id") != self.api_id:
            return self._error(200, "wrong api_id")
        return self._send(form) if request.path == "/sms/send" else self._status(form)

    def _send(self, form: dict[str, str]) -> HttpResponse:
        if set(form) - {"api_id", "to", "msg", "json", "from"}:
            return self._error(211, f"unknown fields {sorted(set(form) - {'api_id', 'to', 'msg', 'json', 'from'})}")
        to, msg = form.get("to", ""), form.get("msg", "")
        if not (len(to) == 11 and to.isdigit() and to.startswith("7")):
            return self._error(202, "wrong recipient")
        if not msg.strip():
            return self._error(203, "no message text")
        if len(msg) > 670:
            return self._error(205, "message too long")
        now = time.monotonic()
        while self.recent and now - self.recent[0] >= 1.0:
            self.recent.popleft()
        if len(self.recent) >= self.per_second:
            return self._error(220, "service temporarily unavailable (rate)")
        self.recent.append(now)
        if self.fail:
            code = self.fail.popleft()
            return self._json({"status": "OK", "status_code": 100, "sms": {
                to: {"status": "ERROR", "status_code": code, "status_text": "scripted"}}, "balance": 100.0})
        self.counter += 1
        sms_id = f"{self.counter:06d}-{int(time.time())}"
        record = {"sms_id": sms_id, "to": to, "msg": msg, "from": form.get("from"), "at": time.time()}
        self.sent[sms_id] = record
        with self.state.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return self._json({"status": "OK", "status_code": 100, "sms": {
            to: {"status": "OK", "status_code": 100, "sms_id": sms_id}}, "balance": 100.0})

    def _status(self, form: dict[str, str]) -> HttpResponse:
        ids = [i for i in form.get("sms_id", "").split(",") if i]
        if not ids or len(ids) > 100:
            return self._error(211, "give 1..100 sms_id")
        return self._json({"status": "OK", "status_code": 100, "sms": {
            i: ({"status": "OK", "status_code": 103, "status_text": "delivered"} if i in self.sent
                else {"status": "ERROR", "status_code": -1, "status_text": "not found"}) for i in ids}})


class Server(Http1Server):
    """The fake's HTTP/1.1 server; a send the fake was told to hang on is received (and recorded as sent)
    but never answered: a provider that took the message and went silent."""

    def __init__(self, fake: FakeSmsRu) -> None:
        super().__init__(fake.handle)
        self.fake = fake

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(conn, reader)
                if request is None:
                    break
                if self.fake.hang and request.path == "/sms/send":
                    self.fake.hang -= 1
                    form = dict(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace")))
                    with self.fake.state.open("a", encoding="utf-8") as out:
                        out.write(json.dumps({"sms_id": "hung", "to": form.get("to"), "msg": form.get("msg"),
                                              "at": time.time()}, ensure_ascii=False) + "\n")
                    await asyncio.sleep(3600)
                    break
                response = self.fake.handle(request)
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api-id", required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--per-second", type=float, default=1000)
    args = parser.parse_args()
    fake = FakeSmsRu(args.api_id, args.state, args.per_second)
    server = Server(fake)
    await server.start()
    args.port_file.write_text(str(server.port))
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
