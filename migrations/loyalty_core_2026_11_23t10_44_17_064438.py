from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-23T10:44:17:064438"
VERSION = "1.38.0"
DESCRIPTION = "drop unused rule_group table: the versioned rules document is the only source"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="loyalty_core", description=DESCRIPTION
    )

    manager.drop_table(
        class_name="RuleGroup", tablename="rule_group", schema=None
    )

    return manager
