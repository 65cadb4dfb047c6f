"""The one schema. Money in integer minor units, points as integers, time zone aware timestamps.

Member-scoped tables carry the membership/account key so they can be distributed (Citus).
Schema changes only through Piccolo migrations in migrations/.
"""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSONB,
    Array,
    BigInt,
    BigSerial,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Real,
    Text,
    Timestamptz,
    UUID,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

# states as Enums: Piccolo's `choices`, and CHECK constraints in the database (migration 2026-11-29T18:30)

class CustomerStatus(StrEnum):
    active = "active"
    deleted = "deleted"


class MembershipStatus(StrEnum):
    anonymous = "anonymous"  # an emitted card's first sale made it; nobody registered it yet
    pending = "pending"  # registered at a till; waits for the shopper's code
    active = "active"
    closed = "closed"


class CardStatus(StrEnum):
    emitted = "emitted"
    active = "active"
    blocked = "blocked"
    replaced = "replaced"


class CouponStatus(StrEnum):
    active = "active"
    used = "used"
    cancelled = "cancelled"


class LotState(StrEnum):
    pending = "pending"
    active = "active"
    expired = "expired"
    spent = "spent"  # remaining == 0


class SaleStatus(StrEnum):
    confirmed = "confirmed"
    cancelled = "cancelled"

# --- program, stores, catalog ---------------------------------------------------------


class Program(Table):
    code = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    currency = Varchar(length=3, default="RUB")
    timezone = Varchar(length=64, default="Europe/Moscow")
    # settings of the ledger and the rules document live in rule versions; this is the live pointer
    rules_version = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())


class Tier(Table):
    program = ForeignKey(Program, null=False)
    code = Varchar(length=32)
    name = Varchar(length=100)
    rank = Integer(default=0)
    threshold_spend = BigInt(default=0)  # minor units of points-earning spend over the window
    accrual_bp = Integer(default=0)


class Store(Table):
    code = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    timezone = Varchar(length=64, default="Europe/Moscow")
    region = Varchar(length=100, default="")
    format = Varchar(length=50, default="")
    address = Text(default="")
    latitude = Real(null=True, default=None)
    longitude = Real(null=True, default=None)
    attributes = JSONB(default={})
    # the program whose receipts this store takes back; None: every program (a one-program deployment)
    program = ForeignKey(Program, null=True, default=None)


class Till(Table):
    store = ForeignKey(Store, null=False)
    code = Varchar(length=64)


class TillKey(Table):
    till = ForeignKey(Till, null=False)
    key_hash = Varchar(length=64, unique=True)  # sha256 hex of the secret
    prefix = Varchar(length=16)  # shown to operators to tell keys apart
    created_at = Timestamptz(default=TimestamptzNow())
    revoked_at = Timestamptz(null=True, default=None)


class OperatorKey(Table):
    name = Varchar(length=100)
    key_hash = Varchar(length=64, unique=True)
    prefix = Varchar(length=16)
    roles = Array(base_column=Varchar(length=32), default=[])
    created_at = Timestamptz(default=TimestamptzNow())
    revoked_at = Timestamptz(null=True, default=None)


class Category(Table):
    code = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    parent = ForeignKey("self", null=True, default=None)
    # the category and all its ancestors' codes, root first: what the engine matches on
    path = Array(base_column=Varchar(length=64), default=[])
    selectable_as_favourite = Boolean(default=False)
    # the name per language for the shopper's website ({"ru": ..., "en": ...}); `name` when a language is missing
    names = JSONB(default={})


class Brand(Table):
    code = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    own_brand = Boolean(default=False)


class Product(Table):
    sku = Varchar(length=64, unique=True)
    name = Varchar(length=300)
    category = ForeignKey(Category, null=True, default=None)
    brand = ForeignKey(Brand, null=True, default=None)
    excluded = Boolean(default=False)  # no discount, no points, no payment with points
    price = BigInt(null=True, default=None)
    names = JSONB(default={})  # per language, as the category's


# --- rules --------------------------------------------------------------------------


class RulesVersion(Table):
    """An immutable snapshot of a program's whole rules document; sales record the version they used."""

    program = ForeignKey(Program, null=False)
    version = Integer()
    document = JSONB()
    comment = Text(default="")
    created_by = Varchar(length=100, default="")
    created_at = Timestamptz(default=TimestamptzNow())


