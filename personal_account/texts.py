"""What the website says about the program's rules, in the shopper's language: rule, offer and tier names
(`names: {ru, en}` in the rules document, the document's `name` when a language is missing), what an offer
gives, the birthday banner, and the receipt explained line by line."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from loyalty_core.members.extras import catalog_names
from loyalty_core.members.profile import Member
from personal_account import i18n
from personal_account.web import Formats


async def document_of(member: Member) -> Any:
    from loyalty_core.rules.programs import rules_document

    return await rules_document(member.program_id, member.rules_version)


def rules_by_code(document: Any) -> dict[str, Any]:
    return {rule.code: rule for group in document.groups for rule in group.rules}


def tier_names(document: Any, fmt: Formats) -> dict[str, str]:
    return {t.code: fmt.name(t.names, t.name) for t in document.settings.tiers}


def percent(bp: int, lang: str) -> str:
    whole, rest = divmod(bp, 100)
    text = f"{whole}" if not rest else f"{whole}.{rest:02d}".rstrip("0")
    return (text.replace(".", ",") if lang == "ru" else text) + "%"


def what_you_get(rule: Any, fmt: Formats) -> str:
    """The rule's description in this language, else a sentence made from its effect."""
    described = i18n.localized(rule.descriptions, "", fmt.lang)
    if described:
        return described
    effect, ru = rule.effect, fmt.lang == "ru"
    match type(effect).__name__:
        case "PercentPoints" | "CheapestItemBonus":
            return f"+{percent(effect.bp, fmt.lang)} " + ("баллами" if ru else "in points")
        case "Multiplier":
            factor = str(effect.factor_bp // 10_000) if effect.factor_bp % 10_000 == 0 else f"{effect.factor_bp / 10_000:g}"
            return ("Баллы ×" if ru else "Points ×") + factor
        case "FixedPoints" | "EventBonus":
            return "+" + fmt.pts(effect.points)
        case "PointsPerItem":
            return "+" + fmt.pts(effect.points) + (" за товар" if ru else " per item")
        case "PointsPerAmount":
            return "+" + fmt.pts(effect.points) + (" за каждые " if ru else " for every ") + fmt.money(effect.per_amount)
        case "PercentDiscount":
            return ("Скидка " if ru else "") + percent(effect.bp, fmt.lang) + ("" if ru else " off")
        case "AmountDiscount":
            return ("Скидка " if ru else "") + fmt.money(effect.amount) + ("" if ru else " off")
    return ""


def birthday_banner(member: Member, birth_date: dt.date | None, document: Any, now: dt.datetime,
                    fmt: Formats) -> dict[str, Any] | None:
    """The birthday rule of the program, when the shopper's birthday is within its window (or a week away)."""
    if birth_date is None:
        return None
    rule = next((r for g in document.groups if g.active for r in g.rules
                 if r.active and r.target is not None and r.target.birthday_window_days is not None), None)
    if rule is None:
        return None
    today = now.astimezone(ZoneInfo(member.timezone)).date()
    days = None
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            day = birth_date.replace(year=year)
        except ValueError:  # 29 February in a common year: the 28th
            day = dt.date(year, 2, 28)
        delta = (day - today).days
        if days is None or abs(delta) < abs(days):
            days = delta
    window = rule.target.birthday_window_days
    if days is None or not (-window <= days <= 7):
        return None
    return {"today": abs(days) <= window, "text": f"{fmt.name(rule.names, rule.name)}: {what_you_get(rule, fmt)}"}


def offer_cards(offers: list[Any], document: Any, fmt: Formats) -> list[dict[str, Any]]:
    by_code = rules_by_code(document)
    cards = []
    for offer in offers:
        rule = by_code.get(offer.rule)
        schedule = rule.schedule if rule is not None else None
        hours = [f"{h.start}:00–{h.end}:00" for h in (schedule.hours if schedule is not None else [])]
        cards.append({
            "rule": offer.rule,
            "name": fmt.name(rule.names, rule.name) if rule is not None else offer.name,
            "gives": what_you_get(rule, fmt) if rule is not None else "",
            "until": offer.valid_to, "from": offer.valid_from, "needs_coupon": offer.needs_coupon,
            "weekdays": [weekday(d, fmt.lang) for d in offer.weekdays], "hours": hours,
            "stage": offer.stage,
            "birthday": bool(rule is not None and rule.target is not None and rule.target.birthday_window_days is not None),
        })
    return cards


def weekday(n: int, lang: str) -> str:
    return (("пн", "вт", "ср", "чт", "пт", "сб", "вс") if lang == "ru" else ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))[(n - 1) % 7]


