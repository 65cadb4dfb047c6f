"""Postings alone, no database: random operations are planned by `posting.Plan` against a small in-memory
ledger (what `writer.write` would leave), and after every posting its sums, its lots and the debt rules
hold; undoing every sale in any order leaves the points as they were."""

from __future__ import annotations

import datetime as dt

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_core.errors import InsufficientPoints
from loyalty_core.ledger.posting import THIS_SALE, Debt, Lot, Plan, Posting, RefundSource, SaleFacts, View

T0 = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
LIVE = ("pending", "active")


class Ledger:
    """What the database holds after the writer applied the postings (lots, entries, the account)."""

    def __init__(self) -> None:
        self.lots: dict[int, dict] = {}
        self.entries: list[dict] = []
        self.active = self.pending = self.debt = self.version = 0
        self.next_lot = 1
        self.next_sale = 1

    def view(self, sale: int | None = None) -> View:
        lots = {i: Lot(id=i, state=lot["state"], remaining=lot["remaining"], activates_at=lot["activates_at"],
                       expires_at=lot["expires_at"], sale=lot["sale"], source=lot["source"])
                for i, lot in self.lots.items()
                if lot["state"] in LIVE or (sale is not None and lot["sale"] == sale and lot["source"] == "sale")}
        owed: dict[int | None, list[int]] = {}
        for n, e in enumerate(self.entries):
            if e["bucket"] == "debt":
                owed.setdefault(e["lot"], [0, n])[0] += e["amount"]
        debts = [Debt(lot, o[0]) for lot, o in sorted(owed.items(), key=lambda kv: kv[1][1]) if o[0] > 0]
        return View(id=1, active=self.active, pending=self.pending, debt=self.debt, version=self.version,
                    lots=lots, debts=debts if self.debt > 0 else [])

    def facts(self, sale: int) -> SaleFacts:
        """The same sums `ops.load_sale_facts` reads with SQL."""
        own = {i for i, lot in self.lots.items() if lot["sale"] == sale and lot["source"] == "sale"}
        spent = -sum(e["amount"] for e in self.entries if e["lot"] in own and e["bucket"] in LIVE and (
            e["kind"] in ("redeem", "return_refund", "debt_paid", "transfer")
            or (e["kind"] == "return_clawback" and e["sale"] != sale)))
        settled = -sum(e["amount"] for e in self.entries if e["sale"] == sale and e["kind"] == "return_clawback"
                       and e["bucket"] == "active" and e["lot"] not in own) + sum(
            e["amount"] for e in self.entries if e["sale"] == sale and e["bucket"] == "debt"
            and e["kind"] in ("debt", "debt_write_off") and e["amount"] > 0)
        by_lot: dict[int, int] = {}
        for e in self.entries:
            if e["sale"] == sale and e["kind"] in ("redeem", "return_refund") and e["bucket"] == "active":
                by_lot[e["lot"]] = by_lot.get(e["lot"], 0) - e["amount"]
        sources = [
            RefundSource(id=i, spent=s, state=self.lots[i]["state"], activates_at=self.lots[i]["activates_at"],
                         expires_at=self.lots[i]["expires_at"],
                         orphan=any(x["lot"] == i and x["kind"] in ("return_clawback", "debt") for x in self.entries))
            for i, s in by_lot.items() if s > 0
        ]
        sources.sort(key=lambda r: (r.expires_at is not None, -(r.expires_at or T0).timestamp(), -r.id))
        return SaleFacts(sale=sale, spent=spent, settled=settled, refund_sources=sources)

    def apply(self, p: Posting, sale: int | None = None) -> None:
        assert p.version == self.version, "the plan was read at another version"
        ids: dict[int, int] = {}
        for new in p.new_lots:
            ids[-new.ref] = self.next_lot
            self.lots[self.next_lot] = dict(amount=new.amount, remaining=new.remaining, state=new.state,
                                            activates_at=new.activates_at, expires_at=new.expires_at,
                                            sale=sale if new.sale == THIS_SALE else new.sale, source=new.source)
            self.next_lot += 1
        for change in p.lots:
            lot = self.lots[change.lot]
            lot["remaining"] += change.delta
            lot["state"] = change.state or lot["state"]
        for e in p.entries:
            self.entries.append(dict(lot=ids.get(e.lot, e.lot) if e.lot is not None else None, kind=e.kind,
                                     bucket=e.bucket, amount=e.amount, sale=sale if e.sale == THIS_SALE else e.sale))
        self.active += p.active
        self.pending += p.pending
        self.debt += p.debt
        self.version += 1


