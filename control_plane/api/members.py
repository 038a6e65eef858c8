"""Controllers of tenant membership: members, invitations, and accepting an invitation."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.api.authz import AUTHENTICATED, SCOPE, principal_of
from control_plane.errors import PermissionDenied
from control_plane.identity.members import (
    CreatedInvitation,
    InvitationAccept,
    InvitationCreate,
    InvitationRead,
    MemberCreate,
    MemberRead,
    MembershipService,
    MemberUpdate,
)


class MemberController(Controller):
    path = "/api/v1/tenants/{tenant_ref:str}/members"
    tags = ["members"]

    @get("/", opt={SCOPE: "members:read"})
    async def list_members(
        self, tenant_id: NamedDependency[str], members: NamedDependency[MembershipService]
    ) -> list[MemberRead]:
        """The tenant's members and their roles."""
        return await members.list_members(tenant_id)

    @post("/", status_code=HTTP_201_CREATED, opt={SCOPE: "members:admin"})
    async def add_member(
        self,
        tenant_id: NamedDependency[str],
        data: JSONBody[MemberCreate],
        members: NamedDependency[MembershipService],
    ) -> MemberRead:
        """Give an existing user a role (``owner``, ``admin`` or ``member``) in the tenant."""
        return await members.add(tenant_id, data)

    @patch("/{user_id:str}", opt={SCOPE: "members:admin"})
    async def change_member_role(
        self,
        tenant_id: NamedDependency[str],
        user_id: FromPath[str],
        data: JSONBody[MemberUpdate],
        members: NamedDependency[MembershipService],
    ) -> MemberRead:
        """Change a member's role; the last owner cannot be demoted."""
        return await members.change_role(tenant_id, user_id, data)

    @delete("/{user_id:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: "members:admin"})
    async def remove_member(
        self,
        tenant_id: NamedDependency[str],
        user_id: FromPath[str],
        members: NamedDependency[MembershipService],
    ) -> None:
        """Remove a member; the last owner cannot be removed."""
        await members.remove(tenant_id, user_id)


class InvitationController(Controller):
    path = "/api/v1/tenants/{tenant_ref:str}/invitations"
    tags = ["members"]

    @post("/", status_code=HTTP_201_CREATED, opt={SCOPE: "members:admin"})
    async def invite(
        self,
        request: Request[Any, Any, Any],
        tenant_id: NamedDependency[str],
        data: JSONBody[InvitationCreate],
        members: NamedDependency[MembershipService],
    ) -> CreatedInvitation:
        """Invite someone by email; the token is in this response only, works once and expires."""
        return await members.invite(tenant_id, data, principal_of(request).user_id)

    @get("/", opt={SCOPE: "members:admin"})
    async def list_invitations(
        self, tenant_id: NamedDependency[str], members: NamedDependency[MembershipService]
    ) -> list[InvitationRead]:
        """The tenant's invitations (without their tokens)."""
        return await members.list_invitations(tenant_id)

    @delete("/{invitation_id:str}", status_code=HTTP_204_NO_CONTENT, opt={SCOPE: "members:admin"})
    async def revoke_invitation(
        self,
        tenant_id: NamedDependency[str],
        invitation_id: FromPath[str],
        members: NamedDependency[MembershipService],
    ) -> None:
        """Revoke an invitation that was not accepted yet."""
        await members.revoke_invitation(tenant_id, invitation_id)


@post("/api/v1/invitations/accept", opt={SCOPE: AUTHENTICATED}, tags=["members"])
async def accept_invitation(
    request: Request[Any, Any, Any],
    data: JSONBody[InvitationAccept],
    members: NamedDependency[MembershipService],
) -> MemberRead:
    """Join a tenant with an invitation token, as the logged-in user it was sent to."""
    user_id = principal_of(request).user_id
    if user_id is None:
        raise PermissionDenied("invitations are accepted by a logged-in user, not a token")
    return await members.accept(data.token, user_id)
