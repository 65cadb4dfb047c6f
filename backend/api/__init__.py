"""The shopper API /api/v1 for the mobile app and the e-shop (JWT bearer; see docs/identity.md)."""

from __future__ import annotations

from litestar import Router

from backend.api.auth import AuthController
from backend.api.campaign_links import ROUTES as CAMPAIGN_LINK_ROUTES
from backend.api.cards import CardController
from backend.api.oidc import OidcController
from backend.api.points import PointsController
from backend.api.profile import ProfileController

api_router = Router(
    path="/api/v1",
    route_handlers=[AuthController, OidcController, ProfileController, CardController, PointsController],
)

ROUTES: list = [api_router, *CAMPAIGN_LINK_ROUTES]  # the e-mails' links live outside /api/v1: /u/...
