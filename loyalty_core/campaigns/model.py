"""Campaigns as data (pure): what a marketer sends, to whom, and the decisions that need no I/O.

No clock, no database: the holdout draw, the channel a shopper is reached on, the text with its values
filled in, and the signed links (unsubscribe, the e-mail's open pixel) are plain functions.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Channel = Literal["push", "email", "sms"]
# the member events that can trigger a campaign (loyalty_core/marketing/events.py writes member_event)
Trigger = Literal["first_purchase", "referral_referrer", "birthday", "inactive", "tier_at_risk"]
CHANNELS: tuple[Channel, ...] = ("push", "email", "sms")  # the default order: the cheapest first
Code = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Language = Annotated[str, Meta(min_length=2, max_length=8, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")]
# one line: a header (the e-mail's Subject, the push title) never carries a line break or another control character
OneLine = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Body = Annotated[str, Meta(min_length=1, max_length=10_000)]
SmsBody = Annotated[str, Meta(min_length=1, max_length=670)]  # SMS.ru refuses more than 10 parts of 67 in Cyrillic


class PushText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    title: OneLine
    body: Annotated[str, Meta(min_length=1, max_length=1000)]


class EmailText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    subject: OneLine
    body: Body  # plain text; the unsubscribe link is added below it


class SmsText(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    body: SmsBody


class Messages(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Texts per channel, per language (the shopper's `locale`; Russian when theirs is missing)."""

    push: dict[Language, PushText] | None = None
    email: dict[Language, EmailText] | None = None
    sms: dict[Language, SmsText] | None = None


