"""The ledger's invariants, checked over all accounts in SQL (`kopilka ledger verify`, property tests)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from loyalty_core import db


class Violation(msgspec.Struct, frozen=True):
    invariant: str
    subject: str
    detail: str


# each query returns rows (subject, detail) that break the named invariant
CHECKS: list[tuple[str, str]] = [
    (
        "account.active == sum(active lots' remaining)",
        "SELECT 'account ' || a.id AS subject, 'active=' || a.active || ' lots=' || COALESCE(l.s, 0) AS detail "
        "FROM account a LEFT JOIN (SELECT account, SUM(remaining) s FROM point_lot WHERE state IN ('active', 'spent') GROUP BY account) l "
        "ON l.account = a.id WHERE a.active <> COALESCE(l.s, 0)",
    ),
    (
        "account.pending == sum(pending lots' remaining)",
        "SELECT 'account ' || a.id, 'pending=' || a.pending || ' lots=' || COALESCE(l.s, 0) "
        "FROM account a LEFT JOIN (SELECT account, SUM(remaining) s FROM point_lot WHERE state = 'pending' GROUP BY account) l "
        "ON l.account = a.id WHERE a.pending <> COALESCE(l.s, 0)",
    ),
    (
        "account balances == sum(ledger entries into each bucket)",
        "SELECT 'account ' || a.id, 'active=' || a.active || '/' || COALESCE(e.act, 0) || ' pending=' || a.pending || '/' || COALESCE(e.pen, 0) "
        "FROM account a LEFT JOIN (SELECT account, SUM(amount) FILTER (WHERE bucket = 'active') act, "
        "SUM(amount) FILTER (WHERE bucket = 'pending') pen FROM ledger_entry GROUP BY account) e ON e.account = a.id "
        "WHERE a.active <> COALESCE(e.act, 0) OR a.pending <> COALESCE(e.pen, 0)",
    ),
    (
        "lot.remaining == sum(its ledger entries)",
        "SELECT 'lot ' || p.id, 'remaining=' || p.remaining || ' entries=' || COALESCE(e.s, 0) "
        "FROM point_lot p LEFT JOIN (SELECT lot, SUM(amount) s FROM ledger_entry WHERE lot IS NOT NULL "
        "AND bucket IN ('active', 'pending') GROUP BY lot) e "
        "ON e.lot = p.id WHERE p.remaining <> COALESCE(e.s, 0)",
    ),
    (
        "no balance or lot below zero",
        "SELECT 'account ' || id, 'active=' || active || ' pending=' || pending FROM account WHERE active < 0 OR pending < 0 "
        "UNION ALL SELECT 'lot ' || id, 'remaining=' || remaining || ' amount=' || amount FROM point_lot "
        "WHERE remaining < 0 OR remaining > amount",
    ),
    (
        "account.debt == sum(ledger entries into the debt bucket), never below zero, per lot too",
        "SELECT 'account ' || a.id, 'debt=' || a.debt || ' entries=' || COALESCE(e.s, 0) FROM account a "
        "LEFT JOIN (SELECT account, SUM(amount) s FROM ledger_entry WHERE bucket = 'debt' GROUP BY account) e "
        "ON e.account = a.id WHERE a.debt <> COALESCE(e.s, 0) OR a.debt < 0 "
        "UNION ALL SELECT 'account ' || account || ' lot ' || COALESCE(lot::text, '-'), 'owed=' || SUM(amount) "
        "FROM ledger_entry WHERE bucket = 'debt' GROUP BY account, lot HAVING SUM(amount) < 0",
    ),
    (
        "a debt is paid point for point: what left a lot or a refund to pay it == what it reduced",
        "SELECT 'account ' || account, 'paid from lots=' || COALESCE(-SUM(amount) FILTER (WHERE bucket <> 'debt'), 0) "
        "|| ' debt reduced=' || COALESCE(-SUM(amount) FILTER (WHERE bucket = 'debt'), 0) "
        "FROM ledger_entry WHERE kind = 'debt_paid' GROUP BY account "
        "HAVING COALESCE(SUM(amount) FILTER (WHERE bucket <> 'debt'), 0) <> COALESCE(SUM(amount) FILTER (WHERE bucket = 'debt'), 0)",
    ),
    (
        "a return never gives back more than was spent",
        "SELECT 'sale ' || sale, 'refunded=' || SUM(amount) FILTER (WHERE kind = 'return_refund') || "
        "' spent=' || -SUM(amount) FILTER (WHERE kind = 'redeem') FROM ledger_entry WHERE sale IS NOT NULL "
        "GROUP BY sale HAVING COALESCE(SUM(amount) FILTER (WHERE kind = 'return_refund'), 0) > "
        "COALESCE(-SUM(amount) FILTER (WHERE kind = 'redeem'), 0)",
    ),
    (
        "a return never takes back more than was accrued",
        "SELECT 'sale ' || s.id, 'accrued=' || s.accrued_points || ' clawed=' || COALESCE(r.c, 0) FROM sale s "
        "JOIN (SELECT sale, SUM(clawed_back_points) c FROM sale_return GROUP BY sale) r ON r.sale = s.id "
        "WHERE COALESCE(r.c, 0) > s.accrued_points",
    ),
    (
        "returned quantities never exceed the sale",
        "SELECT 'sale line ' || sl.id, 'sold=' || sl.quantity_milli || ' returned=' || COALESCE(r.q, 0) "
        "FROM sale_line sl JOIN sale_return sr ON sr.sale = sl.sale "
        "JOIN (SELECT rl.sale_return, rl.line_no, SUM(rl.quantity_milli) q FROM return_line rl GROUP BY 1, 2) r "
        "ON r.sale_return = sr.id AND r.line_no = sl.line_no "
        "GROUP BY sl.id, sl.quantity_milli, r.q HAVING SUM(r.q) > sl.quantity_milli",
    ),
    (
        # the foreign key was dropped: the confirm writes the sale and its lines in one statement
        "every sale line belongs to a sale",
        "SELECT 'sale line ' || sl.id, 'sale=' || sl.sale || ' does not exist' FROM sale_line sl "
        "WHERE NOT EXISTS (SELECT 1 FROM sale s WHERE s.id = sl.sale)",
    ),
    (
        # the foreign key was dropped: the ledger writer writes a lot and its entries in one statement
        "every ledger entry's lot is a lot of its account",
        "SELECT 'ledger entry ' || e.id, 'lot=' || e.lot || ' account=' || e.account || "
        "COALESCE(' (the lot is of account ' || p.account || ')', ' (no such lot)') FROM ledger_entry e "
        "LEFT JOIN point_lot p ON p.id = e.lot WHERE e.lot IS NOT NULL AND (p.id IS NULL OR p.account <> e.account)",
    ),
    (
        # the foreign keys were dropped: the ledger writer writes messages in the statement that stamps the pass
        "every message's customer and card exist",
        "SELECT 'notification ' || n.id, 'customer=' || COALESCE(n.customer::text, '-') || ' card=' || "
        "COALESCE(n.card::text, '-') FROM notification n "
        "WHERE (n.customer IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customer c WHERE c.id = n.customer)) "
        "OR (n.card IS NOT NULL AND NOT EXISTS (SELECT 1 FROM card c WHERE c.id = n.card))",
    ),
    (
        "every confirmed sale's accrual and redemption is applied exactly once",
        "SELECT 'sale ' || s.id, 'accrued=' || s.accrued_points || ' lots=' || COALESCE(l.a, 0) || "
        "' redeemed=' || s.redeemed_points || ' entries=' || COALESCE(e.r, 0) FROM sale s "
        "LEFT JOIN (SELECT sale, SUM(amount) a FROM point_lot WHERE source = 'sale' GROUP BY sale) l ON l.sale = s.id "
        "LEFT JOIN (SELECT sale, -SUM(amount) r FROM ledger_entry WHERE kind = 'redeem' GROUP BY sale) e ON e.sale = s.id "
        "WHERE s.account IS NOT NULL AND (s.accrued_points <> COALESCE(l.a, 0) OR s.redeemed_points <> COALESCE(e.r, 0))",
    ),
]


async def verify_all(progress: Callable[[int, int, str], None] | None = None, limit: int = 100) -> list[Violation]:
    """Run every invariant check; returns at most `limit` violations per invariant (empty: all good)."""
    violations: list[Violation] = []
    for i, (name, query) in enumerate(CHECKS, start=1):
        rows = await db.fetch(f"SELECT subject, detail FROM ({query}) AS q(subject, detail) LIMIT $1", int(limit))
        for row in rows:
            violations.append(Violation(invariant=name, subject=str(row["subject"]), detail=str(row["detail"])))
        if progress is not None:
            progress(i, len(CHECKS), name)
    return violations
