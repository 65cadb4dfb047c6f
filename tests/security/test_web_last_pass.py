"""The website's boundaries added by issue 16's last pass, without JavaScript (httpx with a cookie jar):

- "sign out on every device" needs the form's token, ends nothing when its URL is opened directly, and ends every
  login of this shopper only (another shopper's session stays);
- the tier-up banner is dismissed only by its own shopper, with the form's token;
- an operator's note reaches the shopper only as a quoted note (escaped), never as page markup.
"""

from __future__ import annotations

import pytest

from tests.factories import Shop
from tests.web.browser import NoJsBrowser

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_sign_out_everywhere_needs_the_token_and_ends_only_this_shoppers_logins(server: str, shop: Shop) -> None:
    async with NoJsBrowser(server, program=shop.program_code) as phone, \
            NoJsBrowser(server, program=shop.program_code) as stranger:
        await phone.sign_in()
        async with NoJsBrowser(server, program=shop.program_code, to=phone.to) as laptop:
            await laptop.sign_in()
            await stranger.sign_in()
            # a planted form or link: no token, or the URL opened directly
            forged = await phone.http.post("/logout/everywhere", data={})
            assert forged.status_code == 403
            opened = await phone.open("/logout/everywhere")
            assert opened.status_code == 303 and opened.headers["location"] == "/profile"
            for browser in (phone, laptop, stranger):
                assert (await browser.open("/")).status_code == 200  # nobody was signed out

            done = await phone.submit("/logout/everywhere", {}, page="/profile")
            assert done.status_code == 303 and done.headers["location"] == "/login?bye=1"
            for browser in (phone, laptop):
                gone = await browser.open("/")
                assert gone.status_code == 303 and gone.headers["location"].startswith("/login?next="), browser.to
            assert (await stranger.open("/")).status_code == 200  # another shopper's session stays


async def test_the_tier_up_banner_is_dismissed_only_with_the_token_and_only_for_its_shopper(server: str,
                                                                                          shop: Shop) -> None:
    from loyalty_core.members import tiers
    from loyalty_core.tables import Membership
    import datetime as dt

    async with NoJsBrowser(server, program=shop.program_code) as anna, \
            NoJsBrowser(server, program=shop.program_code) as boris:
        for browser in (anna, boris):
            await browser.sign_in()
            row = await Membership.select(Membership.id, Membership.customer).order_by(Membership.id, ascending=False).first()
            now = dt.datetime.now(dt.UTC)
            await Membership.update({Membership.carried_spend: 3_500_000, Membership.carried_until: now + dt.timedelta(days=400)}
                                    ).where(Membership.id == row["id"])
            reached = await tiers.recompute_tier(row["id"], shop.program_id, now, customer_id=row["customer"])
            assert reached is not None and reached.up
        anna_home, boris_home = (await anna.open("/")).text, (await boris.open("/")).text
        assert 'data-testid="tier-up-banner"' in anna_home and 'data-testid="tier-up-banner"' in boris_home
        boris_id = boris_home.split("/banners/tier-up/")[1].split("/")[0]
        # without the form's token, and the URL opened directly: nothing hidden
        assert (await boris.http.post(f"/banners/tier-up/{boris_id}/dismiss", data={})).status_code == 403
        assert (await boris.open(f"/banners/tier-up/{boris_id}/dismiss")).status_code == 303
        # Anna posts Boris's message id with her own token: her key, Boris's banner stays
        done = await anna.submit(f"/banners/tier-up/{boris_id}/dismiss", {}, page="/")
        assert done.status_code == 303
        assert 'data-testid="tier-up-banner"' in (await boris.open("/")).text
        assert (await anna.http.post("/banners/tier-up/0/dismiss", data={"_csrf": "x"})).status_code in (400, 403, 404)
        # Boris dismisses his own: gone for him
        assert (await boris.submit(f"/banners/tier-up/{boris_id}/dismiss", {}, page="/")).status_code == 303
        assert 'data-testid="tier-up-banner"' not in (await boris.open("/")).text


async def test_an_operators_note_is_quoted_text_never_markup(server: str, shop: Shop) -> None:
    import datetime as dt

    from loyalty_core.adjustments.adjustments import AdjustmentIn, adjust_points
    from loyalty_core.office import reasons
    from loyalty_core.tables import Membership

    async with NoJsBrowser(server, program=shop.program_code) as shopper:
        await shopper.sign_in()
        row = await Membership.select(Membership.id).order_by(Membership.id, ascending=False).first()
        planted = '<a href="https://evil.example/">claim your prize</a><script>alert(1)</script>'
        await adjust_points(row["id"], AdjustmentIn(points=5, reason=reasons.compose("Goodwill", planted, reasons.ADJUST_REASONS)),
                            dt.datetime.now(dt.UTC), operator="support-1")
        html = (await shopper.open("/history")).text
        assert "evil.example/\">" not in html and "<script>alert" not in html
        assert "&lt;a href=&#34;https://evil.example/&#34;&gt;" in html or "&lt;a href=&quot;https://evil.example/&quot;&gt;" in html
        assert 'data-testid="operator-note"' in html
