"""A real SMTP server for tests (aiosmtpd), run as a process; every message it accepts is appended to a
JSON-lines file with its envelope and raw bytes:

    python -m tests.fakes.smtp_sink --state /tmp/mail.jsonl --port-file /tmp/mail.port [--refuse ADDRESS]...

`--refuse` answers 550 for that recipient (a mailbox that does not exist).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class Sink:
    def __init__(self, state: Path, refuse: set[str]) -> None:
        self.state, self.refuse = state, refuse

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        record = {"from": envelope.mail_from, "to": envelope.rcpt_tos, "at": time.time(),
                  "data": base64.b64encode(envelope.original_content or envelope.content).decode()}
        with self.state.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return "250 2.0.0 queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--refuse", action="append", default=[])
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Sink(args.state, {a.lower() for a in args.refuse}), hostname="127.0.0.1", port=port)
    controller.start()
    args.port_file.write_text(str(port))
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
