import os

from piccolo.conf.apps import AppConfig, table_finder

HERE = os.path.dirname(os.path.abspath(__file__))

APP_CONFIG = AppConfig(
    app_name="loyalty_core",
    migrations_folder_path=os.path.join(os.path.dirname(HERE), "migrations"),
    table_classes=table_finder(modules=["loyalty_core.tables"], exclude_imported=True),
    migration_dependencies=[],
    commands=[],
)