def check_posting(p: Posting) -> None:
    """A posting's own arithmetic: its entries add up to its account change, lot by lot and bucket by bucket."""
    for bucket, delta in (("active", p.active), ("pending", p.pending), ("debt", p.debt)):
        assert sum(e.amount for e in p.entries if e.bucket == bucket) == delta, bucket
    moved: dict[int, int] = {}
    for e in p.entries:
        if e.lot is not None and e.bucket in LIVE:
            moved[e.lot] = moved.get(e.lot, 0) + e.amount
    for change in p.lots:
        assert moved.pop(change.lot, 0) == change.delta, f"lot {change.lot}"
    for new in p.new_lots:
        assert moved.pop(-new.ref, 0) == new.remaining
    assert all(v == 0 for v in moved.values()), moved
    paid = [e for e in p.entries if e.kind == "debt_paid"]
    assert sum(e.amount for e in paid if e.bucket == "debt") == sum(e.amount for e in paid if e.bucket != "debt")


def check_ledger(db: Ledger) -> None:
    """What `kopilka ledger verify` checks, on the in-memory ledger."""
    for i, lot in db.lots.items():
        assert 0 <= lot["remaining"] <= lot["amount"], f"lot {i}: {lot}"
        assert sum(e["amount"] for e in db.entries if e["lot"] == i and e["bucket"] in LIVE) == lot["remaining"]
    assert db.active == sum(lot["remaining"] for lot in db.lots.values() if lot["state"] == "active")
    assert db.pending == sum(lot["remaining"] for lot in db.lots.values() if lot["state"] == "pending")
    assert db.debt == sum(e["amount"] for e in db.entries if e["bucket"] == "debt") >= 0
    assert min(db.active, db.pending) >= 0


def opening(db: Ledger, lots: list[tuple[int, bool, int]]) -> None:
    """Starting lots (points, pending?, expiry in days) accrued through a plan, like a welcome grant."""
    for points, pending, days in lots:
        plan = Plan(db.view(), T0)
        plan.accrue(points, T0, kind="adjust", source="adjust",
                    activates_at=T0 + dt.timedelta(days=1) if pending else T0, expires_at=T0 + dt.timedelta(days=days))
        check_posting(plan.posting())
        db.apply(plan.posting())


lots_st = st.lists(st.tuples(st.integers(1, 500), st.booleans(), st.integers(2, 400)), max_size=6)


@settings(max_examples=300, deadline=None)
@given(lots=lots_st, points=st.integers(0, 3_000))
def test_a_spend_takes_the_earliest_expiring_points_first_and_never_more_than_there_is(lots, points) -> None:
    db = Ledger()
    opening(db, lots)
    before = {i: dict(lot) for i, lot in db.lots.items()}
    plan = Plan(db.view(), T0)
    try:
        taken = plan.spend(points, reason="test")
    except InsufficientPoints:
        assert points > db.active
        return
    check_posting(plan.posting())
    db.apply(plan.posting())
    check_ledger(db)
    assert sum(t for _, t in taken) == points
    if taken:
        last = max(before[i]["expires_at"] for i, _ in taken)
        for i, lot in db.lots.items():  # nothing earlier-expiring was left behind while a later lot paid
            if lot["state"] == "active" and lot["remaining"] > 0 and i not in dict(taken):
                assert lot["expires_at"] >= last


@settings(max_examples=300, deadline=None)
@given(lots=lots_st, days=st.integers(0, 500))
def test_settling_activates_and_expires_exactly_what_fell_due(lots, days) -> None:
    db = Ledger()
    opening(db, lots)
    now = T0 + dt.timedelta(days=days)
    plan = Plan(db.view(), now)
    activated, expired = plan.settle(now)
    check_posting(plan.posting())
    db.apply(plan.posting())
    check_ledger(db)
    assert not any(lot["state"] == "pending" and lot["activates_at"] <= now for lot in db.lots.values())
    assert not any(lot["state"] == "active" and lot["expires_at"] <= now for lot in db.lots.values())
    again = Plan(db.view(), now)
    assert again.settle(now) == (0, 0) and not again.posting().moves_points()


sale_st = st.tuples(st.integers(0, 800), st.integers(0, 300), st.booleans())  # spend, accrue, accrual pending


