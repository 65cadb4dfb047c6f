"""Playwright driving Debian's Chromium (/usr/bin/chromium) against the real server.

Locally, with no Chromium (or no playwright), the browser tests skip with the reason; with CI set they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("KOPILKA_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
async def chromium() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        await browser.close()


@pytest.fixture
async def phone(chromium: Any, server: str) -> AsyncIterator[Any]:
    context = await chromium.new_context(base_url=server, viewport=PHONE, device_scale_factor=2, locale="ru-RU",
                                         accept_downloads=True, is_mobile=True, has_touch=True)
    yield context
    await context.close()


async def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """full_page=False: the screen as the shopper sees it (the fixed tab bar at the bottom of a phone)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    return path


async def desktop_twin(chromium: Any, phone_context: Any, server: str) -> Any:
    """A desktop window signed in as the same shopper (same cookies)."""
    return await chromium.new_context(base_url=server, viewport=DESKTOP, locale="ru-RU",
                                      storage_state=await phone_context.storage_state())