class FrequencyCap(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """At most `messages` campaign messages per shopper within `days`, counted across every campaign."""

    messages: Annotated[int, Meta(ge=1, le=100)]
    days: Annotated[int, Meta(ge=1, le=365)]


class CampaignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    messages: Messages
    send_at: Annotated[dt.datetime, Meta(tz=True)]  # once: when it goes out; triggered: from when events count
    segment: Code | None = None  # required for a campaign sent once; a triggered one may narrow its events to it
    trigger: Trigger | None = None  # sent to each member the event happens to, once per member
    channels: Annotated[list[Channel], Meta(min_length=1, max_length=3)] | None = None  # default: push, email, sms
    coupon_series: Code | None = None  # a personal series: each shopper messaged gets a code of their own
    bonus_points: Annotated[int, Meta(ge=0, le=100_000)] = 0
    bonus_valid_days: Annotated[int, Meta(ge=0, le=3650)] = 0  # 0: the program's expiry period
    holdout_percent: Annotated[float, Meta(ge=0, le=50)] = 0  # share of the targeted kept as the control group
    frequency_cap: FrequencyCap | None = None
    uplift_days: Annotated[int, Meta(ge=1, le=180)] = 14
    program: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class CampaignOut(msgspec.Struct, kw_only=True):
    code: str
    name: str
    program: str
    segment: str | None
    trigger: str | None
    status: Literal["draft", "scheduled", "queued", "active", "cancelled"]
    channels: list[str]
    messages: Messages
    send_at: dt.datetime
    coupon_series: str | None
    bonus_points: int
    bonus_valid_days: int
    holdout_percent: float
    frequency_cap: FrequencyCap | None
    uplift_days: int
    created_by: str
    created_at: dt.datetime
    launched_by: str
    queued_at: dt.datetime | None
    targeted: int  # members in the segment when it was queued (control group included)
    control: int
    capped: int  # over the frequency cap when queued


class ChannelCounts(msgspec.Struct, kw_only=True):
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    opened: int = 0


class GroupSpend(msgspec.Struct, kw_only=True):
    members: int
    buyers: int  # members with at least one purchase in the window
    spend: int  # minor units, paid with money, returns' cancels excluded
    spend_per_member: int  # minor units


class CampaignReport(msgspec.Struct, kw_only=True):
    code: str
    status: str
    targeted: int
    control: int
    capped_when_queued: int
    queued: int  # messages made (targeted less control and capped)
    waiting: int  # not yet handled (pending, in flight, deferred to after quiet hours)
    sent: int  # handed to a provider (delivered included)
    # the provider confirmed: push accepted by APNs/FCM, SMS with SMS.ru's status 103 (e-mail: not known yet)
    delivered: int
    failed: int
    opened: int  # e-mails whose pixel was loaded
    skipped: int  # no consent, no address or device, unsubscribed, left the program
    capped: int  # over the frequency cap when sending
    unknown: int  # the worker stopped after calling the provider: never sent again
    by_channel: dict[str, ChannelCounts]
    coupons_issued: int
    coupons_redeemed: int
    bonus_points_granted: int
    window_start: dt.datetime | None
    window_end: dt.datetime | None
    targeted_spend: GroupSpend
    control_spend: GroupSpend
    uplift_per_member: int  # minor units: targeted less control
    uplift_percent: float | None  # of the control's spend per member; None without a control group


# --- pure decisions -------------------------------------------------------------------------------


def holdout_bucket(campaign_code: str, membership_id: int) -> int:
    """0..9999, the same for the same campaign and member wherever it is computed (SQL does the same with md5)."""
    digest = hashlib.md5(f"{campaign_code}:{membership_id}".encode()).hexdigest()  # noqa: S324 (a draw, not a secret)
    return int(digest[:8], 16) % 10_000


HOLDOUT_SQL = "(('x' || substr(md5({code} || ':' || {member}), 1, 8))::bit(32)::bigint % 10000)"


class Reach(msgspec.Struct, frozen=True, kw_only=True):
    """What we know of one shopper when their message goes out."""

    email: str | None
    phone: str | None
    push_devices: int
    consents: dict[str, bool]  # channel -> the latest consent; a channel never asked is not consented


def choose_channel(order: list[str], available: set[str], reach: Reach) -> str | None:
    """The first channel in the campaign's order that has a text, the shopper's consent and an address."""
    for channel in order:
        if channel not in available or not reach.consents.get(channel, False):
            continue
        if channel == "email" and reach.email or channel == "sms" and reach.phone or \
                channel == "push" and reach.push_devices:
            return channel
    return None


def pick_language(texts: dict[str, object], locale: str) -> str:
    if locale in texts:
        return locale
    if locale.split("-")[0] in texts:
        return locale.split("-")[0]
    return "ru" if "ru" in texts else sorted(texts)[0]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_FIELD = re.compile(r"\{(name|coupon|points)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """`{name}`, `{coupon}` and `{points}` replaced; other braces stay as typed. Values lose control characters,
    so a shopper's name can never add a header line to an e-mail."""
    clean = {k: _CONTROL.sub(" ", v).strip() for k, v in values.items()}
    return _FIELD.sub(lambda m: clean.get(m[1], ""), template)


# --- signed links -------------------------------------------------------------------------------
# A link carries what it acts on and an HMAC of it under the app's secret: nobody can make one for
# another shopper or change the one they got; a link is checked in constant time and has no state to steal.

_UNSUBSCRIBE = re.compile(r"^u1\.([1-9][0-9]{0,18})\.(email|sms|push)\.([A-Za-z0-9_-]{43})$")
_OPEN = re.compile(r"^o1\.([1-9][0-9]{0,18})\.([A-Za-z0-9_-]{43})$")


def _mac(secret: str, purpose: str, text: str) -> str:
    digest = hmac.new(secret.encode(), f"kopilka-campaign-{purpose}:{text}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(secret: str, customer_id: int, channel: str) -> str:
    return f"u1.{customer_id}.{channel}.{_mac(secret, 'unsubscribe', f'{customer_id}:{channel}')}"


def read_unsubscribe_token(secret: str, token: str) -> tuple[int, str] | None:
    """(customer id, channel) of a genuine token; None for anything else."""
    match = _UNSUBSCRIBE.fullmatch(token)
    if match is None:
        return None
    customer, channel, mac = int(match[1]), match[2], match[3]
    if not hmac.compare_digest(mac, _mac(secret, "unsubscribe", f"{customer}:{channel}")):
        return None
    return customer, channel


def open_token(secret: str, message_id: int) -> str:
    return f"o1.{message_id}.{_mac(secret, 'open', str(message_id))}"


def read_open_token(secret: str, token: str) -> int | None:
    match = _OPEN.fullmatch(token)
    if match is None or not hmac.compare_digest(match[2], _mac(secret, "open", match[1])):
        return None
    return int(match[1])
