"""Apple Wallet storeCard passes: content -> pass.json -> signed .pkpass bytes.

`pass_json` is pure (content in, dict out); `build_pkpass` adds the images and
signs with py-pkpass, whose Pass class we extend only where it falls short of
what Wallet needs (see KopilkaPass).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import msgspec
from py_pkpass.models import BarcodeFormat, Pass, StoreCard

from loyalty_core.engine.language import points_word
from wallet_passes.assets import load_assets
from wallet_passes.certs import PassCertPaths

# Wallet wants CSS rgb() strings; these match the committed demo images.
COLORS = {
    "backgroundColor": "rgb(196, 40, 71)",
    "foregroundColor": "rgb(255, 255, 255)",
    "labelColor": "rgb(255, 226, 196)",
}
MIN_AUTH_TOKEN_LENGTH = 16  # Apple rejects shorter authenticationToken values

# The pass speaks the shopper's language (customer.locale), not the phone's: Wallet's own .lproj
# localisation would follow the device, and the shopper chose a language with us. "%@" is the new value.
LABELS: dict[str, dict[str, str]] = {
    "en": {
        "tier": "Tier", "tier_change": "Your tier is now %@",
        "balance": "Points", "balance_change": "Balance: %@ points",
        "member": "Member", "pending": "Pending", "pending_change": "Pending points: %@",
        "card": "Card", "card_number": "Card number",
        "expiring": "Expiring points", "expiring_change": "Points expiring: %@",
        "expiring_line": "{points} {word} on {date}", "expiring_soon": "Expiring soon",
        "updated": "Updated", "description": "{program} loyalty card",
    },
    "ru": {
        "tier": "Уровень", "tier_change": "Ваш уровень теперь: %@",
        "balance": "Баллы", "balance_change": "Баланс баллов: %@",
        "member": "Участник", "pending": "Ожидают", "pending_change": "Баллы в ожидании: %@",
        "card": "Карта", "card_number": "Номер карты",
        "expiring": "Сгорающие баллы", "expiring_change": "Сгорают баллы: %@",
        "expiring_line": "{points} {word} сгорят {date}", "expiring_soon": "Скоро сгорят",
        "updated": "Обновлено", "description": "Карта лояльности {program}",
    },
}


def labels(locale: str) -> dict[str, str]:
    """The pass texts for a locale ("ru", "en", "ru-RU"...); English for languages we do not have."""
    return LABELS.get(locale.split("-")[0].split("_")[0].lower(), LABELS["en"])


class PassContentInvalid(ValueError):
    """The content cannot make a pass Wallet would accept."""


class ExpiringPoints(msgspec.Struct, frozen=True, array_like=True):
    points: int
    expires_on: dt.date


class PassLocation(msgspec.Struct, frozen=True, array_like=True):
    latitude: float
    longitude: float
    relevant_text: str = ""  # shown on the lock screen near the store


class PassContent(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a card's pass shows. Built by the service layer from the card's rows."""

    serial: str  # the pass serial number: the card number, stable across re-issues
    member_name: str
    program_name: str
    organization_name: str
    pass_type_id: str
    team_id: str
    card_number: str
    balance_active: int
    balance_pending: int
    tier_name: str | None = None
    expiring: list[ExpiringPoints] = []
    locations: list[PassLocation] = []
    web_service_url: str | None = None
    authentication_token: str | None = None
    voided: bool = False  # card blocked or replaced: Wallet greys the pass out
    updated_at: dt.datetime
    relevant_date: dt.datetime | None = None
    locale: str = "en"  # the shopper's language (customer.locale) for labels and messages


def _field(key: str, label: str, value: Any, change: str | None = None, **extra: Any) -> dict[str, Any]:
    field = {"key": key, "label": label, "value": value, **extra}
    if change:
        # "%@" is replaced by the new value on the lock screen notification.
        field["changeMessage"] = change
    return field


def expiring_line(e: ExpiringPoints, locale: str) -> str:
    language = "ru" if labels(locale) is LABELS["ru"] else "en"
    return labels(locale)["expiring_line"].format(points=e.points, word=points_word(e.points, language),
                                                  date=e.expires_on.isoformat())


def _expiring_text(expiring: list[ExpiringPoints], locale: str = "en") -> str:
    rows = sorted(expiring, key=lambda e: e.expires_on)
    return "\n".join(expiring_line(e, locale) for e in rows)


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise PassContentInvalid("pass dates need a time zone (W3C date with offset)")
    return moment.isoformat(timespec="seconds")