class RulesDraft(Table):
    """A marketer's draft of a program's whole rules document (the back office's rule editor): compared with the
    live version, replayed over past receipts, proposed, and published by a second person (loyalty_core/rules_office)."""

    program = ForeignKey(Program, null=False)
    base_version = Integer()  # the live version it started from: publishing refuses if another went live since
    document = JSONB()
    title = Varchar(length=200, default="")
    status = Varchar(length=16, default="draft")  # draft | proposed | published | discarded
    created_by = Varchar(length=120, default="")  # as the audit names them
    created_ref = Varchar(length=64, default="")  # staff:<id>
    created_at = Timestamptz(default=TimestamptzNow())
    updated_by = Varchar(length=120, default="")
    updated_at = Timestamptz(default=TimestamptzNow())
    approval = BigInt(null=True, default=None)  # the pending_approval of its publish, while proposed
    published_version = Integer(null=True, default=None)


class CouponSeries(Table):
    program = ForeignKey(Program, null=False)
    code = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    personal = Boolean(default=True)  # personal unique codes vs one shared promo code
    max_uses_per_code = Integer(default=1)
    max_uses_per_member = Integer(default=1)
    valid_from = Timestamptz(null=True, default=None)
    valid_to = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


# --- members --------------------------------------------------------------------------


class Customer(Table):
    phone = Varchar(length=20, null=True, default=None, unique=True)  # E.164
    email = Varchar(length=254, null=True, default=None, unique=True)  # lower-cased
    name = Varchar(length=200, default="")
    birth_date = Date(null=True, default=None)
    # when the birth date became known: a birthday rule needs it known for some days (no "birthday on demand")
    birth_date_set_at = Timestamptz(null=True, default=None)
    locale = Varchar(length=8, default="ru")
    status = Varchar(length=16, default=CustomerStatus.active, choices=CustomerStatus)
    created_at = Timestamptz(default=TimestamptzNow())
    deleted_at = Timestamptz(null=True, default=None)


class Membership(Table):
    program = ForeignKey(Program, null=False)
    customer = ForeignKey(Customer, null=True, default=None)  # None: anonymous (an emitted card)
    tier = ForeignKey(Tier, null=True, default=None)
    tier_spend = BigInt(default=0)  # points-earning spend over the rolling window, minor units
    segments = Array(base_column=Varchar(length=64), default=[])
    referral_code = Varchar(length=16, null=True, default=None, unique=True)
    referred_by = ForeignKey("self", null=True, default=None)
    registration_channel = Varchar(length=16, default="")
    status = Varchar(length=16, default=MembershipStatus.active, choices=MembershipStatus)
    purchases_count = Integer(default=0)
    first_purchase_at = Timestamptz(null=True, default=None)
    last_purchase_at = Timestamptz(null=True, default=None)
    joined_at = Timestamptz(default=TimestamptzNow())
    # a legacy tier's spend (docs/import.md): added to the tier's window while carried_until is in the future
    carried_spend = BigInt(default=0)
    carried_until = Timestamptz(null=True, default=None)
    legacy_id = Varchar(length=64, null=True, default=None)  # the member's id in the system it was imported from


class Card(Table):
    number = Varchar(length=32, unique=True)
    program = ForeignKey(Program, null=False)
    membership = ForeignKey(Membership, null=True, default=None)
    series = Varchar(length=64, default="")
    kind = Varchar(length=16, default="virtual")  # virtual | plastic
    status = Varchar(length=16, default=CardStatus.emitted, choices=CardStatus)
    blocked_reason = Text(null=True, default=None)
    replaced_by = ForeignKey("self", null=True, default=None)
    pass_auth_token = Varchar(length=64, null=True, default=None)
    pass_updated_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())
    # sha256 of "number:secret" printed with an emitted card: proof of possession when bound in the app or web
    secret_hash = Varchar(length=64, null=True, default=None)
    # linked to a member by someone else (a till, the call centre, an import into an existing customer): it earns,
    # but pays with points only after the member confirms this card (the code sent at the till, or in the app/website)
    confirm_needed = Boolean(default=False)
    linked_via = Varchar(length=100, default="")  # where: "till MSK-TVERSKAYA/1", "call centre", "import"
    linked_at = Timestamptz(null=True, default=None)


class WelcomeGrant(Table):
    """A welcome bonus was given to this phone or e-mail in this program: once ever, kept after deletion.
    Only a keyed hash (HMAC with the app secret) of the contact is stored, never the contact itself."""

    program = ForeignKey(Program, null=False)
    contact_hash = Varchar(length=64)
    granted_at = Timestamptz(default=TimestamptzNow())


