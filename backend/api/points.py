"""Balance, bonus history, purchases, tier, favourite categories, coupons and referral of the member."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, put
from litestar.params import PathParameter, QueryParameter

from backend.api.guards import SHOPPER_DEPENDENCIES, CurrentMember, Now, shopper_guard
from loyalty_core.ledger.ops import BalanceOut
from loyalty_core.members import extras
from loyalty_core.members import points

Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=100)]
Cursor = Annotated[str | None, QueryParameter(name="cursor", max_length=64)]


class PointsController(Controller):
    path = "/"
    tags = ["shopper points"]
    guards = [shopper_guard]
    dependencies = SHOPPER_DEPENDENCIES

    @get("/balance")
    async def balance(self, member: CurrentMember, now: Now) -> BalanceOut:
        """Active and pending points, when pending ones activate and when active ones burn."""
        return await points.balance(member, now)

    @get("/history")
    async def history(self, member: CurrentMember, limit: Limit = 20, cursor: Cursor = None) -> points.HistoryPage:
        return await points.history(member, cursor, limit)

    @get("/purchases")
    async def purchases(self, member: CurrentMember, limit: Limit = 20, cursor: Cursor = None) -> points.PurchasePage:
        return await points.purchases(member, cursor, limit)

    @get("/purchases/{sale_id:int}")
    async def purchase(self, member: CurrentMember, sale_id: Annotated[int, PathParameter(name="sale_id", ge=1, le=2**31 - 1)]) -> points.Purchase:
        return await points.purchase(member, sale_id)

    @get("/tier")
    async def tier(self, member: CurrentMember) -> points.TierProgress:
        return await points.tier_progress(member)

    @get("/favourite-categories")
    async def favourites(self, member: CurrentMember, now: Now) -> extras.Favourites:
        return await extras.favourites(member, now)

    @put("/favourite-categories")
    async def choose_favourites(self, member: CurrentMember, data: extras.FavouritesIn, now: Now) -> extras.Favourites:
        """Choose this month's categories (once per calendar month)."""
        return await extras.choose_favourites(member, data, now)

    @get("/offers")
    async def offers(self, member: CurrentMember, now: Now) -> list[extras.Offer]:
        """Promotions of the program this member can get now (tier, segments and dates match)."""
        return await extras.offers(member, now)

    @get("/coupons")
    async def coupons(self, member: CurrentMember) -> list[extras.CouponOut]:
        return await extras.coupons(member)

    @get("/referral")
    async def referral(self, member: CurrentMember) -> extras.Referral:
        return await extras.referral(member)
