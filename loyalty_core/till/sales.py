"""Till use-cases: identify, calculate (writes nothing), confirm (one transaction, exactly once), batch."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import asyncpg
import msgspec
from asyncpg.exceptions._base import DataError as ArgumentDataError
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

from loyalty_core import cache
from loyalty_core.engine import PricedBasket, RedeemLimitExceeded, StoreInfo, price
from loyalty_core.errors import (
    ConfirmationRequired,
    CouponInvalid,
    DomainError,
    IdempotencyConflict,
    InsufficientPoints,
    NotFound,
    RedeemLimit,
    ValidationFailed,
)
from loyalty_core.ledger import command, ops
from loyalty_core.ledger.posting import Plan
from loyalty_core.ledger.writer import ConcurrentUpdate
from loyalty_core.messaging import outbox
from loyalty_core.rules import programs
from loyalty_core.till import sale_write
from loyalty_core.members import tiers
from loyalty_core.till import trust as till_trust
from loyalty_core.till.identify import CardContext, resolve_scan, shows_possession_only
from loyalty_core.till import pricing
from loyalty_core.till.pricing import build_pricing_input
from loyalty_core.till.types import (
    AppliedOut,
    BalanceOut,
    BatchItemOut,
    CalculationOut,
    CardOut,
    CouponOut,
    CashierNote,
    IdentifyOut,
    LineOut,
    MemberOut,
    SaleIn,
    TierOut,
    TotalsOut,
)
from loyalty_core.tables import Membership, Program, Sale

log = logging.getLogger("kopilka.sales")

class Till(msgspec.Struct, frozen=True):
    """Who sells: taken from the till key, never from the body."""

    till_id: int
    store_id: int
    store_timezone: str = "Europe/Moscow"
    store: StoreInfo | None = None  # the store's facts when the caller has them; else read by store_id
    # (program id, rules version) a sale without a card is priced by, when the caller read it; else looked up
    program: tuple[int, int] | None = None
    # the program the store is bound to: another program's card is `card-not-found` here (None: any program)
    bound_program: int | None = None
    # the time zone of `program`: a confirm's read counts that program's periods in it (`pricing.lookups`)
    program_timezone: str | None = None
    # the cache_version the till's facts (its key, store, program) were read at: a newer one read by the card's
    # statement raises `cache.FactsChanged` (the till layer authenticates again)
    facts_version: int | None = None


def request_hash(body: msgspec.Struct) -> str:
    if isinstance(body, SaleIn):
        # the shopper's code is not part of the sale: a retry with a fresh code is the same receipt
        # (and hashes as before the field existed)
        fields = msgspec.structs.asdict(body)
        del fields["confirmation_code"]
        return hashlib.sha256(msgspec.json.encode(fields)).hexdigest()
    return hashlib.sha256(msgspec.json.encode(body)).hexdigest()


# --- identify ---------------------------------------------------------------------------


async def identify(scan: str, now: dt.datetime, program_id: int | None = None,
                   facts_version: int | None = None) -> IdentifyOut:
    card = await resolve_scan(scan, now, program_id=program_id, facts_version=facts_version)
    notes: list[CashierNote] = []
    if card.account_id is not None:
        bal = await ops.balance(card.account_id, now, card.program_timezone, horizon_days=60)
        # the till shows what is spendable and what burns soon; when pending points activate is the app's
        balance = BalanceOut(active=bal.active, pending=bal.pending, expiring=bal.expiring)
        if bal.expiring:
            notes.append(CashierNote("points_expire", points=bal.expiring[0].points, on=bal.expiring[0].on))
    else:
        balance = BalanceOut(active=0, pending=0, expiring=[])
    if not card.registered:
        notes.append(CashierNote("card_not_registered"))
    if card.membership_status == "pending":
        notes.append(CashierNote("registration_pending"))
    elif card.confirm_needed and shows_possession_only(scan):
        notes.append(CashierNote("card_not_confirmed"))
    if card.birth_date and card.birth_date.month == now.month and card.birth_date.day == now.day:
        notes.append(CashierNote("birthday"))
    document = await programs.rules_document(card.program_id, card.rules_version)
    return IdentifyOut(
        member=MemberOut(
            id=card.membership_id,
            name=card.customer_name,
            tier=TierOut(code=card.tier_code, name=card.tier_name) if card.tier_code else None,
            registered=card.registered,
        ),
        card=CardOut(number=card.number, status=card.card_status),
        balance=balance,
        cashier_notes=notes,
        language=getattr(getattr(document, "settings", None), "language", "ru"),
    )


# --- calculate ----------------------------------------------------------------------------


async def _default_program() -> tuple[int, int, str]:
    row = await Program.select(Program.id, Program.rules_version, Program.timezone).order_by(Program.id).first()
    if row is None:
        raise DomainError("No loyalty program is configured")
    return row["id"], row["rules_version"], row["timezone"]


async def _price(
    sale: SaleIn, card: CardContext | None, till: Till, balance_active: int, now: dt.datetime, offline: bool = False,
    looked_up: pricing.LookedUp | None = None,
) -> tuple[PricedBasket, int, int]:
    """Price the basket; also returns the rules version used and the points-earning spend (no excluded goods)."""
    if card is not None:
        program_id, version = card.program_id, card.rules_version
    elif till.program is not None:
        program_id, version = till.program
    else:
        program_id, version, _ = await _default_program()
    document = await programs.rules_document(program_id, version)
    till_trust.check_time(sale, getattr(document, "settings", None), now, offline)
    compiled = await programs.compiled_program(program_id, version)
    if card is not None and card.membership_status == "pending":
        # registered at a till, not confirmed by the shopper's code yet: it earns points, it cannot spend them
        if sale.redeem_points:
            raise RedeemLimit("The shopper has not confirmed the registration yet: points can be spent once they "
                              "confirm with the code sent to their phone", max_redeem_points=0, pending_confirmation=True)
        balance_active = 0
    elif card is not None and card.confirm_needed and sale.card and shows_possession_only(sale.card):
        # linked at a till (or by the call centre) to a phone; whoever holds this plastic need not be the phone's
        # owner (a cashier may keep it): it pays once the member confirms the card, or by app QR / phone and code
        if sale.redeem_points:
            raise RedeemLimit("This card was linked to the shopper's phone by someone else and the shopper has not "
                              "confirmed it yet: pay with the app's QR code, or confirm the card with the code sent to "
                              "the phone (POST /pos/v1/members)", max_redeem_points=0, pending_confirmation=True)
        balance_active = 0
    basket, context = await build_pricing_input(sale, card, till.store or till.store_id, document, balance_active, now,
                                                looked_up)
    if sale.redeem_points > balance_active and card is not None and card.registered:
        raise InsufficientPoints(
            f"The card has {balance_active} active points, {sale.redeem_points} were asked", available=balance_active
        )
    try:
        priced = price(basket, context, compiled)  # type: ignore[arg-type]
        return priced, version, sum(ln.to_pay for ln, b in zip(priced.lines, basket.lines) if not b.excluded)
    except RedeemLimitExceeded as exc:
        raise RedeemLimit(
            f"At most {exc.max_redeem_points} points can pay for this receipt", max_redeem_points=exc.max_redeem_points
        ) from exc


def calculation_out(priced: PricedBasket, balance_after: BalanceOut | None, card: CardContext | None) -> CalculationOut:
    notes: list[CashierNote] = []
    if priced.totals.accrued_points:
        notes.append(CashierNote("points_accrued", points=priced.totals.accrued_points))
    if card is not None and not card.registered:
        notes.append(CashierNote("kept_on_card"))
    # the program's caps on points per receipt / per day trimmed this accrual: the cashier can tell the shopper
    notes += [CashierNote("accrual_limited", text=e.reason)
              for e in priced.trace if e.stage == "accrual" and e.rule == "limit" and e.fired]
    return CalculationOut(
        lines=[
            LineOut(
                line_no=ln.line_no, discount=ln.discount, redeemed_points=ln.redeemed_points,
                redeemed_amount=ln.redeemed_amount, to_pay=ln.to_pay, accrued_points=ln.accrued_points,
            )
            for ln in priced.lines
        ],
        totals=TotalsOut(**msgspec.structs.asdict(priced.totals)),
        max_redeem_points=priced.max_redeem_points,
        applied=[
            AppliedOut(rule=a.rule, name=a.name, effect=a.effect, lines=a.lines, explanation=a.explanation,
                       points=a.points, discount=a.discount)
            for a in priced.applied
        ],
        coupons=[CouponOut(code=c.code, status=c.status, reason=c.reason) for c in priced.coupons],
        balance_after=balance_after,
        cashier_notes=notes,
        language=priced.language,
        rules_version=priced.rules_version,
    )


async def calculate_sale(sale: SaleIn, till: Till, now: dt.datetime) -> CalculationOut:
    """What confirm would do, with nothing written. Due activations are counted as of `now`."""
    till_trust.check_lines(sale)
    card = (await resolve_scan(sale.card, now, program_id=till.bound_program, facts_version=till.facts_version)
            if sale.card else None)
    active = pending = debt = 0
    if card is not None and card.account_id is not None:
        bal = await ops.balance(card.account_id, now, card.program_timezone)
        active, pending, debt = bal.active, bal.pending, bal.debt
    priced, _, _ = await _price(sale, card, till, active, now)
    after = None
    if card is not None:
        t = priced.totals
        # as confirm will: the account's debt is paid first from the accrual
        after = BalanceOut(active=active - t.redeemed_points,
                             pending=pending + t.accrued_points - min(debt, t.accrued_points))
    return calculation_out(priced, after, card)


# --- confirm ------------------------------------------------------------------------------


async def _existing_sale(till: Till, sale: SaleIn) -> dict | None:
    rows = await Sale.raw(
        "SELECT id, request_hash, response FROM sale WHERE store = {} AND till = {} AND business_date = {} AND receipt_id = {}",
        till.store_id, till.till_id, sale.business_date, sale.receipt_id,
    )
    return rows[0] if rows else None


def _replay(existing: dict, digest: str) -> CalculationOut:
    if existing["request_hash"] != digest:
        raise IdempotencyConflict(
            "This receipt was already confirmed with a different body", sale_id=existing["id"]
        )
    return msgspec.json.decode(existing["response"], type=CalculationOut)


async def _anonymous_membership(card: CardContext, now: dt.datetime) -> CardContext:
    """An emitted card nobody registered: give it a membership of its own so it can hold points."""
    if card.membership_id is not None:  # a membership without its account yet
        account_id = await ops.ensure_account(card.membership_id)
        return msgspec.structs.replace(card, account_id=account_id)
    locked = await Sale.raw("SELECT membership FROM card WHERE id = {} FOR UPDATE", card.card_id)
    if locked[0]["membership"] is not None:
        # another till's first sale of this card gave it its membership meanwhile: this try ends (releasing the
        # card's lock) and the next one reads the card as it is now. Waiting here holding the card while that
        # sale holds the account and stamps the card's pass was a deadlock.
        raise ConcurrentUpdate("The card got its membership from another till's sale meanwhile; read it again")
    rows = await Membership.raw(
        "INSERT INTO membership (program, status, registration_channel, joined_at, tier_spend, segments, purchases_count) "
        "VALUES ({}, 'anonymous', 'card', {}, 0, ARRAY[]::varchar[], 0) RETURNING id",
        card.program_id, now,
    )
    membership_id = rows[0]["id"]
    await Sale.raw("UPDATE card SET membership = {}, status = 'active' WHERE id = {}", membership_id, card.card_id)
    await tiers.assign_initial_tier(membership_id, card.program_id)
    account_id = await ops.ensure_account(membership_id)
    return msgspec.structs.replace(card, membership_id=membership_id, account_id=account_id, membership_status="anonymous")


async def _lookups(sale: SaleIn, till: Till) -> pricing.Lookups | None:
    """The engine's look-ups under the program the till prices by: asked for in the confirm's read statement."""
    if till.program is None or till.program_timezone is None:
        return None
    try:
        document = await programs.rules_document(*till.program)
    except NotFound:  # a program with no rules yet: the card's own program is priced, and looked up, as ever
        return None
    return pricing.lookups(document, sale.occurred_at, till.program_timezone)


# a confirm reads without a lock and writes guarded by the account's version; the last try reads under the
# account's row lock, so a card that lost twice to other tills waits its turn instead of failing
CONFIRM_TRIES = 3


class _Attempt(msgspec.Struct):
    locked: bool
    code_confirmed: bool = False  # the shopper's code is single use: a retry does not ask for it again


async def confirm_sale(
    sale: SaleIn, till: Till, now: dt.datetime, gate: till_trust.PhoneGate | None = None, offline: bool = False,
    idempotency_key: str | None = None,
) -> CalculationOut:
    """Recompute the sale and write it in one transaction. A replay returns the first response.

    Optimistic: the card and its account are read without a lock, the sale is priced, and everything is
    written in one statement that holds only if the account's version is still the one read; when another
    operation changed the account meanwhile, the sale is read and priced again (at most CONFIRM_TRIES times,
    then 409 `concurrent-update`).

    `gate` checks the shopper's code when the sale spends points by phone (without one such a sale is
    refused); `offline`: the sale comes in a batch, so the longer age window applies. Each try is one command
    (`ledger.command`): the receipt is claimed by the sale row, the till's `Idempotency-Key` in the same
    transaction."""
    till_trust.check_lines(sale)
    digest = request_hash(sale)
    keys = [command.Key(f"till:{till.till_id}", idempotency_key, digest)] if idempotency_key else []
    attempt = _Attempt(locked=False)
    for n in range(1, CONFIRM_TRIES + 1):
        attempt.locked = n == CONFIRM_TRIES
        try:
            return await command.execute(
                keys, lambda: _confirm_in_transaction(sale, till, now, digest, gate, offline, attempt), CalculationOut
            )
        except ConcurrentUpdate:
            existing = await _existing_sale(till, sale)
            if existing is not None:
                return await _replayed(keys, _replay(existing, digest))
            if n == CONFIRM_TRIES:
                raise
        except (asyncpg.UniqueViolationError, DomainError):
            # The receipt's unique index makes the write exactly-once. A replay fails there, or earlier
            # when the first confirm changed what it would price (points spent, a limit reached): either
            # way, if the receipt is confirmed, answer as it did. A replay that raced the first confirm
            # waited on the receipt's index entry until it committed, so that one is seen here.
            existing = await _existing_sale(till, sale)
            if existing is None:
                raise
            return await _replayed(keys, _replay(existing, digest))
    raise AssertionError("unreachable")


async def _replayed(keys: list[command.Key], answer: CalculationOut) -> CalculationOut:
    """A receipt confirmed before, asked again under a new Idempotency-Key: the key keeps the same answer."""
    async def same() -> CalculationOut:
        return answer

    return await command.execute(keys, same, CalculationOut) if keys else answer


async def _confirm_in_transaction(
    sale: SaleIn, till: Till, now: dt.datetime, digest: str, gate: till_trust.PhoneGate | None, offline: bool,
    attempt: _Attempt,
) -> CalculationOut:
    # one read: the card, the member, the account as the ledger's plan needs it, the engine's look-ups for the
    # program the till prices by, and the version of the cached facts (the till's key, the catalog)
    asked = await _lookups(sale, till) if sale.card else None
    card = (await resolve_scan(sale.card, now, lock_account=attempt.locked, program_id=till.bound_program,
                               ledger_view=True, lookups=msgspec.json.encode(asked).decode() if asked else None,
                               facts_version=till.facts_version) if sale.card else None)
    plan = None
    looked_up = None
    if card is not None:
        looked_up = pricing.answered(card, asked, till.program, till.program_timezone)
        if card.membership_id is None or card.account_id is None:
            card = await _anonymous_membership(card, now)
            view = (await ops.load_views([card.account_id], lock="lock"))[0]  # type: ignore[list-item]
        else:
            view = ops.decode_view(card.account_view)  # type: ignore[arg-type]
        plan = Plan(view, now)
        plan.settle(now)  # what fell due is written with the sale, before it in the ledger
    priced, version, earning = await _price(sale, card, till, plan.view.active if plan else 0, now, offline,
                                            looked_up)
    rejected = [c for c in priced.coupons if c.status == "rejected"]
    if rejected:
        # the till must not print a receipt with a discount the shopper did not get: calculate again
        raise CouponInvalid(
            "; ".join(f"{c.code}: {c.reason}" for c in rejected),
            coupons=[{"code": c.code, "reason": c.reason} for c in rejected],
        )
    if (phone := till_trust.spends_by_phone(sale)) is not None and card is not None and not attempt.code_confirmed:
        # checked once the sale is known to go through, so a refused sale does not burn the shopper's code;
        # a replay of a confirmed receipt fails here and is answered with its first response
        if gate is None:
            raise ConfirmationRequired("Paying with points by phone needs the shopper's code")
        await gate.confirm_spend(phone, sale.confirmation_code)
        attempt.code_confirmed = True
    t = priced.totals
    after = None
    if plan is not None and card is not None:
        accrual = None
        if t.accrued_points:
            settings = (await programs.rules_document(card.program_id, version)).settings  # type: ignore[attr-defined]
            activates_at = till_trust.activation_time(sale, settings.pending_days, now)
            accrual = (activates_at, activates_at + dt.timedelta(days=settings.expiry_days))
        sale_write.plan_sale(plan, sale, card, priced, earning, accrual, now)
        after = BalanceOut(active=plan.view.active, pending=plan.view.pending)
    response = calculation_out(priced, after, card)
    response.status = "confirmed"  # the sale id is set by the statement that writes the row
    response.sale_id = await sale_write.write_confirmed_sale(
        sale, till.till_id, till.store_id, card, plan, priced, version, digest, earning, response, now,
        # a sale with a card checked the till's facts in its read; one without checks them here
        till.facts_version if card is None else None,
    )
    await outbox.use_coupons(priced, card, response.sale_id)
    return response


# --- batch ---------------------------------------------------------------------------------


class _ItemFailed(DomainError):
    slug, status, title = "internal-error", 500, "Internal error"


class _ItemDependencyDown(DomainError):
    slug, status, title = "dependency-unavailable", 503, "Service unavailable"


def _item_failure(exc: Exception, receipt_id: str) -> DomainError:
    """What a batch item that failed outside the domain rules tells the till (the answer a lone confirm gets)."""
    if isinstance(exc, (ValkeyConnectionError, ValkeyTimeoutError)):
        return _ItemDependencyDown("valkey (rate limits and one-time codes) is unavailable; send this sale again "
                                   "shortly", dependency="valkey")
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                        asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError, asyncpg.InterfaceError,
                        ConnectionError)):
        return _ItemDependencyDown("postgresql (the database) is unavailable; send this sale again shortly",
                                   dependency="postgresql")
    if isinstance(exc, (asyncpg.DataError, ArgumentDataError)):
        return ValidationFailed("A value in this sale is outside what can be stored")
    log.exception("batch item %r failed", receipt_id, exc_info=exc)
    return _ItemFailed("This sale failed on the server and was not written; send it again later")


async def confirm_batch(
    items: list[Any], till: Till, now: dt.datetime, gate: till_trust.PhoneGate | None = None
) -> list[BatchItemOut]:
    """An offline till's sales, in till order, each processed like confirm in its own transaction.

    Items are independent: each is decoded, checked and written on its own; a refused item (malformed,
    implausible, over a limit, unconfirmed) is that item's `rejected` result with its problem."""
    results: list[BatchItemOut] = []
    for item in items:
        receipt_id = item.get("receipt_id") if isinstance(item, dict) else None
        receipt_id = receipt_id[:64] if isinstance(receipt_id, str) else ""
        try:
            results.append(await _batch_item(item, till, now, gate))
        except DomainError as exc:
            results.append(BatchItemOut(receipt_id=receipt_id, status="rejected", problem=exc.as_problem()))
        except cache.FactsChanged:
            raise  # the till's key or store changed: the till layer authenticates again and sends the rest again
        except Exception as exc:  # noqa: BLE001 - the items before it were written: the till must learn which
            failure = _item_failure(exc, receipt_id)
            results.append(BatchItemOut(receipt_id=receipt_id, status="rejected", problem=failure.as_problem()))
    return results


async def _batch_item(item: Any, till: Till, now: dt.datetime, gate: till_trust.PhoneGate | None) -> BatchItemOut:
    try:
        sale = msgspec.json.decode(msgspec.json.encode(item), type=SaleIn)
    except (msgspec.ValidationError, msgspec.EncodeError, OverflowError) as exc:
        raise ValidationFailed(f"Invalid sale: {exc}") from None
    if gate is not None:
        await gate.count(sale.card)
    till_trust.check_lines(sale)  # before any query: text PostgreSQL cannot store must not reach it
    existing = await _existing_sale(till, sale)
    if existing is not None and existing["request_hash"] == request_hash(sale):
        return BatchItemOut(receipt_id=sale.receipt_id, status="duplicate", sale_id=existing["id"])
    response = await confirm_sale(sale, till, now, gate, offline=True)
    return BatchItemOut(receipt_id=sale.receipt_id, status="confirmed", sale_id=response.sale_id)