@settings(max_examples=300, deadline=None)
@given(welcome=st.integers(0, 2_000), sales=st.lists(sale_st, min_size=1, max_size=6),
       order=st.randoms(use_true_random=False), partial=st.booleans(), write_off=st.booleans())
def test_undoing_every_sale_in_any_order_leaves_the_points_as_they_were(welcome, sales, order, partial, write_off):
    """The debt rule: spent points a return cannot take back are owed and paid from the next points, so
    returning every sale (in halves or whole, any order) ends where the welcome grant began, owing nothing
    (nothing expires here). Written off debts are forgiven: the shopper may end with more, never owing."""
    db = Ledger()
    if welcome:
        opening(db, [(welcome, False, 400)])
    done: list[tuple[int, int, int]] = []  # sale, spent, accrued
    for spend, accrue, pending in sales:
        sale = db.next_sale
        db.next_sale += 1
        plan = Plan(db.view(), T0)
        try:
            plan.spend(spend, reason="receipt", sale=THIS_SALE)
        except InsufficientPoints:
            continue
        if accrue:
            plan.accrue(accrue, T0, kind="accrue", source="sale", sale=THIS_SALE,
                        activates_at=T0 + dt.timedelta(days=14) if pending else T0,
                        expires_at=T0 + dt.timedelta(days=300))
        check_posting(plan.posting())
        db.apply(plan.posting(), sale=sale)
        check_ledger(db)
        done.append((sale, spend, accrue))
    order.shuffle(done)
    for sale, spent, accrued in done:
        parts = [(accrued // 2, spent // 2), (accrued - accrued // 2, spent - spent // 2)] if partial else [(accrued, spent)]
        for claw, refund in parts:
            plan = Plan(db.view(sale), T0)
            facts = db.facts(sale)
            back = plan.claw_back(facts, claw, sale_return=None, reason="return", write_off=write_off)
            assert back.taken + back.debt + back.expired == claw and back.expired == 0
            plan.refund(facts, refund, T0, sale_return=None, reason="return")
            check_posting(plan.posting())
            db.apply(plan.posting(), sale=sale)
            check_ledger(db)
    if write_off:
        assert db.debt == 0 and db.active + db.pending >= welcome
    else:
        assert (db.active + db.pending, db.debt) == (welcome, 0)


def test_a_posting_is_plain_data() -> None:
    """What the writer sends: the posting encodes to JSON and back unchanged (entries and lot changes as arrays)."""
    db = Ledger()
    opening(db, [(100, False, 30), (50, True, 60)])
    plan = Plan(db.view(), T0)
    plan.spend(70, reason="receipt", sale=THIS_SALE)
    plan.accrue(10, T0, kind="accrue", source="sale", activates_at=T0, expires_at=None, sale=THIS_SALE)
    plan.message("points_accrued", {"points": 10, "sale_id": THIS_SALE}, customer=1, card=2)
    posting = plan.posting()
    assert msgspec.json.decode(msgspec.json.encode(posting), type=Posting) == posting


@settings(max_examples=200, deadline=None)
@given(lots=lots_st, other=lots_st, owed=st.integers(0, 300), days=st.integers(0, 30))
def test_a_merge_moves_every_live_point_and_the_debt_keeping_their_dates(lots, other, owed, days) -> None:
    source, target = Ledger(), Ledger()
    opening(source, lots)
    opening(target, other)
    if owed:  # a debt recorded by an earlier return (its owing lot need not be live)
        plan = Plan(source.view(), T0)
        plan._entry(None, "debt", "debt", owed)
        plan._move(debt=owed)
        source.apply(plan.posting())
    now = T0 + dt.timedelta(days=days)
    out, into = Plan(source.view(), now), Plan(target.view(), now)
    out.settle(now)
    into.settle(now)
    before = (out.view.active + into.view.active, out.view.pending + into.view.pending, out.view.debt + into.view.debt)
    moved, debts = out.transfer_out("merge")
    into.transfer_in(moved, sum(d.owed for d in debts), "merge")
    for plan, db in ((out, source), (into, target)):
        check_posting(plan.posting())
        db.apply(plan.posting())
        check_ledger(db)
    assert (source.active, source.pending, source.debt) == (0, 0, 0)
    assert (target.active, target.pending, target.debt) == before
    dates = sorted((lot["activates_at"], lot["expires_at"], lot["remaining"]) for lot in target.lots.values()
                   if lot["source"] == "transfer")
    assert dates == sorted((lot.activates_at, lot.expires_at, lot.remaining) for lot in moved)
