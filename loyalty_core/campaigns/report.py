"""A campaign's figures (a read: plain SQL into Structs): what happened to its messages, its coupons and points,
and the spend of the targeted shoppers against the control group over the `uplift_days` after it was queued.

Spend is what shoppers paid with money on confirmed sales (`sale.to_pay`; cancelled sales excluded, returns
not subtracted). The targeted group is everyone drawn outside the holdout and not capped when queued, whether
the message reached them or not (intention to treat), so the comparison with the control group stays fair.
"""

from __future__ import annotations

import datetime as dt

from loyalty_core import db
from loyalty_core.campaigns.model import CampaignReport, ChannelCounts, GroupSpend
from loyalty_core.errors import NotFound

_MESSAGES = ("SELECT status, channel, count(*) AS n, count(opened_at) AS opened FROM campaign_message "
             "WHERE campaign = $1 GROUP BY status, channel")

_SPEND = """
WITH g AS (SELECT membership, control FROM campaign_member WHERE campaign = $1 AND NOT capped),
per AS (SELECT g.control, g.membership, COALESCE(sum(s.to_pay), 0) AS spend, count(s.id) AS sales
        FROM g LEFT JOIN sale s ON s.membership = g.membership AND s.status = 'confirmed'
             AND s.occurred_at >= $2 AND s.occurred_at < $3
        GROUP BY g.control, g.membership)
SELECT control, count(*) AS members, count(*) FILTER (WHERE sales > 0) AS buyers, COALESCE(sum(spend), 0) AS spend
FROM per GROUP BY control
"""


def _group(row: dict | None) -> GroupSpend:
    if row is None or not row["members"]:
        return GroupSpend(members=0, buyers=0, spend=0, spend_per_member=0)
    return GroupSpend(members=row["members"], buyers=row["buyers"], spend=int(row["spend"]),
                      spend_per_member=round(int(row["spend"]) / row["members"]))


async def report(code: str, now: dt.datetime) -> CampaignReport:
    rows = await db.fetch("SELECT * FROM campaign WHERE code = $1", code)
    if not rows:
        raise NotFound(f"campaign {code!r} does not exist")
    c = rows[0]
    counts: dict[str, int] = {}
    by_channel: dict[str, ChannelCounts] = {}
    opened = 0
    for r in await db.fetch(_MESSAGES, c["id"]):
        counts[r["status"]] = counts.get(r["status"], 0) + r["n"]
        opened += r["opened"]
        if r["channel"]:
            ch = by_channel.setdefault(r["channel"], ChannelCounts())
            ch.opened += r["opened"]
            if r["status"] in ("sent", "delivered"):
                ch.sent += r["n"]
            if r["status"] == "delivered":
                ch.delivered += r["n"]
            if r["status"] == "failed":
                ch.failed += r["n"]
    coupons = await db.fetch(
        "SELECT count(cm.coupon_code) AS issued, count(*) FILTER (WHERE cp.uses > 0) AS redeemed "
        "FROM campaign_member cm LEFT JOIN coupon cp ON cp.code = cm.coupon_code "
        "WHERE cm.campaign = $1 AND cm.coupon_code IS NOT NULL", c["id"])
    # bonus points go through the operator adjustment, each under the key "campaign:<code>:<membership>"
    granted = (await db.fetch(
        "SELECT count(*) AS n FROM idempotency_record WHERE scope = 'operator:adjust' AND key LIKE $1",
        f"campaign:{c['code']}:%"))[0]["n"]
    start = c["queued_at"]
    end = start + dt.timedelta(days=c["uplift_days"]) if start else None
    groups: dict[bool, dict] = {}
    if start is not None:
        groups = {r["control"]: dict(r) for r in await db.fetch(_SPEND, c["id"], start, min(end, now))}
    targeted, control = _group(groups.get(False)), _group(groups.get(True))
    uplift = targeted.spend_per_member - control.spend_per_member
    percent = (round(100 * uplift / control.spend_per_member, 1) if control.members and control.spend_per_member
               else None)
    sent = counts.get("sent", 0) + counts.get("delivered", 0)
    return CampaignReport(
        code=c["code"], status=c["status"], targeted=c["targeted"], control=c["control"],
        capped_when_queued=c["capped"], queued=sum(counts.values()),
        waiting=counts.get("pending", 0) + counts.get("sending", 0), sent=sent, delivered=counts.get("delivered", 0),
        failed=counts.get("failed", 0), opened=opened, skipped=counts.get("skipped", 0), capped=counts.get("capped", 0),
        unknown=counts.get("unknown", 0), by_channel=by_channel, coupons_issued=coupons[0]["issued"],
        coupons_redeemed=coupons[0]["redeemed"], bonus_points_granted=granted * c["bonus_points"],
        window_start=start, window_end=end, targeted_spend=targeted, control_spend=control,
        uplift_per_member=uplift, uplift_percent=percent,
    )
