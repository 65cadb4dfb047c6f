"""Operator API for set-up: catalog import, stores and till keys, card series emission."""

from __future__ import annotations

from litestar import Controller, post
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.admin.auth import require_roles
from loyalty_core.setup import catalog as catalog_admin
from loyalty_core.setup.catalog import CatalogIn, CatalogOut, EmitIn, EmitOut, StoreIn, StoreOut, TillKeyOut

IMPORT = [require_roles("import")]


class SetupController(Controller):
    path = "/admin/v1"
    tags = ["operator set-up"]

    @post("/catalog", guards=IMPORT, status_code=HTTP_200_OK, summary="Upsert categories, brands and products")
    async def catalog(self, data: CatalogIn) -> CatalogOut:
        return await catalog_admin.import_catalog(data)

    @post("/stores", guards=IMPORT, status_code=HTTP_201_CREATED, summary="Open a store")
    async def store(self, data: StoreIn) -> StoreOut:
        return await catalog_admin.create_store(data)

    @post("/stores/{store:str}/tills/{till:str}/keys", guards=[require_roles("admin")], status_code=HTTP_201_CREATED,
          summary="A new key for a till (shown once)")
    async def till_key(self, store: str, till: str) -> TillKeyOut:
        return await catalog_admin.issue_till_key(store, till)

    @post("/cards/emit", guards=[require_roles("import", "marketer")], status_code=HTTP_201_CREATED,
          summary="Emit a series of unregistered cards")
    async def emit(self, data: EmitIn) -> EmitOut:
        return await catalog_admin.emit_cards(data)


ROUTES = [SetupController]
