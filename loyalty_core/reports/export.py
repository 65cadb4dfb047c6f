"""CSV of a report, for a spreadsheet: UTF-8 with a byte order mark (Excel then reads Cyrillic right), CRLF line
ends and quoting as RFC 4180, a header row, dates as YYYY-MM-DD, points as plain integers.

The separator and the decimal mark follow the office's language, as Excel does with the system's: Russian
`;` and a decimal comma (`1234,56`), English `,` and a decimal point. Money is a decimal number of the
currency's units without grouping or a symbol (the currency is named in the header). Text that a spreadsheet
would run as a formula (a store named `=HYPERLINK(...)`) starts with an apostrophe.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence

BOM = "\ufeff"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


class Money(int):
    """Minor units that the CSV writes as a decimal number."""


class Rate(int):
    """Basis points that the CSV writes as a percentage number with two decimals (1234 -> 12.34)."""


def _cell(value: object, decimal: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (Money, Rate)):
        sign = "-" if value < 0 else ""
        whole, cents = divmod(abs(int(value)), 100)
        return f"{sign}{whole}{decimal}{cents:02d}"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]], lang: str) -> bytes:
    separator, decimal = (";", ",") if lang == "ru" else (",", ".")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([_cell(h, decimal) for h in header])
    for row in rows:
        writer.writerow([_cell(v, decimal) for v in row])
    return (BOM + out.getvalue()).encode("utf-8")
