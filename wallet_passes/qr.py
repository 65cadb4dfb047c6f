"""Card QR codes as images: the payload is the card number (wallet passes, plastic cards) or the app's
rotating token (loyalty_core.shopper_auth.qr_token)."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_M


def _qr(payload: str, box_size: int, border: int) -> qrcode.QRCode:
    # Level M survives a scuffed phone screen and keeps a short payload at version 2-3.
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=border)
    code.add_data(payload)
    code.make(fit=True)
    return code


def card_qr_svg(payload: str, box_size: int = 10, border: int = 4) -> str:
    """An SVG QR for the web (scales without blur); a single <path>, no fixed colours beyond black."""
    image = _qr(payload, box_size, border).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")


def card_qr_png(payload: str, box_size: int = 10, border: int = 4) -> bytes:
    buf = io.BytesIO()
    _qr(payload, box_size, border).make_image().save(buf, format="PNG")
    return buf.getvalue()
