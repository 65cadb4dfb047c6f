"""The outbox (`notification`) partitioned by month on created_at (issue 17; docs/scaling.md, "Partitions").

- notification becomes a RANGE-partitioned table with the same columns; its rows are copied into monthly
  partitions notification_yYYYYmMM (from the oldest row's month to three months ahead) and a default partition
  for a row no month holds. The `partitions` job creates the months ahead from then on and drops the months
  past KOPILKA_NOTIFICATION_RETENTION_DAYS (loyalty_core/messaging/partitions.py).
- The primary key becomes (id, created_at): a unique index of a partitioned table must contain the partition
  key. The ids keep coming from notification_id_seq.
- The dedupe key (one 'points expiring' message per account and day, one 'tier at risk' per occurrence) cannot
  stay a unique index on notification for the same reason: the keys move to notification_dedupe, claimed by a
  BEFORE INSERT trigger that fires only for rows with a key (`WHEN`: rows without one, the till's, pay nothing)
  and drops a row whose key was claimed before: what `ON CONFLICT (dedupe_key) DO NOTHING` did, so the
  INSERTs lose that clause.
- notification_delivery's foreign key to notification(id) cannot be kept (no unique index on id alone): the
  `partitions` job deletes the delivery records of the messages it drops. Raw SQL, its own file.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-29T18:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification partitioned by month (created_at), dedupe keys in notification_dedupe"

FORWARDS = [
    "ALTER TABLE notification_delivery DROP CONSTRAINT IF EXISTS notification_delivery_notification_fkey",
    "ALTER TABLE notification RENAME TO notification_unpartitioned",
    "ALTER TABLE notification_unpartitioned RENAME CONSTRAINT notification_pkey TO notification_unpartitioned_pkey",
    "DROP INDEX IF EXISTS notification_due_idx",
    "DROP INDEX IF EXISTS notification_lease_idx",
    "DROP INDEX IF EXISTS notification_dedupe_uq",
    "CREATE TABLE notification (LIKE notification_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
    "PARTITION BY RANGE (created_at)",
    "ALTER TABLE notification ADD CONSTRAINT notification_pkey PRIMARY KEY (id, created_at)",
    "ALTER SEQUENCE notification_id_seq OWNED BY notification.id",
    "CREATE INDEX notification_due_idx ON notification (next_attempt_at, id) WHERE status = 'pending'",
    "CREATE INDEX notification_lease_idx ON notification (next_attempt_at, id) WHERE status = 'sending'",
    "CREATE TABLE notification_default PARTITION OF notification DEFAULT",
    """DO $$
DECLARE
  month date := date_trunc('month', COALESCE((SELECT min(created_at) FROM notification_unpartitioned), now())
                                    AT TIME ZONE 'UTC')::date;
  last date := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months')::date;
BEGIN
  WHILE month <= last LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF notification FOR VALUES FROM (%L) TO (%L)',
                   'notification_y' || to_char(month, 'YYYY') || 'm' || to_char(month, 'MM'),
                   month::text || ' 00:00:00+00', (month + interval '1 month')::date::text || ' 00:00:00+00');
    month := (month + interval '1 month')::date;
  END LOOP;
END $$""",
    "INSERT INTO notification SELECT * FROM notification_unpartitioned",
    "CREATE TABLE notification_dedupe (key varchar(100) PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX notification_dedupe_created_idx ON notification_dedupe (created_at)",
    "INSERT INTO notification_dedupe (key, created_at) SELECT dedupe_key, min(created_at) FROM notification "
    "WHERE dedupe_key IS NOT NULL GROUP BY dedupe_key",
    "DROP TABLE notification_unpartitioned",
    """CREATE FUNCTION notification_claim_dedupe_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO notification_dedupe (key, created_at) VALUES (NEW.dedupe_key, NEW.created_at) ON CONFLICT DO NOTHING;
  IF NOT FOUND THEN
    RETURN NULL;  -- claimed before: this message was queued already, skip the row
  END IF;
  RETURN NEW;
END $$""",
    "CREATE TRIGGER notification_dedupe BEFORE INSERT ON notification FOR EACH ROW "
    "WHEN (NEW.dedupe_key IS NOT NULL) EXECUTE FUNCTION notification_claim_dedupe_key()",
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
