"""`kopilka worker` as production runs it: its job queues a launched campaign and its sender delivers the e-mail
to the SMTP server; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_core.campaigns.model import CampaignIn, EmailText, Messages
from loyalty_core.campaigns.service import create_campaign, launch
from tests.campaigns.conftest import MailSink, make_segment, make_shopper, messages_of
from tests.factories import Shop, unique
from tests.servers import ROOT

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_worker_queues_a_launched_campaign_and_delivers_it(
        shop: Shop, smtp_sink: MailSink, quiet_campaigns: None, tmp_path: Path) -> None:
    segment = await make_segment(shop, "worker")
    shopper = await make_shopper(shop, segment, consents={"email": True}, name="Вера")
    now = dt.datetime.now(dt.UTC)
    spec = CampaignIn(code=unique("worker"), name="Worker", segment=segment, program=shop.program_code, send_at=now,
                      messages=Messages(email={"ru": EmailText(subject="{name}, новинки недели", body="Заходите!")}))
    await create_campaign(spec, now, operator="test")
    await launch(spec.code, now, operator="test")

    env = dict(os.environ, KOPILKA_SMTP_HOST="127.0.0.1", KOPILKA_SMTP_PORT=str(smtp_sink.port),
               KOPILKA_SMTP_TLS="none", KOPILKA_SMTP_FROM="shop@loyalty.test", KOPILKA_SECRET_KEY="test-secret",
               KOPILKA_PUBLIC_URL="http://loyalty.test", KOPILKA_PUSH_QUIET_HOURS="0-0",
               # only the campaigns job: the others would work on every other test's rows
               KOPILKA_JOBS="settle=off,segments=off,member_events=off,reports=off,partitions=off,campaigns=1s")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], cwd=ROOT, env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not smtp_sink.to(shopper.email or ""):  # wait for the condition: the e-mail in the mailbox
            assert worker.poll() is None, log.read_text()
            assert asyncio.get_running_loop().time() < deadline, log.read_text()
            await asyncio.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    assert code == 0, log.read_text()
    mail = smtp_sink.to(shopper.email or "")
    assert len(mail) == 1 and mail[0]["Subject"] == "Вера, новинки недели"
    assert mail[0]["List-Unsubscribe"].startswith("<http://loyalty.test/u/u1.")
    row = (await messages_of(spec.code))[shopper.customer_id]
    assert (row["status"], row["channel"]) == ("sent", "email")
    assert "Traceback" not in log.read_text()
