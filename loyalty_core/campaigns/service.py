"""The marketer's use-cases: create a campaign (a draft), launch it (scheduled), cancel it, read it.

A campaign's content is fixed once it is launched: what was approved is what goes out. The job
`campaigns` (backend/jobs.py) queues a scheduled campaign when its time comes (queueing.py).
"""

from __future__ import annotations

import datetime as dt

import asyncpg
import msgspec

from loyalty_core.campaigns.model import CHANNELS, CampaignIn, CampaignOut, FrequencyCap, Messages
from loyalty_core.errors import Conflict, NotFound, ValidationFailed
from loyalty_core.members.identity import resolve_program
from loyalty_core.office import audit
from loyalty_core.piccolo_conf import DB
from loyalty_core.tables import Campaign

_SELECT = (
    "SELECT c.*, p.code AS program_code FROM campaign c JOIN program p ON p.id = c.program "
)


def _out(row: dict) -> CampaignOut:
    messages = row["messages"]
    if isinstance(messages, (str, bytes)):
        messages = msgspec.json.decode(messages)
    cap = FrequencyCap(messages=row["cap_messages"], days=row["cap_days"]) if row["cap_messages"] else None
    return CampaignOut(
        code=row["code"], name=row["name"], program=row["program_code"], segment=row["segment"] or None,
        trigger=row["trigger"],
        status=row["status"], channels=list(row["channels"]), messages=msgspec.convert(messages, Messages),
        send_at=row["send_at"], coupon_series=row["coupon_series"], bonus_points=row["bonus_points"],
        bonus_valid_days=row["bonus_valid_days"], holdout_percent=row["holdout_bp"] / 100, frequency_cap=cap,
        uplift_days=row["uplift_days"], created_by=row["created_by"], created_at=row["created_at"],
        launched_by=row["launched_by"], queued_at=row["queued_at"], targeted=row["targeted"],
        control=row["control"], capped=row["capped"],
    )


async def _row(code: str, *, lock: bool = False) -> dict:
    rows = await Campaign.raw(_SELECT + "WHERE c.code = {}" + (" FOR UPDATE OF c" if lock else ""), code)
    if not rows:
        raise NotFound(f"campaign {code!r} does not exist")
    return rows[0]


async def campaign(code: str) -> CampaignOut:
    return _out(await _row(code))


async def campaigns(program: str | None) -> list[CampaignOut]:
    rows = await Campaign.raw(_SELECT + "WHERE ({}::varchar IS NULL OR p.code = {}) ORDER BY c.id DESC LIMIT 500",
                              program, program)
    return [_out(r) for r in rows]


async def _check(spec: CampaignIn, program_id: int) -> list[str]:
    """The channel order, after refusing what cannot go out as asked (422, nothing written)."""
    channels = list(dict.fromkeys(spec.channels or CHANNELS))
    texts = {c: getattr(spec.messages, c) for c in CHANNELS}
    channels = [c for c in channels if texts[c]] if spec.channels is None else channels
    missing = [c for c in channels if not texts[c]]
    if missing:
        raise ValidationFailed(f"messages: no text for the channel(s) {', '.join(missing)}")
    if not channels:
        raise ValidationFailed("messages: give a text for at least one channel (push, email, sms)")
    if spec.coupon_series is not None:
        rows = await Campaign.raw("SELECT personal, program FROM coupon_series WHERE code = {}", spec.coupon_series)
        if not rows or rows[0]["program"] != program_id:
            raise ValidationFailed(f"coupon_series: {spec.coupon_series!r} is not a series of this program")
        if not rows[0]["personal"]:
            raise ValidationFailed("coupon_series: a campaign gives personal codes; this series is one shared code")
    if spec.segment is None:
        if spec.trigger is None:
            raise ValidationFailed("segment: a campaign sent once needs a segment (a triggered one may go to everyone)")
        return channels
    # segments live in the table `segment` (loyalty_core/marketing); a code nobody defined targets nobody
    known = await Campaign.raw(
        "SELECT to_regclass('segment') IS NULL AS no_table")
    if not known[0]["no_table"]:
        found = await Campaign.raw("SELECT 1 FROM segment WHERE program = {} AND code = {} AND status = 'active'",
                                   program_id, spec.segment)
        if not found:
            raise ValidationFailed(f"segment: {spec.segment!r} is not an active segment of this program")
    return channels


