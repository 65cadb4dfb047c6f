"""The reasons an operator picks from a list (the back office's adjust and card forms), and the free note beside one.

Stored as the reason's code, then ": " and the note when there is one ("Goodwill: sorry for the queue"), in the
ledger entry's or the card's reason, as before the list existed. The office reads the whole text; the shopper's
website shows the reason's own words in the shopper's language and the note only as a quote of what the operator
typed (`parse`), since a note is in whatever language the operator wrote it.
"""

from __future__ import annotations

import msgspec

from loyalty_core.errors import ValidationFailed

ADJUST_REASONS = ("Goodwill", "Lost purchase", "Correction of an error", "Fraud", "Other")
CARD_REASONS = ("Lost card", "Stolen card", "Damaged card", "Other")
OTHER = "Other"  # needs a note


class OperatorReason(msgspec.Struct, frozen=True, kw_only=True):
    code: str | None  # one of the list; None: free text (the admin API, or a row from before the list)
    note: str = ""


def compose(code: str, note: str, allowed: tuple[str, ...]) -> str:
    """The reason as stored; refuses a reason not on the list, and "Other" without a note."""
    if code not in allowed:
        raise ValidationFailed("Choose a reason from the list")
    note = note.strip()
    if code == OTHER and not note:
        raise ValidationFailed("Say why in the note")
    return f"{code}: {note}" if note else code


def parse(text: str, allowed: tuple[str, ...]) -> OperatorReason:
    """The code and the note of a stored reason; text that starts with no listed code is all note."""
    text = text.strip()
    for code in allowed:
        if text == code:
            return OperatorReason(code=code)
        if text.startswith(code + ": "):
            return OperatorReason(code=code, note=text[len(code) + 2:].strip())
    return OperatorReason(code=None, note=text)
