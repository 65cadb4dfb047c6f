from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from enum import Enum
from piccolo.columns.column_types import Varchar

ID = "2026-11-29T18:25:15:410081"
VERSION = "1.38.0"
DESCRIPTION = "States as Enums: choices on the Piccolo columns (no SQL; the CHECKs are the next migration)"


async def forwards():
    manager = MigrationManager(
        migration_id=ID, app_name="loyalty_core", description=DESCRIPTION
    )

    manager.alter_column(
        table_class_name="Card",
        tablename="card",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "CardStatus",
                {
                    "emitted": "emitted",
                    "active": "active",
                    "blocked": "blocked",
                    "replaced": "replaced",
                },
            )
        },
        old_params={"choices": None},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Coupon",
        tablename="coupon",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "CouponStatus",
                {"active": "active", "used": "used", "cancelled": "cancelled"},
            )
        },
        old_params={"choices": None},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Customer",
        tablename="customer",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "CustomerStatus", {"active": "active", "deleted": "deleted"}
            )
        },
        old_params={"choices": None},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Membership",
        tablename="membership",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "MembershipStatus",
                {
                    "anonymous": "anonymous",
                    "pending": "pending",
                    "active": "active",
                    "closed": "closed",
                },
            )
        },
        old_params={"choices": None},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="PointLot",
        tablename="point_lot",
        column_name="state",
        db_column_name="state",
        params={
            "choices": Enum(
                "LotState",
                {
                    "pending": "pending",
                    "active": "active",
                    "expired": "expired",
                    "spent": "spent",
                },
            )
        },
        old_params={"choices": None},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    manager.alter_column(
        table_class_name="Sale",
        tablename="sale",
        column_name="status",
        db_column_name="status",
        params={
            "choices": Enum(
                "SaleStatus", {"confirmed": "confirmed", "cancelled": "cancelled"}
            )
        },
        old_params={"choices": None},
        column_class=Varchar,
        old_column_class=Varchar,
        schema=None,
    )

    return manager
