"""The operator API: /admin/v1 (operator keys with roles, see backend.admin.auth)."""

from backend.admin.campaigns import ROUTES as CAMPAIGN_ROUTES
from backend.admin.catalog import ROUTES as CATALOG_ROUTES
from backend.admin.coupons import ROUTES as COUPON_ROUTES
from backend.admin.imports import ROUTES as IMPORT_ROUTES
from backend.admin.keys import ROUTES as KEY_ROUTES
from backend.admin.members import ROUTES as MEMBER_ROUTES
from backend.admin.points import ROUTES as POINTS_ROUTES
from backend.admin.rules import ROUTES as RULES_ROUTES
from backend.admin.segments import ROUTES as SEGMENT_ROUTES
from backend.admin.simulate import ROUTES as SIMULATE_ROUTES

ROUTES: list = [*MEMBER_ROUTES, *RULES_ROUTES, *SIMULATE_ROUTES, *COUPON_ROUTES, *POINTS_ROUTES, *CATALOG_ROUTES, *KEY_ROUTES,
                *SEGMENT_ROUTES, *IMPORT_ROUTES, *CAMPAIGN_ROUTES]