class AuditEvent(Table):
    """Who changed what, when, from what to what, and why (staff corrections of a member's data)."""

    id = BigSerial(primary_key=True)
    actor = Varchar(length=100)  # the operator key's name, or "system"
    action = Varchar(length=64)  # e.g. customer.birth_date
    subject = Varchar(length=100)  # e.g. customer:42
    before = JSONB(default={})
    after = JSONB(default={})
    reason = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    origin = Varchar(length=64, default="")  # where from: the client's IP (back office, admin API)


class Coupon(Table):
    series = ForeignKey(CouponSeries, null=False)
    code = Varchar(length=32, unique=True)
    membership = ForeignKey(Membership, null=True, default=None)  # personal coupons
    uses = Integer(default=0)
    status = Varchar(length=16, default=CouponStatus.active, choices=CouponStatus)
    issued_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz(null=True, default=None)


class CouponUse(Table):
    """One use of a coupon by a sale: per-member limits count these; a cancel removes its own."""

    coupon = ForeignKey(Coupon, null=False)
    membership = ForeignKey(Membership, null=True, default=None)
    sale = BigInt()
    used_at = Timestamptz(default=TimestamptzNow())


class FavouriteCategory(Table):
    membership = ForeignKey(Membership, null=False)
    category = ForeignKey(Category, null=False)
    period_start = Date()
    chosen_at = Timestamptz(default=TimestamptzNow())
    active = Boolean(default=True)


# --- ledger ---------------------------------------------------------------------------


class Account(Table):
    membership = ForeignKey(Membership, null=False)
    currency = Varchar(length=16, default="points")
    active = BigInt(default=0)
    pending = BigInt(default=0)
    updated_at = Timestamptz(default=TimestamptzNow())
    # points already spent that a return could not take back; paid first from the next refunds and accruals
    debt = BigInt(default=0)
    # bumped by every write of the ledger writer (loyalty_core/ledger/writer.py): a write guarded by the
    # version it read finds out that the account changed meanwhile (optimistic confirm)
    version = BigInt(default=0)


class PointLot(Table):
    account = ForeignKey(Account, null=False)
    amount = BigInt()
    remaining = BigInt()
    state = Varchar(length=16, choices=LotState)
    activates_at = Timestamptz()
    expires_at = Timestamptz(null=True, default=None)
    source = Varchar(length=32)  # sale | adjust | import | welcome | transfer | refund
    sale = BigInt(null=True, default=None)  # the sale that accrued it
    created_at = Timestamptz(default=TimestamptzNow())


class LedgerEntry(Table):
    """Immutable: one row per movement; signed amounts into `bucket` (active or pending)."""

    id = BigSerial(primary_key=True)
    account = ForeignKey(Account, null=False)
    # no constraint in the database (migration 2026-11-29T15:12): the ledger writer writes a lot and its entries in
    # one statement; `kopilka ledger verify` checks that every entry's lot is a lot of its account
    lot = ForeignKey(PointLot, null=True, default=None)
    # accrue activate redeem return_clawback return_refund expire adjust import transfer
    # debt (+, bucket debt) debt_paid (- from a lot, and - bucket debt) debt_write_off (- bucket debt)
    kind = Varchar(length=24)
    bucket = Varchar(length=8)  # active | pending | debt
    amount = BigInt()
    sale = BigInt(null=True, default=None)
    sale_return = BigInt(null=True, default=None)
    reason = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


# --- sales ----------------------------------------------------------------------------


class Sale(Table):
    store = ForeignKey(Store, null=False)
    till = ForeignKey(Till, null=False)
    receipt_id = Varchar(length=64)
    business_date = Date()
    occurred_at = Timestamptz()
    card_number = Varchar(length=32, null=True, default=None)
    membership = ForeignKey(Membership, null=True, default=None)
    account = ForeignKey(Account, null=True, default=None)
    channel = Varchar(length=16, default="store")
    status = Varchar(length=16, default=SaleStatus.confirmed, choices=SaleStatus)
    amount = BigInt(default=0)
    discount = BigInt(default=0)
    redeemed_points = BigInt(default=0)
    redeemed_amount = BigInt(default=0)
    to_pay = BigInt(default=0)
    accrued_points = BigInt(default=0)
    rules_version = Integer(default=0)
    earning_spend = BigInt(default=0)  # paid with money for goods that earn points: what tiers count
    returned_earning_spend = BigInt(default=0)
    request_hash = Varchar(length=64)
    response = JSONB()
    trace = JSONB(default=[])
    created_at = Timestamptz(default=TimestamptzNow())
    cancelled_at = Timestamptz(null=True, default=None)


