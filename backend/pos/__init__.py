"""The till API: /pos/v1, every handler behind the till-key guard."""

from litestar import Router

from backend.pos.auth import till_guard
from backend.pos.confirmations import ROUTES as confirmation_routes
from backend.pos.controllers import TillController
from backend.pos.members import ROUTES as member_routes

till_router = Router(path="/pos/v1", guards=[till_guard], route_handlers=[TillController, *member_routes, *confirmation_routes], tags=["till"])

ROUTES: list = [till_router]
