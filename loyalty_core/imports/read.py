"""Reading legacy exports: CSV (UTF-8 or cp1251, `;` or `,`, a header row) and JSON Lines, with a mapping (TOML)
from the export's column names and formats to Kopilka's fields. Streams rows; nothing is held whole in memory."""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("members", "cards", "balances", "tiers", "history")

# Kopilka's own field names per file kind: a file that uses them needs no mapping
FIELDS: dict[str, tuple[str, ...]] = {
    "members": ("legacy_id", "phone", "email", "name", "birth_date", "gender", "city", "consent_sms", "consent_sms_at",
                "consent_email", "consent_email_at", "registered_at", "channel"),
    "cards": ("number", "member", "status", "issued_at", "blocked_at"),
    "balances": ("member", "points", "activates_at", "expires_at", "source"),
    "tiers": ("member", "tier", "spend"),
    # purchase history: one row per receipt; `lines` a JSON array of {sku, quantity, price, amount}
    "history": ("receipt", "member", "occurred_at", "store", "amount", "discount", "to_pay", "earning", "lines"),
}

# the usual names in Russian exports (1C, Loymax, Manzana): what --suggest-mapping proposes
SYNONYMS: dict[str, tuple[str, ...]] = {
    "legacy_id": ("код клиента", "id клиента", "клиент id", "код", "client_id", "customer_id", "id"),
    "phone": ("телефон", "мобильный телефон", "моб. телефон", "phone_number", "mobile"),
    "email": ("e-mail", "электронная почта", "почта", "mail"),
    "name": ("фио", "имя", "клиент", "full_name"),
    "birth_date": ("дата рождения", "день рождения", "birthday", "dob"),
    "gender": ("пол", "sex"),
    "city": ("город",),
    "consent_sms": ("согласие на смс", "согласие смс", "sms"),
    "consent_sms_at": ("дата согласия смс", "дата согласия на смс"),
    "consent_email": ("согласие на email", "согласие на e-mail", "согласие email"),
    "consent_email_at": ("дата согласия email", "дата согласия на e-mail", "дата согласия на email"),
    "registered_at": ("дата регистрации", "дата анкеты", "registration_date"),
    "channel": ("канал регистрации", "канал", "source_channel"),
    "number": ("номер карты", "карта", "штрихкод", "card", "card_number", "barcode"),
    "member": ("код клиента", "клиент", "владелец", "member_id", "client_id", "customer_id"),
    "status": ("статус", "статус карты", "state"),
    "issued_at": ("дата выдачи", "дата выпуска", "issued"),
    "blocked_at": ("дата блокировки", "blocked"),
    "points": ("остаток баллов", "баллы", "сумма баллов", "balance", "bonus"),
    "activates_at": ("дата активации", "дата начисления", "active_from"),
    "expires_at": ("дата сгорания", "срок действия", "сгорают", "expires", "expiry"),
    "source": ("источник", "основание", "операция"),
    "tier": ("уровень", "статус клиента", "уровень карты", "level"),
    "spend": ("сумма покупок", "накопленная сумма", "оборот", "turnover"),
    "receipt": ("номер чека", "чек", "receipt_id", "check"),
    "occurred_at": ("дата чека", "дата покупки", "дата и время", "date", "purchased_at"),
    "store": ("магазин", "код магазина", "торговая точка", "store_code", "shop"),
    "amount": ("сумма чека", "сумма", "total"),
    "discount": ("скидка", "сумма скидки"),
    "to_pay": ("к оплате", "оплачено", "сумма оплаты", "paid"),
    "earning": ("сумма для уровня", "сумма для начисления"),
    "lines": ("позиции", "строки", "товары", "items"),
}


class ReadError(Exception):
    """A file cannot be read at all (not a rejected row): the run stops and says why."""


