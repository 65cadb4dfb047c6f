"""Constraints Piccolo's column API cannot express: composite uniques, checks, and the hot indexes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-23T09:36:50:063603"
VERSION = "1.38.0"
DESCRIPTION = "constraints and indexes"

FORWARDS = [
    # one membership per customer and program; one account per membership and currency
    "CREATE UNIQUE INDEX membership_customer_program_uq ON membership (customer, program) WHERE customer IS NOT NULL",
    "CREATE UNIQUE INDEX account_membership_currency_uq ON account (membership, currency)",
    "CREATE UNIQUE INDEX tier_program_code_uq ON tier (program, code)",
    "CREATE UNIQUE INDEX till_store_code_uq ON till (store, code)",
    "CREATE UNIQUE INDEX rule_group_program_code_uq ON rule_group (program, code)",
    "CREATE UNIQUE INDEX rules_version_program_version_uq ON rules_version (program, version)",
    # the till's own receipt identity: a replay can never create a second sale
    "CREATE UNIQUE INDEX sale_receipt_uq ON sale (store, till, business_date, receipt_id)",
    "CREATE UNIQUE INDEX sale_line_uq ON sale_line (sale, line_no)",
    "CREATE UNIQUE INDEX sale_return_uq ON sale_return (sale, return_id)",
    "CREATE UNIQUE INDEX idempotency_scope_key_uq ON idempotency_record (scope, key)",
    "CREATE UNIQUE INDEX pass_registration_uq ON pass_registration (card, device_library_id)",
    "CREATE UNIQUE INDEX push_device_uq ON push_device (platform, token)",
    # the ledger never goes below zero, whatever the code above it does
    "ALTER TABLE account ADD CONSTRAINT account_active_nonneg CHECK (active >= 0)",
    "ALTER TABLE account ADD CONSTRAINT account_pending_nonneg CHECK (pending >= 0)",
    "ALTER TABLE point_lot ADD CONSTRAINT point_lot_remaining_range CHECK (remaining >= 0 AND remaining <= amount)",
    "ALTER TABLE sale_line ADD CONSTRAINT sale_line_returned_range CHECK (returned_quantity_milli >= 0 AND returned_quantity_milli <= quantity_milli)",
    # hot paths: redemption (earliest expiry first), settle, history, tier window, outbox
    "CREATE INDEX point_lot_account_state_idx ON point_lot (account, state, expires_at, id)",
    "CREATE INDEX point_lot_due_activation_idx ON point_lot (activates_at) WHERE state = 'pending'",
    "CREATE INDEX point_lot_due_expiry_idx ON point_lot (expires_at) WHERE state = 'active'",
    "CREATE INDEX point_lot_sale_idx ON point_lot (sale) WHERE sale IS NOT NULL",
    "CREATE INDEX ledger_entry_account_idx ON ledger_entry (account, id)",
    "CREATE INDEX ledger_entry_sale_idx ON ledger_entry (sale) WHERE sale IS NOT NULL",
    "CREATE INDEX sale_membership_idx ON sale (membership, occurred_at)",
    "CREATE INDEX card_membership_idx ON card (membership)",
    "CREATE INDEX membership_customer_idx ON membership (customer)",
    "CREATE INDEX notification_due_idx ON notification (next_attempt_at, id) WHERE status = 'pending'",
    "CREATE INDEX refresh_token_family_idx ON refresh_token (family)",
    "CREATE INDEX favourite_category_membership_idx ON favourite_category (membership, active)",
    "CREATE INDEX coupon_membership_idx ON coupon (membership) WHERE membership IS NOT NULL",
    # card numbers are emitted from one sequence so concurrent emissions never collide
    "CREATE SEQUENCE card_number_seq START 1",
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
