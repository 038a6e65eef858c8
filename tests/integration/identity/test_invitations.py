"""Accepting an invitation, on SQLite and PostgreSQL: the invited person, logged in with the
invited email, joins the inviting tenant with the invited role, once; an expired token, a
used token and another person's login are refused, and an invitation of tenant B never
opens tenant A. Two accepts at once make exactly one membership."""

from __future__ import annotations

from typing import Any

from tests.integration.identity.conftest import Api

ACCEPT = "/api/v1/invitations/accept"


async def invite(api: Api, tenant: dict[str, Any], email: str, role: str) -> dict[str, Any]:
    made = await api.client.post(
        f"/api/v1/tenants/{tenant['id']}/invitations",
        json={"email": email, "role": role},
        headers=api.admin,
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def session_of(api: Api, email: str) -> dict[str, str]:
    return api.bearer((await api.login(email))["access_token"])


async def memberships(api: Api, headers: dict[str, str]) -> list[tuple[str, str]]:
    me = await api.client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 200, me.text
    return sorted((m["tenant_id"], m["role"]) for m in me.json()["memberships"])


async def members_of(api: Api, tenant: dict[str, Any]) -> list[tuple[str, str]]:
    listed = await api.client.get(f"/api/v1/tenants/{tenant['id']}/members", headers=api.admin)
    return [(m["email"], m["role"]) for m in listed.json()]


def refused(answer: Any, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert words in answer.json()["detail"], answer.json()


async def test_the_invited_person_joins_with_the_invited_role(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    carol = await api.make_user("carol@example.com")
    invitation = await invite(api, acme, "Carol@Example.com", "admin")
    carol_session = await session_of(api, "carol@example.com")
    assert (await api.client.get("/api/v1/tenants/acme", headers=carol_session)).status_code == 404

    accepted = await api.client.post(
        ACCEPT, json={"token": invitation["token"]}, headers=carol_session
    )
    assert accepted.status_code == 201, accepted.text
    assert (accepted.json()["user_id"], accepted.json()["role"]) == (carol["id"], "admin")
    assert await memberships(api, carol_session) == [(acme["id"], "admin")]
    assert await members_of(api, acme) == [
        ("owner@acme.example", "owner"),
        ("carol@example.com", "admin"),
    ]
    # The role's rights hold at once, and no more than the role's.
    credentials = await api.client.get("/api/v1/tenants/acme/credentials", headers=carol_session)
    assert credentials.status_code == 200, credentials.text
    deleting = await api.client.delete("/api/v1/tenants/acme", headers=carol_session)
    refused(deleting, 403, "tenants:delete")

    listed = await api.client.get(f"/api/v1/tenants/{acme['id']}/invitations", headers=api.admin)
    assert listed.json()[0]["accepted_at"] is not None
    entries = await api.client.get(
        f"/api/v1/tenants/{acme['id']}/audit",
        params={"action": "invitation.accept"},
        headers=api.admin,
    )
    [entry] = entries.json()
    assert (entry["actor_id"], entry["target"], entry["outcome"]) == (
        carol["id"],
        invitation["id"],
        "success",
    )
    assert invitation["token"] not in str(entries.json())


async def test_a_used_token_is_refused(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    await api.make_user("carol@example.com")
    invitation = await invite(api, acme, "carol@example.com", "member")
    carol_session = await session_of(api, "carol@example.com")
    first = await api.client.post(
        ACCEPT, json={"token": invitation["token"]}, headers=carol_session
    )
    assert first.status_code == 201, first.text

    again = await api.client.post(
        ACCEPT, json={"token": invitation["token"]}, headers=carol_session
    )
    refused(again, 409, "already used")
    assert await memberships(api, carol_session) == [(acme["id"], "member")]


async def test_an_expired_token_is_refused(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    await api.make_user("carol@example.com")
    invitation = await invite(api, acme, "carol@example.com", "member")
    api.clock.advance(7 * 86400 + 1)
    carol_session = await session_of(api, "carol@example.com")

    late = await api.client.post(ACCEPT, json={"token": invitation["token"]}, headers=carol_session)
    refused(late, 409, "expired")
    assert await memberships(api, carol_session) == []
    assert await members_of(api, acme) == [("owner@acme.example", "owner")]


async def test_a_token_is_refused_to_another_person(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    await api.make_user("carol@example.com")
    await api.make_user("dave@example.com")
    invitation = await invite(api, acme, "carol@example.com", "owner")
    dave_session = await session_of(api, "dave@example.com")

    stolen = await api.client.post(
        ACCEPT, json={"token": invitation["token"]}, headers=dave_session
    )
    refused(stolen, 403, "another email")
    assert await memberships(api, dave_session) == []
    assert (await api.client.get("/api/v1/tenants/acme", headers=dave_session)).status_code == 404
    # The refusal did not use the invitation up: Carol still joins with it.
    carol_session = await session_of(api, "carol@example.com")
    joined = await api.client.post(
        ACCEPT, json={"token": invitation["token"]}, headers=carol_session
    )
    assert joined.status_code == 201, joined.text


async def test_an_invitation_of_tenant_b_never_opens_tenant_a(api: Api) -> None:
    await api.make_user("owner@alpha.example")
    await api.make_user("owner@bravo.example")
    alpha = await api.make_tenant("alpha", "owner@alpha.example", "owner")
    bravo = await api.make_tenant("bravo", "owner@bravo.example", "owner")
    await api.make_user("eve@example.com")
    alpha_invitation = await invite(api, alpha, "someone@example.com", "member")
    bravo_invitation = await invite(api, bravo, "eve@example.com", "owner")
    eve = await session_of(api, "eve@example.com")

    joined = await api.client.post(ACCEPT, json={"token": bravo_invitation["token"]}, headers=eve)
    assert joined.status_code == 201, joined.text
    assert await memberships(api, eve) == [(bravo["id"], "owner")]
    assert await members_of(api, alpha) == [("owner@alpha.example", "owner")]
    for path in ("", "/members", "/invitations", "/audit"):
        answer = await api.client.get(f"/api/v1/tenants/{alpha['id']}{path}", headers=eve)
        refused(answer, 404, "no tenant")
    # As B's owner, Eve cannot reach A's invitations through B's routes either.
    through_b = await api.client.delete(
        f"/api/v1/tenants/{bravo['id']}/invitations/{alpha_invitation['id']}", headers=eve
    )
    refused(through_b, 404, "no invitation")
    alpha_invitations = await api.client.get(
        f"/api/v1/tenants/{alpha['id']}/invitations", headers=api.admin
    )
    assert [(i["id"], i["revoked_at"]) for i in alpha_invitations.json()] == [
        (alpha_invitation["id"], None)
    ]


async def test_two_accepts_at_once_make_one_membership(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    await api.make_user("carol@example.com")
    invitation = await invite(api, acme, "carol@example.com", "admin")
    carol_session = await session_of(api, "carol@example.com")

    same = {"json": {"token": invitation["token"]}, "headers": carol_session}
    answers = await api.at_once(("POST", ACCEPT, same), ("POST", ACCEPT, same))
    assert sorted(a.status_code for a in answers) == [201, 409], [a.text for a in answers]
    assert await members_of(api, acme) == [
        ("owner@acme.example", "owner"),
        ("carol@example.com", "admin"),
    ]
    accepted = await api.client.get(
        f"/api/v1/tenants/{acme['id']}/audit",
        params={"action": "invitation.accept"},
        headers=api.admin,
    )
    assert len(accepted.json()) == 1


async def test_two_invitations_accepted_at_once_make_one_membership(api: Api) -> None:
    await api.make_user("owner@acme.example")
    acme = await api.make_tenant("acme", "owner@acme.example", "owner")
    await api.make_user("carol@example.com")
    as_member = await invite(api, acme, "carol@example.com", "member")
    as_admin = await invite(api, acme, "carol@example.com", "admin")
    carol_session = await session_of(api, "carol@example.com")

    answers = await api.at_once(
        *(
            ("POST", ACCEPT, {"json": {"token": made["token"]}, "headers": carol_session})
            for made in (as_member, as_admin)
        )
    )
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    # Whichever came first, the higher role stands and the person is a member once.
    assert await members_of(api, acme) == [
        ("owner@acme.example", "owner"),
        ("carol@example.com", "admin"),
    ]
