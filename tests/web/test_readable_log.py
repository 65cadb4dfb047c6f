"""What `make run` prints must be readable: the development gateway's Russian sign-in SMS (the code a
newcomer copies from the terminal) is written as it is in the JSON log line, not as \\u escapes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tests.web.browser import NoJsBrowser

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_sign_in_code_reads_in_russian_in_the_log(browser: NoJsBrowser) -> None:
    await browser.open("/login", params={"program": browser.program})
    sent = await browser.submit("/login", {"to": browser.to, "program": browser.program})
    assert sent.status_code == 303, sent.text
    code = await browser.last_code()
    log = Path(os.environ["KOPILKA_TEST_SERVER_LOG"])
    for _ in range(200):
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if "dev gateway" in line and browser.to in line and code in line]
        if lines:
            break
        await asyncio.sleep(0.025)
    else:
        raise AssertionError(f"no log line with the code sent to {browser.to}")
    # it was "\u041a\u043e\u043f\u0438\u043b\u043a\u0430: \u0432\u0430\u0448 \u043a\u043e\u0434 123456 ..."
    assert f"Копилка: ваш код {code}" in lines[-1] and "\\u04" not in lines[-1]
    assert json.loads(lines[-1])["message"].startswith(f"dev gateway: SMS to {browser.to}: Копилка")  # still one JSON value
