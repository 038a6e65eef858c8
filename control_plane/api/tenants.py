"""Controllers of ``/api/v1/tenants``: tenants, their events and gateway keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from control_plane.api.authz import AUTHENTICATED, SCOPE, principal_of
from control_plane.tenants.events import EventSignal
from control_plane.tenants.keys import GatewayKeyService
from control_plane.tenants.model_routes import ModelRoutes
from control_plane.tenants.schemas import (
    CreatedGatewayKey,
    GatewayKeyCreate,
    GatewayKeyRead,
    TenantCreate,
    TenantCreated,
    TenantEventRead,
    TenantPage,
    TenantRead,
    TenantUpdate,
)
from control_plane.tenants.service import TenantService
from control_plane.tenants.states import TenantState

KEEPALIVE_SECONDS = 15.0


class TenantController(Controller):
    path = "/api/v1/tenants"
    tags = ["tenants"]

    @post("/", status_code=HTTP_202_ACCEPTED, opt={SCOPE: "tenants:create"})
    async def create_tenant(
        self,
        data: JSONBody[TenantCreate],
        tenants: NamedDependency[TenantService],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", required=False, max_length=255)
        ] = None,
    ) -> TenantCreated:
        """Create a tenant; its gateway is provisioned in the background (state provisioning)."""
        return await tenants.create(data, idempotency_key)

    @get("/", opt={SCOPE: AUTHENTICATED})
    async def list_tenants(
        self,
        request: Request[Any, Any, Any],
        tenants: NamedDependency[TenantService],
        state_filter: Annotated[TenantState | None, QueryParameter(name="state")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> TenantPage:
        """The tenants the caller may see, in creation order; pass ``next_cursor`` back as
        ``cursor`` for the next page."""
        visible = principal_of(request).visible_tenants
        return await tenants.page(state_filter, limit, cursor, visible)

    @get("/{tenant_ref:str}", opt={SCOPE: "tenants:read"})
    async def get_tenant(
        self, tenant_id: NamedDependency[str], tenants: NamedDependency[TenantService]
    ) -> TenantRead:
        """A tenant by id or slug."""
        return await tenants.get(tenant_id)

    @patch("/{tenant_ref:str}", opt={SCOPE: "tenants:write"})
    async def update_tenant(
        self,
        tenant_id: NamedDependency[str],
        data: JSONBody[TenantUpdate],
        tenants: NamedDependency[TenantService],
    ) -> TenantRead:
        """Rename, change plan, suspend (``suspended: true``) or resume a tenant."""
        return await tenants.update(tenant_id, data)

    @get("/{tenant_ref:str}/model-routes", opt={SCOPE: "tenants:read"})
    async def get_model_routes(
        self, tenant_id: NamedDependency[str], tenants: NamedDependency[TenantService]
    ) -> ModelRoutes:
        """The tenant's model aliases and fallback chains."""
        return await tenants.model_routes(tenant_id)

    @put("/{tenant_ref:str}/model-routes", opt={SCOPE: "tenants:write"})
    async def put_model_routes(
        self,
        tenant_id: NamedDependency[str],
        data: JSONBody[ModelRoutes],
        tenants: NamedDependency[TenantService],
    ) -> ModelRoutes:
        """Replace the tenant's model aliases and fallback chains; its gateway follows within
        seconds, without a restart."""
        return await tenants.set_model_routes(tenant_id, data)

    @delete("/{tenant_ref:str}", status_code=HTTP_202_ACCEPTED, opt={SCOPE: "tenants:delete"})
    async def delete_tenant(
        self, tenant_id: NamedDependency[str], tenants: NamedDependency[TenantService]
    ) -> TenantRead:
        """Delete a tenant: state ``deleting``, then ``deleted`` once its gateway is gone."""
        return await tenants.delete(tenant_id)

    @get("/{tenant_ref:str}/events", opt={SCOPE: "tenants:read"})
    async def tenant_events(
        self,
        request: Request[Any, Any, Any],
        tenant_id: NamedDependency[str],
        tenants: NamedDependency[TenantService],
        signal: NamedDependency[EventSignal],
        after: Annotated[int, QueryParameter(ge=0)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500,
    ) -> Response[Any]:
        """The tenant's progress log; a live stream with ``Accept: text/event-stream``."""
        if "text/event-stream" not in request.headers.get("accept", ""):
            return Response(await tenants.events(tenant_id, after, limit))
        resume = request.headers.get("last-event-id", "")
        start = int(resume) if resume.isdigit() else after
        return ServerSentEvent(_event_stream(tenants, signal, tenant_id, start))


async def _event_stream(
    tenants: TenantService, signal: EventSignal, tenant_id: str, after: int
) -> AsyncIterator[ServerSentEventMessage]:
    last = after
    while True:
        events = await tenants.events(tenant_id, last)
        for event in events:
            last = event.id
            yield ServerSentEventMessage(
                data=msgspec.json.encode(event).decode(), event=event.type, id=str(event.id)
            )
            if event.type == "tenant.deleted":
                return
        if not events:
            await signal.wait(KEEPALIVE_SECONDS)
            if not await tenants.events(tenant_id, last, limit=1):
                yield ServerSentEventMessage(comment="keepalive")


class GatewayKeyController(Controller):
    path = "/api/v1/tenants/{tenant_ref:str}/gateway-keys"
    tags = ["gateway keys"]

    @post("/", status_code=HTTP_201_CREATED, opt={SCOPE: "gateway-keys:write"})
    async def create_gateway_key(
        self,
        tenant_id: NamedDependency[str],
        gateway_keys: NamedDependency[GatewayKeyService],
        data: JSONBody[GatewayKeyCreate | None] = None,
    ) -> CreatedGatewayKey:
        """Create a gateway key; the value is in this response only."""
        return await gateway_keys.create(tenant_id, data or GatewayKeyCreate())

    @get("/", opt={SCOPE: "gateway-keys:read"})
    async def list_gateway_keys(
        self,
        tenant_id: NamedDependency[str],
        gateway_keys: NamedDependency[GatewayKeyService],
    ) -> list[GatewayKeyRead]:
        """The tenant's gateway keys, masked."""
        return await gateway_keys.list_keys(tenant_id)

    @delete("/{key_id:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: "gateway-keys:write"})
    async def revoke_gateway_key(
        self,
        tenant_id: NamedDependency[str],
        key_id: FromPath[str],
        gateway_keys: NamedDependency[GatewayKeyService],
    ) -> None:
        """Revoke a key; the gateway refuses it within about a second."""
        await gateway_keys.revoke(tenant_id, key_id)


# Referenced so the OpenAPI schema documents the event shape.
__all__ = ["GatewayKeyController", "TenantController", "TenantEventRead"]
