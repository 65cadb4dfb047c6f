"""The card QR and the app's rotating QR token, from the cashier's scanner's point of view."""

from __future__ import annotations

import datetime as dt
import io
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from loyalty_core.shopper_auth.qr_token import (
    QR_TOKEN_PREFIX,
    QrTokenExpired,
    QrTokenInvalid,
    is_app_qr_token,
    issue_app_qr_token,
    verify_app_qr_token,
)
from wallet_passes.qr import card_qr_png, card_qr_svg

SECRET = "app-secret-for-tests"
NOON = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
CARD = "2000000000017"


def at(seconds: float) -> dt.datetime:
    return NOON + dt.timedelta(seconds=seconds)


def test_the_till_reads_the_card_number_from_a_fresh_token() -> None:
    token = issue_app_qr_token(CARD, SECRET, NOON)
    assert verify_app_qr_token(token, SECRET, at(5), leeway=30) == CARD


def test_a_token_is_short_and_cannot_be_mistaken_for_a_card_or_phone() -> None:
    token = issue_app_qr_token(CARD, SECRET, NOON)
    assert token.startswith(QR_TOKEN_PREFIX) and len(token) <= 48
    assert is_app_qr_token(token)
    assert not is_app_qr_token(CARD) and not is_app_qr_token("+79161234567")


def test_a_screenshot_works_for_period_plus_leeway_then_stops() -> None:
    token = issue_app_qr_token(CARD, SECRET, NOON, period=30)
    assert verify_app_qr_token(token, SECRET, at(60), leeway=30) == CARD
    with pytest.raises(QrTokenExpired):
        verify_app_qr_token(token, SECRET, at(61), leeway=30)


def test_a_new_token_each_period_and_each_is_valid() -> None:
    first, second = issue_app_qr_token(CARD, SECRET, NOON), issue_app_qr_token(CARD, SECRET, at(30))
    assert first != second
    assert verify_app_qr_token(second, SECRET, at(31), leeway=0) == CARD


def test_a_token_edited_to_another_card_is_refused() -> None:
    token = issue_app_qr_token(CARD, SECRET, NOON)
    forged = token.replace(CARD, "2000000000024")
    with pytest.raises(QrTokenInvalid):
        verify_app_qr_token(forged, SECRET, NOON)


def test_a_token_with_its_life_extended_is_refused() -> None:
    prefix, card, exp, mac = issue_app_qr_token(CARD, SECRET, NOON).split(".")
    later = int(exp, 36) + 3600
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    b36 = ""
    while later:
        later, r = divmod(later, 36)
        b36 = digits[r] + b36
    with pytest.raises(QrTokenInvalid):
        verify_app_qr_token(f"{prefix}.{card}.{b36}.{mac}", SECRET, at(600))


@pytest.mark.parametrize("scanned", ["KQ1.", "KQ1.abc", "KQ1.a.b.c.d", CARD, ""])
def test_garbage_is_invalid(scanned: str) -> None:
    with pytest.raises(QrTokenInvalid):
        verify_app_qr_token(scanned, SECRET, NOON)


def test_a_token_from_another_installation_is_invalid() -> None:
    token = issue_app_qr_token(CARD, "other-secret", NOON)
    with pytest.raises(QrTokenInvalid):
        verify_app_qr_token(token, SECRET, NOON)


def test_card_qr_svg_is_one_scalable_svg_document() -> None:
    root = ET.fromstring(card_qr_svg(CARD))
    assert root.tag.endswith("svg") and root.get("viewBox")
    assert len(root.findall("{http://www.w3.org/2000/svg}path")) == 1


def test_card_qr_png_is_a_square_image_with_a_quiet_zone() -> None:
    image = Image.open(io.BytesIO(card_qr_png(CARD, box_size=4, border=4))).convert("L")
    width, height = image.size
    assert width == height and width >= (21 + 8) * 4
    # The 4-module border stays white so scanners find the code.
    assert all(image.getpixel((x, 2)) == 255 for x in range(width))
    assert image.getpixel((16, 16)) == 0  # top-left finder pattern starts right after the border