# --- the receipt, line by line ---------------------------------------------------------------------


class ReceiptLine(msgspec.Struct, kw_only=True):
    line_no: int
    name: str
    quantity_milli: int
    price: int
    amount: int
    discount: int
    redeemed_points: int
    redeemed_amount: int
    to_pay: int
    accrued_points: int
    returned_quantity_milli: int
    returned_amount: int = 0  # money given back for this line
    clawed_back_points: int = 0  # points earned on it and taken back by returns
    refunded_points: int = 0  # points paid for it and given back by returns
    no_points_reason: str = ""


async def receipt_lines(sale_id: int, document: Any, fmt: Formats) -> list[ReceiptLine]:
    """Each line with what was paid in money and in points, what it earned, what returns took back, and why it
    earned nothing (excluded goods, cancelled, returned, paid with points)."""
    from loyalty_core.tables import Sale

    rows = await Sale.raw(
        "SELECT l.line_no, COALESCE(p.name, l.sku) AS name, p.names, l.sku, l.quantity_milli, l.price, l.amount, l.discount, "
        "l.redeemed_points, l.redeemed_amount, l.to_pay, l.accrued_points, l.returned_quantity_milli, "
        "p.excluded, c.name AS category, c.names AS category_names, COALESCE(c.path, ARRAY[]::varchar[]) AS path, s.status, "
        "COALESCE(r.amount, 0) AS returned_amount, COALESCE(r.clawed, 0) AS clawed_back_points, "
        "COALESCE(r.refunded, 0) AS refunded_points "
        "FROM sale_line l JOIN sale s ON s.id = l.sale LEFT JOIN product p ON p.sku = l.sku "
        "LEFT JOIN category c ON c.id = p.category "
        "LEFT JOIN (SELECT rl.line_no, sum(rl.refunded_amount)::bigint AS amount, sum(rl.clawed_back_points)::bigint AS clawed, "
        "  sum(rl.refunded_points)::bigint AS refunded FROM return_line rl JOIN sale_return sr ON sr.id = rl.sale_return "
        "  WHERE sr.sale = {} GROUP BY rl.line_no) r ON r.line_no = l.line_no "
        "WHERE l.sale = {} ORDER BY l.line_no",
        sale_id, sale_id,
    )
    settings = document.settings
    excluded_skus, excluded_categories = set(settings.excluded_skus), set(settings.excluded_categories)
    lines = []
    for row in rows:
        # the catalog's names in this page's language (`names: {ru, en}`), its one name otherwise
        row["name"] = fmt.name(catalog_names(row.pop("names")), row["name"])
        if row["category"]:
            row["category"] = fmt.name(catalog_names(row["category_names"]), row["category"])
        reason = ""
        if row["status"] == "cancelled":  # whatever it earned was taken back
            reason = fmt.t("the purchase was cancelled")
        elif not row["accrued_points"]:
            if row["excluded"] or row["sku"] in excluded_skus or excluded_categories & set(row["path"]):
                what = row["category"] or row["name"]
                reason = f"{what.lower() if fmt.lang == 'ru' else what} {fmt.t('is not part of the programme')}" \
                    if row["category"] else fmt.t("This item is not part of the programme")
            elif row["returned_quantity_milli"] >= row["quantity_milli"]:
                reason = fmt.t("the item was returned")
            elif row["to_pay"] == 0 and row["redeemed_points"]:
                reason = fmt.t("paid in full with points")
        for key in ("excluded", "category", "category_names", "path", "status", "sku"):
            row.pop(key)
        lines.append(ReceiptLine(**row, no_points_reason=reason))
    return lines


def points_breakdown(sale: Any, document: Any, fmt: Formats) -> dict[str, Any]:
    """The receipt's points as a sum the shopper can check: the tier's base points plus each promotion's."""
    by_code = rules_by_code(document)
    tiers = {t.name: t for t in document.settings.tiers}
    same_language = document.settings.language == fmt.lang
    promos, base, tier_name = [], 0, ""
    for applied in sale.applied:
        if applied.rule == "tier":  # the tier's built-in accrual: the base every purchase earns
            base += applied.points
            tier = tiers.get(applied.name)
            tier_name = fmt.name(tier.names, tier.name) if tier is not None else applied.name
            continue
        if not applied.points and not applied.discount:
            continue
        rule = by_code.get(applied.rule)
        promos.append({
            "name": fmt.name(rule.names, rule.name) if rule is not None else applied.name,
            "gives": what_you_get(rule, fmt) if rule is not None else "",
            "points": applied.points, "discount": applied.discount,
            # the engine's own sentence only when it speaks this page's language
            "explanation": applied.explanation if same_language else "",
        })
    rest = sale.accrued_points - base - sum(p["points"] for p in promos)  # caps and rounding: shown, so it adds up
    return {"base": base + max(rest, 0), "promos": promos, "total": sale.accrued_points, "tier": tier_name,
            "capped": min(rest, 0)}


