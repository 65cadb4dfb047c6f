"""The back office (Jinja2 + htmx, ru/en), mounted at /office: staff sign-in, support, audit, four eyes.
See docs/back-office.md."""

from __future__ import annotations

from typing import Any


def _router() -> Any:
    from litestar import Router
    from litestar.datastructures import CacheControlHeader
    from litestar.static_files import create_static_files_router

    from back_office.auth import OfficeSignInController
    from back_office.campaigns import CampaignsController
    from back_office.coupons import CouponsController
    from back_office.pages import OfficePagesController
    from back_office.rules import RulesController
    from back_office.segments import SegmentsController
    from back_office.member_care import MemberCareController
    from back_office.reports import ReportsController
    from back_office.staff_admin import StaffController
    from back_office.support import SupportController
    from back_office.web import EXCEPTION_HANDLERS, STATIC_DIR, check_csrf

    static = create_static_files_router(
        path="/office/static", directories=[STATIC_DIR], include_in_schema=False,
        cache_control=CacheControlHeader(max_age=31_536_000, public=True),  # URLs carry a content hash
    )
    # CSRF and the HTML error pages on this router only; every handler has its role guard
    return Router(path="/", route_handlers=[OfficeSignInController, OfficePagesController, SupportController, RulesController,
                                                ReportsController, SegmentsController, CampaignsController, CouponsController,
                                                MemberCareController,
                                                StaffController, static],
                  before_request=check_csrf, exception_handlers=EXCEPTION_HANDLERS, include_in_schema=False)


ROUTES: list = [_router()]