def store_card_fields(content: PassContent) -> dict[str, list[dict[str, Any]]]:
    """The storeCard field groups: what the front and the back of the card say, in the shopper's language."""
    t = labels(content.locale)
    header = [_field("tier", t["tier"], content.tier_name, t["tier_change"])] if content.tier_name else []
    back = [
        _field("card", t["card_number"], content.card_number),
        _field("member_back", t["member"], content.member_name),
    ]
    if content.expiring:
        back.append(_field("expiring", t["expiring"], _expiring_text(content.expiring, content.locale),
                           t["expiring_change"]))
    back.append(_field("updated", t["updated"], _iso(content.updated_at),
                       dateStyle="PKDateStyleMedium", timeStyle="PKDateStyleShort"))
    return {
        "headerFields": header,
        "primaryFields": [_field("balance", t["balance"], content.balance_active, t["balance_change"],
                                 numberStyle="PKNumberStyleDecimal")],
        "secondaryFields": [
            _field("member", t["member"], content.member_name),
            _field("pending", t["pending"], content.balance_pending, t["pending_change"]),
        ],
        "auxiliaryFields": [_field("card_front", t["card"], content.card_number)],
        "backFields": back,
    }


def _validate(content: PassContent) -> None:
    if content.web_service_url is not None:
        token = content.authentication_token or ""
        if len(token) < MIN_AUTH_TOKEN_LENGTH:
            raise PassContentInvalid(f"authenticationToken must be at least {MIN_AUTH_TOKEN_LENGTH} characters")
        if not content.web_service_url.startswith(("https://", "http://")):
            raise PassContentInvalid("webServiceURL must be an http(s) URL")
    if not content.serial:
        raise PassContentInvalid("a pass needs a serial number")


class KopilkaPass(Pass):
    """py-pkpass Pass with the pass.json keys it lacks or gets wrong for us.

    py-pkpass emits empty changeMessage strings, null location distances, a
    single barcode and a Barcode object for the legacy key; Wallet ignores or
    rejects those, so we replace the pass-style dict and barcode keys with the
    exact JSON we want and keep py-pkpass for manifest, signing and zipping.
    """

    def __init__(self, content: PassContent) -> None:
        super().__init__(StoreCard(), passTypeIdentifier=content.pass_type_id,
                         organizationName=content.organization_name, teamIdentifier=content.team_id)
        self.content = content

    def json_dict(self) -> dict[str, Any]:
        return pass_json(self.content)


def pass_json(content: PassContent) -> dict[str, Any]:
    """The pass.json dict for a card (pure)."""
    _validate(content)
    barcode = {
        "format": BarcodeFormat.QR,
        "message": content.card_number,
        "messageEncoding": "iso-8859-1",
        "altText": content.card_number,
    }
    doc: dict[str, Any] = {
        "formatVersion": 1,
        "passTypeIdentifier": content.pass_type_id,
        "teamIdentifier": content.team_id,
        "organizationName": content.organization_name,
        "serialNumber": content.serial,
        "description": labels(content.locale)["description"].format(program=content.program_name),
        "logoText": content.program_name,
        **COLORS,
        "storeCard": store_card_fields(content),
        "barcodes": [barcode],
        "barcode": barcode,  # iOS < 9 reads only the singular key
        "voided": content.voided,
    }
    if content.web_service_url is not None:
        doc["webServiceURL"] = content.web_service_url
        doc["authenticationToken"] = content.authentication_token
    if content.locations:
        doc["locations"] = [_location(loc) for loc in content.locations[:10]]  # Wallet uses at most 10
    if content.relevant_date is not None:
        doc["relevantDate"] = _iso(content.relevant_date)
    return doc


def _location(loc: PassLocation) -> dict[str, Any]:
    out: dict[str, Any] = {"latitude": loc.latitude, "longitude": loc.longitude}
    if loc.relevant_text:
        out["relevantText"] = loc.relevant_text
    return out


def build_pkpass(content: PassContent, signing: PassCertPaths, assets: dict[str, bytes] | None = None) -> bytes:
    """A signed .pkpass: pass.json, images, manifest.json (SHA-1 per file), detached CMS signature.

    The signature is made with the Pass Type ID key and carries the WWDR
    intermediate, as Wallet requires.
    """
    pkpass = KopilkaPass(content)
    for name, data in (load_assets() if assets is None else assets).items():
        pkpass.addFile(name, io.BytesIO(data))
    if "icon.png" not in pkpass._files:
        raise PassContentInvalid("a pass needs icon.png")
    out = pkpass.create(str(signing.cert_path), str(signing.key_path), str(signing.wwdr_path),
                        signing.key_password or "")
    return out.getvalue()