# --- points history: the reasons the engine and the services wrote, in this page's language -----------------

_AWARD = re.compile(r"^(?P<name>.+): (?P<n>\d[\d\u00a0 ]*?)[\s\u00a0](?:балл\w*|points?)"
                    r"(?P<friend> за приглашённого друга| for bringing a friend)?$")
_RECEIPT = re.compile(r"^receipt (?P<id>\S+)$")
_LEGACY = re.compile(r"^legacy balance ?(?P<id>\S*)$")


class ReasonText(msgspec.Struct, frozen=True, kw_only=True):
    """A reason in the page's language, and an operator's note shown only as a quote of what they typed."""

    text: str
    note: str = ""
    note_lang: str = ""  # the note's script when it tells (lang= for screen readers); "" when it does not

    def __str__(self) -> str:
        return self.text


# what the shopper reads for each reason on the office's lists (loyalty_core.office.reasons)
_ADJUST_TEXT = {
    "Goodwill": "A gift from our support team",
    "Lost purchase": "Points for a purchase the card missed",
    "Correction of an error": "Correction of an error",
    "Fraud": "Points taken back after a check",
}
_CARD_TEXT = {"Lost card": "lost", "Stolen card": "stolen", "Damaged card": "damaged"}
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_LATIN = re.compile(r"[A-Za-z]")


def _note_lang(note: str) -> str:
    if _CYRILLIC.search(note):
        return "ru"
    return "en" if _LATIN.search(note) else ""


def operator_reason(text: str, fmt: Formats, *, card: bool = False) -> ReasonText:
    """A reason an operator gave (points adjusted, a card blocked by support): the listed reason's own words in this
    language; the free note beside it, or free text from the admin API, only as the operator's quoted note."""
    from loyalty_core.office import reasons

    picked = reasons.parse(text, reasons.CARD_REASONS if card else reasons.ADJUST_REASONS)
    words = (_CARD_TEXT if card else _ADJUST_TEXT).get(picked.code or "")
    if words is None:
        words = "blocked by our support team" if card else "Adjusted by our support team"
    return ReasonText(text=fmt.t(words), note=picked.note, note_lang=_note_lang(picked.note))


def card_reason(text: str | None, fmt: Formats) -> ReasonText:
    """Why a card is blocked: the shopper's own pick and the services' reasons through the catalogue, an operator's
    as the listed reason plus the note."""
    if not text:
        return ReasonText(text="")
    if text in i18n.RU:
        return ReasonText(text=fmt.t(text))
    return operator_reason(text, fmt, card=True)


def history_reason(reason: str, document: Any, fmt: Formats, kind: str = "") -> ReasonText:
    """An award ("Welcome bonus: 500 points", written in the program's language) with the rule's name in this
    language and the points with their word; the services' fixed reasons through the catalogue; an operator's
    adjustment as the listed reason plus the note (`operator_reason`)."""
    from loyalty_core.office import reasons

    if not reason:
        return ReasonText(text="")
    operator = kind == "adjust" and reason not in i18n.RU
    if operator and reasons.parse(reason, reasons.ADJUST_REASONS).code is not None:
        return operator_reason(reason, fmt)
    if m := _AWARD.match(reason):
        rule = next((r for g in document.groups for r in g.rules
                     if m["name"] in (r.name, *r.names.values())), None)
        name = fmt.name(rule.names, rule.name) if rule is not None else m["name"]
        points = int(re.sub(r"\D", "", m["n"]))
        text = f"{name}: {fmt.pts(points)}"
        return ReasonText(text=text + (" " + fmt.t("for bringing a friend") if m["friend"] else ""))
    if m := _RECEIPT.match(reason):
        return ReasonText(text=f"{fmt.t('Receipt')} {m['id']}")
    if m := _LEGACY.match(reason):
        return ReasonText(text=f"{fmt.t('Balance moved from the old programme')} {m['id']}".strip())
    if operator:  # free text an operator typed (the admin API): a note, never passed off as our own words
        return operator_reason(reason, fmt)
    return ReasonText(text=fmt.t(reason))
