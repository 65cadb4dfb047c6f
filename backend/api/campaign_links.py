"""The links in a campaign's e-mail, public (no login): unsubscribe, and the open pixel; and the app's report
that a campaign push was opened (the shopper's token, their own messages only).

The token in the path is the proof (loyalty_core.campaigns.model: an HMAC of the customer and channel under
the app's secret); a forged or altered token is refused with 404 and changes nothing. GET shows a page with a
button (mail scanners that follow links must not unsubscribe anyone); POST unsubscribes, which is also what a
mail app's one-click button sends (RFC 8058, `List-Unsubscribe=One-Click`).
"""

from __future__ import annotations

import base64
import datetime as dt
import html

from typing import Annotated

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from backend.api.guards import SHOPPER_DEPENDENCIES, Now, Shopper, shopper_guard

from loyalty_core.campaigns import links, model
from loyalty_core.errors import NotFound

_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_CHANNEL = {"email": "e-mail", "sms": "SMS", "push": "push"}


def _secret(request: Request) -> str:
    return request.app.state.settings.security.secret_key


def _page(title: str, text: str, form: bool = False) -> Response[str]:
    button = ('<form method="post"><button type="submit">Отписаться / Unsubscribe</button></form>' if form else "")
    body = (f"<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>")
    return Response(body, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


class CampaignLinksController(Controller):
    path = "/u"
    tags = ["shopper links"]

    @get("/{token:str}", summary="The unsubscribe page of an e-mail's link", include_in_schema=False)
    async def confirm(self, request: Request, token: str) -> Response[str]:
        found = model.read_unsubscribe_token(_secret(request), token)
        if found is None:
            raise NotFound("This link is not valid")
        return _page("Отписка от рассылки", f"Больше не присылать рекламные сообщения по каналу {_CHANNEL[found[1]]}?",
                     form=True)

    @post("/{token:str}", status_code=HTTP_200_OK, summary="Unsubscribe (the page's button, a mail app's one click)",
          include_in_schema=False)
    async def unsubscribe(self, request: Request, token: str) -> Response[str]:
        found = model.read_unsubscribe_token(_secret(request), token)
        if found is None:
            raise NotFound("This link is not valid")
        await links.unsubscribe(found[0], found[1], dt.datetime.now(dt.UTC))
        return _page("Вы отписаны", "Рекламные сообщения больше не придут. Вернуть подписку можно в приложении "
                                    "или в личном кабинете.")

    @get("/open/{token:str}", summary="An e-mail's open pixel", include_in_schema=False)
    async def open_pixel(self, request: Request, token: str) -> Response[bytes]:
        message = model.read_open_token(_secret(request), token.removesuffix(".gif"))
        if message is not None:
            await links.opened(message, dt.datetime.now(dt.UTC))
        return Response(_PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


class CampaignMessagesController(Controller):
    """The app reports that the shopper opened a campaign push (its data carries `message`): the report's opens."""

    path = "/api/v1/campaign-messages"
    tags = ["shopper campaigns"]
    guards = [shopper_guard]
    dependencies = SHOPPER_DEPENDENCIES

    @post("/{message_id:int}/opened", status_code=HTTP_204_NO_CONTENT, summary="A campaign push was opened")
    async def opened(self, shopper: Shopper, now: Now,
                     message_id: Annotated[int, PathParameter(name="message_id", ge=1, le=2**62)]) -> None:
        await links.opened_in_app(message_id, shopper.customer_id, now)


ROUTES = [CampaignLinksController, CampaignMessagesController]