class SaleLine(Table):
    # no constraint in the database (migration 2026-11-29T15:12): the confirm writes the sale and its lines in one
    # statement; `kopilka ledger verify` checks that every line has its sale
    sale = ForeignKey(Sale, null=False)
    line_no = Integer()
    sku = Varchar(length=64)
    quantity_milli = BigInt()
    price = BigInt()
    amount = BigInt()
    discount = BigInt(default=0)
    redeemed_points = BigInt(default=0)
    redeemed_amount = BigInt(default=0)
    to_pay = BigInt(default=0)
    accrued_points = BigInt(default=0)
    returned_quantity_milli = BigInt(default=0)


class SaleReturn(Table):
    sale = ForeignKey(Sale, null=False)
    return_id = Varchar(length=64)
    # the till that took the return back: a return_id is that till's own number (None only before 2026-11-29)
    till = ForeignKey(Till, null=True, default=None)
    request_hash = Varchar(length=64)
    clawed_back_points = BigInt(default=0)
    refunded_points = BigInt(default=0)
    refunded_amount = BigInt(default=0)
    response = JSONB()
    created_at = Timestamptz(default=TimestamptzNow())


class ReturnLine(Table):
    sale_return = ForeignKey(SaleReturn, null=False)
    line_no = Integer()
    quantity_milli = BigInt()
    clawed_back_points = BigInt(default=0)
    refunded_points = BigInt(default=0)
    refunded_amount = BigInt(default=0)
    amount = BigInt(default=0)


class IdempotencyRecord(Table):
    scope = Varchar(length=64)  # e.g. "till:17"
    key = Varchar(length=200)
    request_hash = Varchar(length=64)
    response = JSONB()
    status_code = Integer(default=200)
    created_at = Timestamptz(default=TimestamptzNow())


# --- identity, devices, notifications, wallet -----------------------------------------


class RefreshToken(Table):
    customer = ForeignKey(Customer, null=False)
    family = UUID()
    token_hash = Varchar(length=64, unique=True)
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class Consent(Table):
    customer = ForeignKey(Customer, null=False)
    channel = Varchar(length=16)  # sms | email | push
    granted = Boolean()
    source = Varchar(length=32, default="")  # app | web | till | call_center | import
    changed_at = Timestamptz(default=TimestamptzNow())


class PushDevice(Table):
    customer = ForeignKey(Customer, null=False)
    platform = Varchar(length=8)  # apns | fcm
    token = Varchar(length=400)
    created_at = Timestamptz(default=TimestamptzNow())
    dead_at = Timestamptz(null=True, default=None)


class PushDeviceSeen(Table):
    """Every customer a push token was ever registered by (push_device keeps only the latest): the referral check
    knows two sign-ups from one phone (loyalty_core/marketing/events.py). Only a hash of the token is kept."""

    customer = ForeignKey(Customer, null=False)
    token_hash = Varchar(length=64)  # sha256 hex of "platform:token"
    seen_at = Timestamptz(default=TimestamptzNow())


class PassRegistration(Table):
    card = ForeignKey(Card, null=False)
    device_library_id = Varchar(length=200)
    push_token = Varchar(length=400)
    created_at = Timestamptz(default=TimestamptzNow())


class Notification(Table):
    """Transactional outbox: written in the same transaction as the change that causes it."""

    id = BigSerial(primary_key=True)
    # no constraints in the database (migration 2026-11-29T15:16): the ledger writer writes messages in the statement
    # that stamps the card's pass; `kopilka ledger verify` checks that every message's customer and card exist
    customer = ForeignKey(Customer, null=True, default=None)
    card = ForeignKey(Card, null=True, default=None)
    kind = Varchar(length=32)  # welcome points_accrued points_activated points_expiring tier_changed coupon_issued pass_update
    payload = JSONB(default={})
    status = Varchar(length=16, default="pending")  # pending | sending (claimed, lease in next_attempt_at) | sent | failed | skipped
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow())
    last_error = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())
    sent_at = Timestamptz(null=True, default=None)
    # messages that must go out once per cause (points expiring: account + day) carry a unique key
    dedupe_key = Varchar(length=100, null=True, default=None)


