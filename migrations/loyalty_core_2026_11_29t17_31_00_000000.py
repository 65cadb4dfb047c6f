"""Segments and member events: codes unique per program, one static-list row per member, one attribute per key,
an event's occurrence claimed once per member (the member_events job's exactly-once key), and membership.segments
indexed for `segments @> ARRAY[code]` (campaigns and the recompute's removals)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T17:31:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "segments and member events: unique keys, membership.segments GIN index"

FORWARDS = [
    "CREATE UNIQUE INDEX segment_program_code_key ON segment (program, code)",
    "CREATE UNIQUE INDEX segment_static_member_key ON segment_static_member (segment, membership)",
    "CREATE UNIQUE INDEX member_attribute_key ON member_attribute (membership, key)",
    "CREATE INDEX member_attribute_key_value_idx ON member_attribute (key, value)",
    "CREATE UNIQUE INDEX member_event_occurrence_key ON member_event (membership, kind, occurrence)",
    "CREATE INDEX membership_segments_gin ON membership USING gin (segments)",
    "CREATE INDEX consent_customer_channel_idx ON consent (customer, channel, changed_at DESC, id DESC)",
    "ALTER TABLE segment ADD CONSTRAINT segment_kind_check CHECK (kind IN ('static', 'dynamic'))",
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
