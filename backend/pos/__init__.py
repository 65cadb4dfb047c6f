"""The till API: /pos/v1."""

from backend.pos.controllers import TillController

ROUTES: list = [TillController]