@dataclass
class FileMapping:
    kind: str
    columns: dict[str, str] = field(default_factory=dict)  # field -> the export's column name
    date_format: str = ""  # strptime format, e.g. %d.%m.%Y; empty: ISO 8601 or dd.mm.yyyy
    encoding: str = ""  # forced encoding; empty: detected
    delimiter: str = ""  # forced delimiter; empty: detected


@dataclass
class Mapping:
    files: dict[str, FileMapping] = field(default_factory=dict)  # by file name
    date_format: str = ""
    digest: str = ""

    def for_file(self, path: Path) -> FileMapping:
        if path.name in self.files:
            return self.files[path.name]
        kind = guess_kind(path)
        if kind is None:
            raise ReadError(f"{path.name}: cannot tell what it holds (name it members/cards/balances/tiers/history.csv, "
                            "or give its kind in the mapping file)")
        return FileMapping(kind=kind, date_format=self.date_format)


def load_mapping(path: Path | None) -> Mapping:
    if path is None:
        return Mapping()
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ReadError(f"mapping {path}: {exc}") from None
    mapping = Mapping(date_format=str(doc.get("date_format", "")), digest=hashlib.sha256(raw).hexdigest())
    for name, spec in (doc.get("files") or {}).items():
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ReadError(f"mapping {path}: file {name!r} needs kind = one of {', '.join(KINDS)}")
        columns = {str(k): str(v) for k, v in (spec.get("columns") or {}).items()}
        unknown = set(columns) - set(FIELDS[kind])
        if unknown:
            raise ReadError(f"mapping {path}: file {name!r}: unknown fields {sorted(unknown)} "
                            f"(fields of {kind}: {', '.join(FIELDS[kind])})")
        mapping.files[name] = FileMapping(kind=kind, columns=columns,
                                          date_format=str(spec.get("date_format", mapping.date_format)),
                                          encoding=str(spec.get("encoding", "")), delimiter=str(spec.get("delimiter", "")))
    return mapping


def guess_kind(path: Path) -> str | None:
    stem = path.name.lower()
    for kind, words in (("history", ("history", "receipt", "purchase", "sales", "чек", "покуп", "истор")),
                        ("members", ("member", "client", "customer", "клиент")), ("cards", ("card", "карт")),
                        ("balances", ("balance", "lot", "point", "бонус", "балл", "остат")),
                        ("tiers", ("tier", "level", "уров"))):
        if any(w in stem for w in words):
            return kind
    return None


def list_files(inputs: list[Path]) -> list[Path]:
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found.extend(sorted(p for p in item.iterdir() if p.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".txt")))
        elif item.is_file():
            found.append(item)
        else:
            raise ReadError(f"{item}: no such file or directory")
    if not found:
        raise ReadError("no .csv or .jsonl files to import")
    return found


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_encoding(path: Path) -> str:
    """UTF-8 when the first megabyte decodes as UTF-8 (a BOM is dropped), else cp1251: the two encodings Russian
    exports come in. A simple decode attempt: cp1251 decodes any byte, so it is the fallback, never a guess."""
    with path.open("rb") as f:
        sample = f.read(1 << 20)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1251"


@dataclass
class Opened:
    path: Path
    kind: str
    fmt: str  # csv | jsonl
    encoding: str
    delimiter: str
    header: list[str]
    mapping: FileMapping


