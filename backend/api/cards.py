"""The member's cards and their QR codes."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide
from litestar.params import PathParameter
from litestar.status_codes import HTTP_200_OK

from backend.api.guards import (
    SHOPPER_DEPENDENCIES,
    CurrentMember,
    Now,
    Secret,
    Shopper,
    Valkey,
    client_ip,
    provide_valkey,
    shopper_guard,
)
from loyalty_core.members import cards

CardNumber = Annotated[str, PathParameter(name="number", min_length=1, max_length=32, pattern=r"^[0-9A-Za-z-]+$")]


class CardController(Controller):
    path = "/cards"
    tags = ["shopper cards"]
    guards = [shopper_guard]
    dependencies = {**SHOPPER_DEPENDENCIES, "valkey": Provide(provide_valkey, sync_to_thread=False)}

    @get("/")
    async def list_cards(self, member: CurrentMember) -> list[cards.CardOut]:
        """Every card of the membership, replaced and blocked ones included (history stays)."""
        return await cards.cards(member)

    @post("/", status_code=HTTP_200_OK)
    async def bind(self, request: Request, member: CurrentMember, data: cards.CardBind, now: Now,
                   valkey: Valkey) -> cards.CardOut:
        """Bind a plastic card handed over in a shop with the secret printed on it; its anonymous points move to
        the member. A card of another member -> 409 `card-taken`; a wrong secret -> 422 `card-secret-invalid`."""
        return await cards.bind_card(member, data, now, valkey, client_ip(request))

    @post("/{number:str}/confirm", status_code=HTTP_200_OK)
    async def confirm(self, member: CurrentMember, number: CardNumber) -> cards.CardOut:
        """This card, linked to you at a till or by the call centre (`linked_via`, `linked_at`), is yours: it may
        pay with points from now on. If you were not handed it, block it instead."""
        return await cards.confirm_card(member, number)

    @post("/{number:str}/block", status_code=HTTP_200_OK)
    async def block(self, member: CurrentMember, number: CardNumber, data: cards.CardBlock) -> cards.CardOut:
        return await cards.block_card(member, number, data)

    @post("/{number:str}/replace", status_code=HTTP_200_OK)
    async def replace(self, member: CurrentMember, number: CardNumber, data: cards.CardReplace, now: Now) -> cards.CardOut:
        """A new virtual card on the same membership; the old one becomes `replaced`."""
        return await cards.replace_card(member, number, data, now)

    @get("/{number:str}/qr.svg", media_type="image/svg+xml")
    async def qr_svg(self, shopper: Shopper, number: CardNumber) -> Response[str]:
        """Static QR of the card number (what wallet passes and plastic cards carry)."""
        from wallet_passes.qr import card_qr_svg

        payload = await cards.active_card_of_customer(shopper.customer_id, number)
        return Response(card_qr_svg(payload), media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})

    @get("/{number:str}/qr.png", media_type="image/png")
    async def qr_png(self, shopper: Shopper, number: CardNumber) -> Response[bytes]:
        from wallet_passes.qr import card_qr_png

        payload = await cards.active_card_of_customer(shopper.customer_id, number)
        return Response(card_qr_png(payload), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @get("/{number:str}/qr-token")
    async def qr_token(self, shopper: Shopper, number: CardNumber, secret: Secret, now: Now) -> cards.QrToken:
        """A signed token for the app screen; it turns every 30 s, so a screenshot stops working."""
        return cards.qr_token(await cards.active_card_of_customer(shopper.customer_id, number), secret, now)