async def create_campaign(spec: CampaignIn, now: dt.datetime, *, operator: str, origin: str = "") -> CampaignOut:
    program = await resolve_program(spec.program)
    channels = await _check(spec, program.id)
    if spec.send_at < now - dt.timedelta(minutes=5):
        raise ValidationFailed("send_at: is in the past")
    cap = spec.frequency_cap
    try:
        async with DB.transaction():
            await Campaign.insert(Campaign(
                program=program.id, code=spec.code, name=spec.name, segment=spec.segment or "", trigger=spec.trigger,
                messages=msgspec.json.encode(spec.messages).decode(), channels=channels,
                coupon_series=spec.coupon_series, bonus_points=spec.bonus_points,
                bonus_valid_days=spec.bonus_valid_days, send_at=spec.send_at,
                holdout_bp=round(spec.holdout_percent * 100), cap_messages=cap.messages if cap else 0,
                cap_days=cap.days if cap else 7, uplift_days=spec.uplift_days, status="draft", created_by=operator,
            ))
            await audit.record(operator, "campaign.create", f"campaign:{spec.code}", {},
                               {"segment": spec.segment, "trigger": spec.trigger,
                                "send_at": spec.send_at.isoformat()}, "", now, origin)
    except asyncpg.UniqueViolationError:
        raise Conflict(f"campaign {spec.code!r} already exists") from None
    return await campaign(spec.code)


class NotEditable(Conflict):
    slug, status, title = "campaign-not-editable", 409, "This campaign cannot be changed now"


async def update_campaign(code: str, spec: CampaignIn, now: dt.datetime, *, operator: str,
                          origin: str = "") -> CampaignOut:
    """Change a draft (the same checks as creating it); a launched, cancelled or proposed campaign is fixed."""
    if spec.code != code:
        raise ValidationFailed("code: a campaign's code cannot change")
    program = await resolve_program(spec.program)
    cap = spec.frequency_cap
    async with DB.transaction():
        row = await _row(code, lock=True)  # first: a launched campaign is refused whatever the change says
        if row["status"] != "draft":
            raise NotEditable(f"campaign {code!r} is {row['status']}: only a draft can be changed")
        waiting = await Campaign.raw("SELECT 1 FROM pending_approval WHERE kind = 'campaign.launch' AND subject = {} "
                                     "AND status = 'pending'", f"campaign:{code}")
        if waiting:
            raise NotEditable(f"campaign {code!r} waits for approval to launch: withdraw it to change it")
        if row["program"] != program.id:
            raise ValidationFailed("program: a campaign stays in its program")
        channels = await _check(spec, program.id)
        if spec.send_at < now - dt.timedelta(minutes=5):
            raise ValidationFailed("send_at: is in the past")
        await Campaign.raw(
            "UPDATE campaign SET name = {}, segment = {}, trigger = {}, messages = {}::jsonb, channels = {}, "
            "coupon_series = {}, bonus_points = {}, bonus_valid_days = {}, send_at = {}, holdout_bp = {}, "
            "cap_messages = {}, cap_days = {}, uplift_days = {} WHERE id = {}",
            spec.name, spec.segment or "", spec.trigger, msgspec.json.encode(spec.messages).decode(), channels,
            spec.coupon_series, spec.bonus_points, spec.bonus_valid_days, spec.send_at,
            round(spec.holdout_percent * 100), cap.messages if cap else 0, cap.days if cap else 7, spec.uplift_days,
            row["id"])
        await audit.record(operator, "campaign.update", f"campaign:{code}",
                           {"segment": row["segment"], "bonus_points": row["bonus_points"],
                            "send_at": row["send_at"].isoformat()},
                           {"segment": spec.segment, "bonus_points": spec.bonus_points,
                            "send_at": spec.send_at.isoformat()}, "", now, origin)
    return await campaign(code)


async def launch(code: str, now: dt.datetime, *, operator: str, origin: str = "") -> CampaignOut:
    """Approve a draft: it is queued at its send time by the worker's job (at once if that time has come); a
    triggered one is queued, from then on, for each member its event happens to."""
    async with DB.transaction():
        row = await _row(code, lock=True)
        if row["status"] != "draft":
            raise Conflict(f"campaign {code!r} is {row['status']}: only a draft can be launched")
        await Campaign.raw("UPDATE campaign SET status = 'scheduled', launched_by = {} WHERE id = {}",
                           operator, row["id"])
        await audit.record(operator, "campaign.launch", f"campaign:{code}", {"status": "draft"},
                           {"status": "scheduled"}, "", now, origin)
    return await campaign(code)


async def cancel(code: str, now: dt.datetime, *, operator: str, origin: str = "") -> CampaignOut:
    """Stop a campaign: messages not yet handed to a provider are not sent."""
    async with DB.transaction():
        row = await _row(code, lock=True)
        if row["status"] == "cancelled":
            return _out(row)
        await Campaign.raw("UPDATE campaign SET status = 'cancelled' WHERE id = {}", row["id"])
        await Campaign.raw(
            "UPDATE campaign_message SET status = 'skipped', last_error = 'campaign cancelled' "
            "WHERE campaign = {} AND status = 'pending'", row["id"])
        await audit.record(operator, "campaign.cancel", f"campaign:{code}", {"status": row["status"]},
                           {"status": "cancelled"}, "", now, origin)
    return await campaign(code)
