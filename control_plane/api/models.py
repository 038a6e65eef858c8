"""Controllers of the model catalog: ``/api/v1/models`` for platform admins, and
``/api/v1/tenants/{id}/models`` for a tenant's people (what its plan lets it call)."""

from __future__ import annotations

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.api.authz import SCOPE
from control_plane.catalog.schemas import (
    AvailableModel,
    PlatformModelCreate,
    PlatformModelRead,
    PlatformModelUpdate,
)
from control_plane.catalog.service import ModelCatalog
from control_plane.tenants.service import TenantService


class ModelCatalogController(Controller):
    path = "/api/v1/models"
    tags = ["model catalog"]

    @post("/", status_code=HTTP_201_CREATED, opt={SCOPE: "models:write"})
    async def create_model(
        self, data: JSONBody[PlatformModelCreate], catalog: NamedDependency[ModelCatalog]
    ) -> PlatformModelRead:
        """Register a model the fleet serves; running gateways get it within seconds."""
        return await catalog.create(data)

    @get("/", opt={SCOPE: "models:read"})
    async def list_models(self, catalog: NamedDependency[ModelCatalog]) -> list[PlatformModelRead]:
        """Every catalog entry, enabled or not, by name."""
        return await catalog.list_all()

    @get("/{model_ref:str}", opt={SCOPE: "models:read"})
    async def get_model(
        self, model_ref: FromPath[str], catalog: NamedDependency[ModelCatalog]
    ) -> PlatformModelRead:
        """One entry by id or name."""
        return await catalog.get(model_ref)

    @patch("/{model_ref:str}", opt={SCOPE: "models:write"})
    async def update_model(
        self,
        model_ref: FromPath[str],
        data: JSONBody[PlatformModelUpdate],
        catalog: NamedDependency[ModelCatalog],
    ) -> PlatformModelRead:
        """Change the fields given (``null`` clears ``served_model_name``/``context_length``)."""
        return await catalog.update(model_ref, data)

    @delete("/{model_ref:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: "models:write"})
    async def delete_model(
        self, model_ref: FromPath[str], catalog: NamedDependency[ModelCatalog]
    ) -> None:
        """Remove an entry; gateways stop offering it within seconds."""
        await catalog.delete(model_ref)


@get("/api/v1/tenants/{tenant_ref:str}/models", opt={SCOPE: "tenants:read"}, tags=["model catalog"])
async def tenant_models(
    tenant_id: NamedDependency[str],
    tenants: NamedDependency[TenantService],
    catalog: NamedDependency[ModelCatalog],
) -> list[AvailableModel]:
    """The catalog's enabled models the tenant's plan allows, with their prices."""
    tenant = await tenants.get(tenant_id)
    return await catalog.available(tenant.plan)
