"""HTTP for wallet passes: Apple's PassKit web service, and the shopper's pass download and Google save link.

The PassKit endpoints answer with the bare status codes Wallet expects
(201/200/204/304/401); malformed requests get problem+json like everything else.
The shopper routes use the shopper API's bearer guard (backend.api.guards).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import os
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import PathParameter, QueryParameter

from backend.api.guards import Shopper, client_ip, provide_shopper, shopper_guard, utc_now
from loyalty_core.errors import NotFound, ValidationFailed
from loyalty_core.members import cards as members_cards
from loyalty_core.shopper_auth.otp import hit
from wallet_passes import passkit
from wallet_passes.issuer import card_pass, google_save_link, pkpass_bytes
from wallet_passes.settings import WalletSettings, load_wallet_settings

log = logging.getLogger("kopilka.passkit")

PKPASS_MEDIA_TYPE = "application/vnd.apple.pkpass"

DeviceId = Annotated[str, PathParameter(name="device_id", min_length=1, max_length=200)]
PassTypeId = Annotated[str, PathParameter(name="pass_type_id", min_length=1, max_length=200)]
Serial = Annotated[str, PathParameter(name="serial", min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
CardNumber = Annotated[str, PathParameter(name="number", min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]
UpdatedSince = Annotated[str | None, QueryParameter(name="passesUpdatedSince", max_length=20)]
Wallet = NamedDependency[WalletSettings]
Now = NamedDependency[dt.datetime]


class PushTokenIn(msgspec.Struct, frozen=True):
    pushToken: Annotated[str, msgspec.Meta(min_length=1, max_length=400)]


class DeviceLogs(msgspec.Struct, frozen=True):
    logs: Annotated[list[Annotated[str, msgspec.Meta(max_length=4000)]], msgspec.Meta(max_length=100)] = []


# POST /passkit/v1/log is anonymous (Apple's protocol): whatever arrives is untrusted text going into our log.
LOG_LINES_PER_REQUEST = 10  # Wallet sends one or two; the rest is summarised as a count
LOG_LINE_MAX_CHARS = 500
LOG_REQUESTS_PER_IP = 30  # per LOG_WINDOW_SECONDS, so nobody can flood the log
LOG_WINDOW_SECONDS = 600


def log_safe(text: str, limit: int = LOG_LINE_MAX_CHARS) -> str:
    """One log line, whatever was sent: no character may start a new (forged) line or reorder the text.

    Control and format characters (newlines, CR, ESC, NEL, U+2028, bidi overrides...) are written as
    \\uXXXX escapes; the result is cut at `limit` characters.
    """
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text[:limit])
    return escaped if len(escaped) <= limit and len(text) <= limit else escaped[:limit] + "...[cut]"


class GoogleSaveLink(msgspec.Struct, frozen=True):
    url: str


_settings_cache: dict[tuple[str, str], WalletSettings] = {}


def provide_wallet(request: Request) -> WalletSettings:
    """Wallet settings for this app (environment + the app's data dir and public URL), read once."""
    app_settings = request.app.state.settings
    key = (str(app_settings.data_dir), app_settings.server.public_url)
    if key not in _settings_cache:
        _settings_cache[key] = load_wallet_settings(os.environ, app_settings.data_dir, app_settings.server.public_url)
    return _settings_cache[key]


DEPENDENCIES = {
    "wallet": Provide(provide_wallet, sync_to_thread=False),
    "now": Provide(utc_now, sync_to_thread=False),
}


def _bare(status: int) -> Response[bytes]:
    return Response(b"", status_code=status, media_type="text/plain")


def _apple_pass_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme == "ApplePass" else ""


async def _pass_response(number: str, wallet: WalletSettings, now: dt.datetime, *, issue: bool) -> Response[bytes]:
    issued = await card_pass(number, wallet.apple, now, issue=issue)
    if issued is None:
        raise NotFound(f"Card {number} has no wallet pass")
    return Response(await pkpass_bytes(issued.content, wallet.apple), media_type=PKPASS_MEDIA_TYPE, headers={
        "Last-Modified": email.utils.format_datetime(issued.updated_at.astimezone(dt.UTC), usegmt=True),
        "Cache-Control": "no-cache",
        "Content-Disposition": f'attachment; filename="{number}.pkpass"',
    })


def _not_modified_since(request: Request, updated_at: dt.datetime) -> bool:
    raw = request.headers.get("if-modified-since")
    if not raw:
        return False
    try:
        since = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return False  # an unreadable date: send the pass
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    # pass_updated_at is kept in whole seconds (loyalty_core.messaging.outbox.pass_changed), like HTTP dates
    return updated_at <= since


class PassKitController(Controller):
    """Apple's PassKit web service (Wallet Passes: "Adding a Web Service to Update Passes")."""

    path = "/passkit/v1"
    tags = ["wallet passkit"]
    dependencies = DEPENDENCIES

    @post("/devices/{device_id:str}/registrations/{pass_type_id:str}/{serial:str}")
    async def register(self, request: Request, device_id: DeviceId, pass_type_id: PassTypeId, serial: Serial,
                       data: PushTokenIn, wallet: Wallet) -> Response[bytes]:
        """201 for a new registration, 200 if the device was registered already, 401 for a wrong token."""
        card_id = await passkit.authorized_card(serial, _apple_pass_token(request))
        if card_id is None or pass_type_id != wallet.apple.pass_type_id:
            return _bare(401)
        outcome = await passkit.register_device(card_id, device_id, data.pushToken)
        return _bare(201 if outcome == "created" else 200)

    @delete("/devices/{device_id:str}/registrations/{pass_type_id:str}/{serial:str}", status_code=200)
    async def unregister(self, request: Request, device_id: DeviceId, pass_type_id: PassTypeId, serial: Serial,
                         wallet: Wallet) -> Response[bytes]:
        card_id = await passkit.authorized_card(serial, _apple_pass_token(request))
        if card_id is None or pass_type_id != wallet.apple.pass_type_id:
            return _bare(401)
        await passkit.unregister_device(card_id, device_id)
        return _bare(200)

    @get("/devices/{device_id:str}/registrations/{pass_type_id:str}")
    async def updated(self, device_id: DeviceId, pass_type_id: PassTypeId, wallet: Wallet,
                      passes_updated_since: UpdatedSince = None) -> Response[Any]:
        """Serial numbers of this device's passes changed since the tag; 204 if none."""
        if pass_type_id != wallet.apple.pass_type_id:
            raise NotFound(f"This service issues no passes of type {pass_type_id}")
        try:
            since = passkit.parse_update_tag(passes_updated_since)
        except passkit.InvalidUpdateTag:
            raise ValidationFailed("passesUpdatedSince is not a tag this service gave out") from None
        changed = await passkit.updated_serials(device_id, since)
        if changed is None:
            return _bare(204)
        return Response(changed, media_type="application/json")

    @get("/passes/{pass_type_id:str}/{serial:str}")
    async def latest_pass(self, request: Request, pass_type_id: PassTypeId, serial: Serial, wallet: Wallet,
                          now: Now) -> Response[bytes]:
        """The pass as it is now; 304 if unchanged since If-Modified-Since; 401 for a wrong token."""
        card_id = await passkit.authorized_card(serial, _apple_pass_token(request))
        if card_id is None or pass_type_id != wallet.apple.pass_type_id:
            return _bare(401)
        issued = await card_pass(serial, wallet.apple, now, issue=False)
        if issued is not None and _not_modified_since(request, issued.updated_at):
            return _bare(304)
        return await _pass_response(serial, wallet, now, issue=False)

    @post("/log", status_code=200)
    async def device_log(self, request: Request, data: DeviceLogs) -> Response[bytes]:
        """Wallet reports problems with our passes here; they go to our log, escaped, capped and rate-limited."""
        ip = client_ip(request)
        await hit(request.app.state.valkey, f"passkit-log:ip:{ip}", LOG_REQUESTS_PER_IP, LOG_WINDOW_SECONDS)
        for line in data.logs[:LOG_LINES_PER_REQUEST]:
            log.warning("wallet device log from %s: %s", log_safe(ip, 64), log_safe(line))
        if len(data.logs) > LOG_LINES_PER_REQUEST:
            log.warning("wallet device log from %s: %d more lines not logged", log_safe(ip, 64),
                        len(data.logs) - LOG_LINES_PER_REQUEST)
        return _bare(200)


class ShopperPassController(Controller):
    """The member's own card as a wallet pass (same bearer token as the shopper API)."""

    path = "/api/v1/cards"
    tags = ["shopper cards"]
    guards = [shopper_guard]
    dependencies = {**DEPENDENCIES, "shopper": Provide(provide_shopper, sync_to_thread=False)}

    @get("/{number:str}/pass.pkpass", media_type=PKPASS_MEDIA_TYPE)
    async def apple_pass(self, shopper: Shopper, number: CardNumber, wallet: Wallet, now: Now) -> Response[bytes]:
        """The card as a signed Apple Wallet pass (storeCard), kept current through the PassKit web service."""
        await members_cards.active_card_of_customer(shopper.customer_id, number)
        return await _pass_response(number, wallet, now, issue=True)

    @get("/{number:str}/google-wallet")
    async def google_link(self, shopper: Shopper, number: CardNumber, wallet: Wallet, now: Now) -> GoogleSaveLink:
        """The "Save to Google Wallet" link for the card."""
        await members_cards.active_card_of_customer(shopper.customer_id, number)
        if wallet.google is None:
            raise NotFound("Google Wallet is not set up for this program")
        issued = await card_pass(number, wallet.apple, now, issue=True)
        if issued is None:
            raise NotFound(f"Card {number} is not one of your cards")
        return GoogleSaveLink(url=google_save_link(issued.content, wallet.google, now))


ROUTES: list = [PassKitController, ShopperPassController]