class NotificationDelivery(Table):
    """One row per device a notification reached or gave up on: a message retried after a crash skips these."""

    id = BigSerial(primary_key=True)
    notification = ForeignKey(Notification, null=False)
    target = Varchar(length=450)  # "pass:<registration id>" | "device:<push device id>" | "google:<object id>"
    outcome = Varchar(length=16)  # delivered | dead | failed | skipped
    provider_id = Varchar(length=200, default="")  # apns-id / FCM message name, for support questions
    detail = Text(default="")
    created_at = Timestamptz(default=TimestamptzNow())


class ScheduledJob(Table):
    """The worker's scheduled jobs: when each last ran (the schedule itself is configuration), and the
    point a job has processed up to (the tier pass recomputes members whose window changed since)."""

    name = Varchar(length=64, unique=True)
    last_started_at = Timestamptz(null=True, default=None)
    last_finished_at = Timestamptz(null=True, default=None)
    last_result = Text(default="")
    watermark = Timestamptz(null=True, default=None)


# --- the back office (back_office/, docs/back-office.md) -------------------------------------


class StaffUser(Table):
    """A back-office user: a local account (argon2 password + TOTP) or one that signs in with the company's OIDC."""

    email = Varchar(length=254, unique=True)  # lower-cased
    name = Varchar(length=200, default="")
    roles = Array(base_column=Varchar(length=32), default=[])  # support marketer admin import auditor
    password_hash = Varchar(length=200, null=True, default=None)  # argon2id; None: OIDC only
    totp_secret = Varchar(length=64, null=True, default=None)  # base32
    source = Varchar(length=16, default="local")  # local | oidc
    status = Varchar(length=16, default="active")  # active | disabled
    created_at = Timestamptz(default=TimestamptzNow())
    last_sign_in_at = Timestamptz(null=True, default=None)


class PendingApproval(Table):
    """Four eyes: a change above a limit waits here until another person approves it (or anyone rejects it)."""

    id = BigSerial(primary_key=True)
    kind = Varchar(length=32)  # points.adjust | points.adjust_many
    subject = Varchar(length=100)  # e.g. membership:42
    payload = JSONB(default={})  # the request as sent, replayed on approval
    points = BigInt(default=0)
    reason = Text(default="")
    requested_by = Varchar(length=120)  # who, as the audit names them
    requested_ref = Varchar(length=64)  # the identity compared for "not the same person": staff:<id> | key:<id>
    requested_at = Timestamptz(default=TimestamptzNow())
    status = Varchar(length=16, default="pending")  # pending | approved | rejected | failed
    decided_by = Varchar(length=120, default="")
    decided_at = Timestamptz(null=True, default=None)
    result = JSONB(default={})


class OfficeSetting(Table):
    """Settings the admin changes in the back office (e.g. the adjustment limit above which four eyes apply)."""

    key = Varchar(length=64, unique=True)
    value = JSONB(default={})
    updated_by = Varchar(length=120, default="")
    updated_at = Timestamptz(default=TimestamptzNow())


# --- campaigns (loyalty_core/campaigns, docs/campaigns.md) ----------------------------------