def open_file(path: Path, mapping: Mapping) -> Opened:
    spec = mapping.for_file(path)
    encoding = spec.encoding or detect_encoding(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return Opened(path, spec.kind, "jsonl", encoding, "", [], spec)
    with path.open(encoding=encoding, newline="") as f:
        sample = f.read(64 * 1024)
    if not sample.strip():
        raise ReadError(f"{path.name}: empty file")
    delimiter = spec.delimiter
    if not delimiter:
        try:
            delimiter = csv.Sniffer().sniff(sample.split("\n", 1)[0], delimiters=";,\t").delimiter
        except csv.Error:
            delimiter = ";" if sample.count(";") >= sample.count(",") else ","
    header = next(csv.reader([sample.split("\n", 1)[0].rstrip("\r")], delimiter=delimiter))
    return Opened(path, spec.kind, "csv", encoding, delimiter, [h.strip() for h in header], spec)


def column_of(opened: Opened) -> dict[str, str]:
    """field -> column name in the file: the mapping's, else Kopilka's own name when the file has it."""
    out: dict[str, str] = {}
    for name in FIELDS[opened.kind]:
        if name in opened.mapping.columns:
            out[name] = opened.mapping.columns[name]
        elif name in opened.header or opened.fmt == "jsonl":
            out[name] = name
    return out


def rows(opened: Opened) -> Iterator[tuple[int, dict[str, str] | None, str]]:
    """(line number, {field: raw text} or None when the row is broken, why broken)."""
    columns = column_of(opened)
    with opened.path.open(encoding=opened.encoding, newline="") as f:
        if opened.fmt == "jsonl":
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield line_no, None, f"not JSON: {exc.msg}"
                    continue
                if not isinstance(doc, dict):
                    yield line_no, None, "not a JSON object"
                    continue
                values = {k: _text(doc.get(c)) for k, c in columns.items()}
                if any("\x00" in v for v in values.values()):
                    yield line_no, None, "a NUL character"
                    continue
                yield line_no, values, ""
            return
        reader = csv.reader(f, delimiter=opened.delimiter)
        header = [h.strip() for h in next(reader)]
        index = {name: i for i, name in enumerate(header)}
        missing = [c for c in columns.values() if c not in index]
        if missing:
            raise ReadError(f"{opened.path.name}: columns {missing} are not in the header {header}")
        where = {k: index[c] for k, c in columns.items()}
        for record in reader:
            line_no = reader.line_num
            if not record or all(not v.strip() for v in record):
                continue  # blank lines are not rows
            if len(record) != len(header):
                yield line_no, None, f"{len(record)} columns, the header has {len(header)}"
                continue
            if any("\x00" in v for v in record):  # PostgreSQL text cannot hold it
                yield line_no, None, "a NUL character"
                continue
            yield line_no, {k: record[i].strip() for k, i in where.items()}, ""


def _text(value: object) -> str:
    """A JSON value as the text a CSV cell would hold (a receipt's `lines` array stays JSON)."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def suggest_mapping(paths: list[Path]) -> str:
    """A draft mapping from the headers: each column matched to a field by Kopilka's name or a usual synonym."""
    lines = ["# drafted by `kopilka import --suggest-mapping`: check every line, then pass it with --mapping",
             '# date_format = "%d.%m.%Y"   # when dates are not ISO 8601 or dd.mm.yyyy', ""]
    for path in paths:
        kind = guess_kind(path) or "members"
        try:
            opened = open_file(path, Mapping(files={path.name: FileMapping(kind=kind)}))
        except ReadError as exc:
            lines.append(f"# {exc}")
            continue
        header = opened.header
        if opened.fmt == "jsonl":
            with path.open(encoding=opened.encoding) as f:
                first = f.readline()
            try:
                header = list(json.loads(first)) if first.strip() else []
            except json.JSONDecodeError:
                header = []
        lines += [f'[files."{path.name}"]', f'kind = "{kind}"  # {opened.encoding}, '
                  f'delimiter {opened.delimiter!r}' if opened.fmt == "csv" else f'kind = "{kind}"  # JSON Lines',
                  f'[files."{path.name}".columns]']
        used: set[str] = set()
        for column in header:
            low = column.strip().lower()
            match = next((f for f in FIELDS[kind] if f not in used and (low == f or low in SYNONYMS.get(f, ()))), None)
            if match:
                used.add(match)
                if match != column:
                    lines.append(f'{match} = "{column}"')
            else:
                lines.append(f'# ? = "{column}"   (not matched: name the field or leave it out)')
        for f in FIELDS[kind]:
            if f not in used and f not in header:
                lines.append(f"# {f} = ?   (not found)")
        lines.append("")
    return "\n".join(lines)
