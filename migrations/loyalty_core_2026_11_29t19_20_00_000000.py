"""Program reports' aggregates (loyalty_core/reports, docs/back-office.md "Finance reports"): cost per rule, loyalty
share per store, registrations and active members, members per tier and tier moves, coupon redemption.

Derived data kept by the `reports` job (nothing else writes them), plain tables as the ledger's aggregates are:
- report_rule_day: what each rule gave on the sales (the sale's stored `applied` rules), per program, local day,
  store and rule: points (sales with a card only: the ones the ledger accrued) and discounts;
- report_sale_day: receipts and their amount per program, local day, store, with a card or without;
- report_member_day: registrations per program, local day of joining, channel and tier (the member's tier now);
- report_active: members who bought, per program, grain (day / week / month), period and tier;
- report_tier_day: members per tier as counted by each refresh (one row per program, local day and tier);
- report_tier_move_day: tier changes (the `tier_changed` messages) per program, local day and tier reached;
- report_coupon_day: codes issued and redemptions per program, local day and coupon series;
- indexes on the times the refresh re-sums from: sale, coupon and coupon_use.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T19:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "program reports: rules, loyalty share, members, tiers, coupons"

FORWARDS = [
    "CREATE TABLE report_rule_day (program integer NOT NULL, day date NOT NULL, store integer NOT NULL, "
    "rule varchar(64) NOT NULL, name varchar(200) NOT NULL, points bigint NOT NULL, discount bigint NOT NULL, "
    "sales integer NOT NULL, PRIMARY KEY (program, day, store, rule))",
    "CREATE TABLE report_sale_day (program integer NOT NULL, day date NOT NULL, store integer NOT NULL, "
    "carded boolean NOT NULL, receipts integer NOT NULL, amount bigint NOT NULL, "
    "PRIMARY KEY (program, day, store, carded))",
    "CREATE TABLE report_member_day (program integer NOT NULL, day date NOT NULL, channel varchar(16) NOT NULL, "
    "tier integer NOT NULL, registered integer NOT NULL, PRIMARY KEY (program, day, channel, tier))",
    "CREATE TABLE report_active (program integer NOT NULL, grain varchar(5) NOT NULL, period date NOT NULL, "
    "tier integer NOT NULL, members integer NOT NULL, PRIMARY KEY (program, grain, period, tier))",
    "CREATE TABLE report_tier_day (program integer NOT NULL, day date NOT NULL, tier integer NOT NULL, "
    "members integer NOT NULL, PRIMARY KEY (program, day, tier))",
    "CREATE TABLE report_tier_move_day (program integer NOT NULL, day date NOT NULL, tier varchar(32) NOT NULL, "
    "up integer NOT NULL, down integer NOT NULL, PRIMARY KEY (program, day, tier))",
    "CREATE TABLE report_coupon_day (program integer NOT NULL, day date NOT NULL, series integer NOT NULL, "
    "issued integer NOT NULL, redemptions integer NOT NULL, PRIMARY KEY (program, day, series))",
    "CREATE INDEX IF NOT EXISTS sale_created_idx ON sale (created_at)",
    "CREATE INDEX IF NOT EXISTS coupon_issued_idx ON coupon (issued_at)",
    "CREATE INDEX IF NOT EXISTS coupon_use_used_idx ON coupon_use (used_at)",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="loyalty_core", description=DESCRIPTION)
    for statement in FORWARDS:
        manager.add_raw(_raw(statement))
    return manager


def _raw(statement: str):
    from loyalty_core.piccolo_conf import DB

    async def run():
        await DB.run_ddl(statement)

    return run