class Campaign(Table):
    """A marketer's message to a segment: texts per channel and language, an optional coupon or points,
    when it goes out, the holdout share kept as the control group and the frequency cap it respects."""

    program = ForeignKey(Program, null=False)
    code = Varchar(length=64, unique=True)
    name = Varchar(length=200)
    segment = Varchar(length=64)  # a code in membership.segments ('' for a triggered campaign to everyone)
    # a member event kind (member_event.kind): sent to each member the event happens to, from send_at on;
    # None: sent once, at send_at, to the segment
    trigger = Varchar(length=32, null=True, default=None)
    event_watermark = BigInt(default=0)  # the last member_event a triggered campaign has queued
    # {"push": {"ru": {"title", "body"}}, "email": {"ru": {"subject", "body"}}, "sms": {"ru": {"body"}}}
    messages = JSONB(default={})
    channels = Array(base_column=Varchar(length=8), default=[])  # the order tried: the first the shopper can get
    coupon_series = Varchar(length=64, null=True, default=None)
    bonus_points = Integer(default=0)
    bonus_valid_days = Integer(default=0)  # 0: the program's expiry period
    send_at = Timestamptz()
    holdout_bp = Integer(default=0)  # basis points of the targeted members kept as the control group
    cap_messages = Integer(default=0)  # at most this many campaign messages per shopper ... (0: no cap)
    cap_days = Integer(default=7)  # ... within this many days, across campaigns
    uplift_days = Integer(default=14)  # the report compares spend over this many days after the send
    status = Varchar(length=16, default="draft")  # draft | scheduled | queued | active (triggered) | cancelled
    created_by = Varchar(length=120, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    launched_by = Varchar(length=120, default="")
    queued_at = Timestamptz(null=True, default=None)
    targeted = Integer(default=0)
    control = Integer(default=0)
    capped = Integer(default=0)


class CampaignMember(Table):
    """Who a campaign targeted when it was queued: the control group is recorded too (it gets nothing)."""

    id = BigSerial(primary_key=True)
    # no constraint in the database (migration 2026-11-29T17:52): only queueing writes these rows, a million
    # at a time, from the campaign it holds locked
    campaign = ForeignKey(Campaign, null=False)
    membership = BigInt()
    customer = BigInt(null=True, default=None)
    control = Boolean(default=False)
    capped = Boolean(default=False)  # over the frequency cap when queued: recorded, not sent
    coupon_code = Varchar(length=32, null=True, default=None)


class CampaignMessage(Table):
    """The campaigns' own outbox (one row per targeted shopper), kept apart from `notification` so a
    million-shopper campaign never delays a transactional message. Claimed like the outbox; see
    loyalty_core/campaigns/delivery.py for the exactly-once rules."""

    id = BigSerial(primary_key=True)
    # no constraint in the database (migration 2026-11-29T17:52): only queueing writes these rows, a million
    # at a time, from the campaign it holds locked
    campaign = ForeignKey(Campaign, null=False)
    membership = BigInt()
    customer = BigInt()
    # pending | sending (claimed; lease in next_attempt_at) | sent | delivered | failed | skipped | capped | unknown
    status = Varchar(length=16, default="pending")
    channel = Varchar(length=8, default="")  # the channel it went through: push | email | sms
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(default=TimestamptzNow())
    send_started_at = Timestamptz(null=True, default=None)  # set and committed before the provider is called
    sent_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    opened_at = Timestamptz(null=True, default=None)
    provider_id = Varchar(length=200, default="")
    last_error = Text(default="")


# --- marketing: segments and member events (loyalty_core/marketing, docs/marketing.md) -------------


class Segment(Table):
    """A named group of a program's members. Who is in it lives in `membership.segments` (what the till's rules
    and the campaigns read); a static segment's uploaded list is kept in `segment_static_member`, a dynamic
    segment's condition (docs/marketing.md) is recomputed set-based by the `segments` job and on demand."""

    program = ForeignKey(Program, null=False)
    code = Varchar(length=64)  # unique per program (migration): the word rules and campaigns target
    name = Varchar(length=200, default="")
    kind = Varchar(length=16, default="dynamic")  # static | dynamic
    condition = JSONB(null=True, default=None)  # dynamic: the condition as the marketer wrote it
    status = Varchar(length=16, default="active")  # active | archived (archived: nobody is in it)
    member_count = Integer(default=0)
    recomputed_at = Timestamptz(null=True, default=None)
    created_by = Varchar(length=120, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class SegmentStaticMember(Table):
    """One member of a static segment's uploaded list (unique per segment and member, migration)."""

    segment = ForeignKey(Segment, null=False)
    membership = ForeignKey(Membership, null=False)
    added_at = Timestamptz(default=TimestamptzNow())


class MemberAttribute(Table):
    """A custom fact about a member (imported, or set by a survey): `key` -> text value, one per key."""

    membership = ForeignKey(Membership, null=False)
    key = Varchar(length=64)
    value = Text(default="")
    updated_at = Timestamptz(default=TimestamptzNow())


class MemberEvent(Table):
    """An occurrence of a member event the `member_events` job handled: the claim that makes it happen once
    (unique membership, kind, occurrence; migration), and what it gave."""

    id = BigSerial(primary_key=True)
    program = ForeignKey(Program, null=False)
    membership = ForeignKey(Membership, null=False)
    kind = Varchar(length=32)  # first_purchase | referral_referrer | birthday | inactive | tier_at_risk
    occurrence = Varchar(length=64)  # e.g. the birthday's year, the quiet spell's last purchase date
    points = BigInt(default=0)
    detail = JSONB(default={})
    created_at = Timestamptz(default=TimestamptzNow())
