"""The shopper's profile, consents, programs, push devices and account deletion."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.params import PathParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from backend.api.guards import (
    SHOPPER_DEPENDENCIES,
    Now,
    ProgramCode,
    Shopper,
    shopper_guard,
)
from loyalty_core.members import profile as members
from loyalty_core.members.identity import (
    Code,
    Registered,
    join_program,
    resolve_program,
)


class JoinIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    referral_code: Code | None = None


class ProfileController(Controller):
    path = "/me"
    tags = ["shopper profile"]
    guards = [shopper_guard]
    dependencies = SHOPPER_DEPENDENCIES

    @get("/")
    async def show(self, shopper: Shopper) -> members.Profile:
        return await members.profile(shopper.customer_id)

    @patch("/")
    async def update(self, shopper: Shopper, data: members.ProfileUpdate, now: Now) -> members.Profile:
        """Name and language any time; the birth date once (a correction goes through support: 409
        `birth-date-locked`)."""
        return await members.update_profile(shopper.customer_id, data, now)

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def delete_account(self, shopper: Shopper, now: Now) -> None:
        """Anonymise the personal data, keep the ledger, close every session."""
        await members.delete_account(shopper.customer_id, now)

    @post("/memberships", status_code=HTTP_200_OK)
    async def join(self, shopper: Shopper, data: JoinIn, now: Now, program: ProgramCode = None) -> Registered:
        """Join another program of the chain (or get the existing membership)."""
        return await join_program(shopper.customer_id, await resolve_program(program), "app", now, data.referral_code)

    @get("/consents")
    async def consents(self, shopper: Shopper) -> members.Consents:
        return await members.consents(shopper.customer_id)

    @put("/consents")
    async def change_consents(self, shopper: Shopper, data: members.ConsentUpdate, now: Now) -> members.Consents:
        return await members.change_consents(shopper.customer_id, data, now)

    @get("/devices")
    async def devices(self, shopper: Shopper) -> list[members.Device]:
        return await members.devices(shopper.customer_id)

    @post("/devices")
    async def register_device(self, shopper: Shopper, data: members.DeviceIn, now: Now) -> members.Device:
        """Register an APNs or FCM push token for this shopper (idempotent)."""
        return await members.register_device(shopper.customer_id, data, now)

    @delete("/devices/{device_id:int}", status_code=HTTP_204_NO_CONTENT)
    async def unregister_device(
        self, shopper: Shopper, device_id: Annotated[int, PathParameter(name="device_id", ge=1, le=2**31 - 1)]
    ) -> None:
        await members.unregister_device(shopper.customer_id, device_id)
