"""Card numbers: 13 digits, EAN-13 shaped (prefix 2 = in-store numbering), the last digit a check digit."""

from __future__ import annotations

CARD_PREFIX = "2"


def ean13_check_digit(first12: str) -> str:
    if len(first12) != 12 or not first12.isdigit():
        raise ValueError("EAN-13 body must be 12 digits")
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def card_number(sequence: int) -> str:
    body = f"{CARD_PREFIX}{sequence:011d}"
    return body + ean13_check_digit(body)


def is_valid_card_number(value: str) -> bool:
    return len(value) == 13 and value.isdigit() and ean13_check_digit(value[:12]) == value[12]
