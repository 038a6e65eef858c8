"""A Kubernetes API emulator (kmock) with the resources the control plane touches, and the
real ``kubernetes`` client pointed at it; tests play the operator through it."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp.web
import attrs
import kmock
import pytest
from kubernetes import client as k8s

TENANTS = "tenantry.dev/v1alpha1/tenants"


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the cluster-scoped Namespaces, which kmock 0.8 cannot serve (it
    reads ``/api/v1/namespaces/<name>`` as a path inside a namespace): create (409 if it
    exists), read, list and delete, as the API server answers them."""

    namespaces: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = raw_request.path.strip("/").split("/")
        if parts[:3] != ["api", "v1", "namespaces"] or len(parts) > 4:
            return await super().__call__(raw_request)
        name = parts[3] if len(parts) == 4 else None
        body = await raw_request.read()
        return _namespace_response(self.namespaces, raw_request.method, name, body)


def _namespace_response(
    namespaces: dict[str, dict[str, Any]], method: str, name: str | None, body: bytes
) -> aiohttp.web.Response:
    if method == "POST" and name is None:
        created: dict[str, Any] = json.loads(body)
        name = str(created["metadata"]["name"])
        if name in namespaces:
            return _status(409, "AlreadyExists", f'namespaces "{name}" already exists')
        namespaces[name] = {**created, "status": {"phase": "Active"}}
        return aiohttp.web.json_response(namespaces[name], status=201)
    if method == "GET" and name is None:
        listed = {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}}
        return aiohttp.web.json_response({**listed, "items": list(namespaces.values())})
    if name not in namespaces:
        return _status(404, "NotFound", f'namespaces "{name}" not found')
    if method == "GET":
        return aiohttp.web.json_response(namespaces[name])
    if method == "DELETE":
        deleted = namespaces.pop(name)
        return aiohttp.web.json_response({**deleted, "status": {"phase": "Terminating"}})
    return _status(405, "MethodNotAllowed", f"{method} is not served for namespaces here")


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    status = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "metadata": {}}
    body = {**status, "code": code, "reason": reason, "message": message}
    return aiohttp.web.json_response(body, status=code)


class Cluster:
    def __init__(self, emulator: Emulator, api: k8s.ApiClient) -> None:
        self.emulator = emulator
        self.api = api
        self.custom: Any = k8s.CustomObjectsApi(api)

    async def tenant(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await asyncio.to_thread(
                self.custom.get_namespaced_custom_object,
                "tenantry.dev",
                "v1alpha1",
                namespace,
                "tenants",
                name,
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def emulator_secret(self, namespace: str, name: str) -> dict[str, Any]:
        secret = k8s.CoreV1Api(self.api).read_namespaced_secret(name, namespace)
        return {"data": dict(secret.data or {})}

    async def set_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object_status,
            "tenantry.dev",
            "v1alpha1",
            namespace,
            "tenants",
            name,
            {"status": status},
        )

    async def delete_tenant(self, namespace: str, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_namespaced_custom_object,
            "tenantry.dev",
            "v1alpha1",
            namespace,
            "tenants",
            name,
        )

    def tenant_requests(self, action: kmock.action) -> list[kmock.Request]:
        """The requests of one kind (``kmock.action.LIST``, ``.WATCH``) made for Tenants."""
        return list(self.emulator[action][kmock.resource(TENANTS)])


def register(emulator: kmock.KubernetesEmulator) -> None:
    """The resources the control plane touches."""
    emulator.resources[TENANTS] = kmock.ResourceInfo(
        kind="Tenant", namespaced=True, subresources={"status"}
    )
    emulator.resources["v1/secrets"] = kmock.ResourceInfo(kind="Secret", namespaced=True)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        register(emulator)
        api = k8s.ApiClient(k8s.Configuration(host=str(server.url).rstrip("/")))
        yield Cluster(emulator, api)


@pytest.fixture
def threaded_cluster() -> Iterator[Cluster]:
    """The emulator on its own thread and event loop: for tests whose app runs in a test
    client that blocks the test's own loop while it starts (Litestar's AsyncTestClient)."""
    ready = threading.Event()
    held: dict[str, Any] = {}

    async def serve() -> None:
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            register(emulator)
            held.update(
                emulator=emulator,
                url=str(server.url).rstrip("/"),
                loop=asyncio.get_running_loop(),
                stop=asyncio.Event(),
            )
            ready.set()
            await held["stop"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="kmock", daemon=True)
    thread.start()
    assert ready.wait(30), "the emulator did not start"
    try:
        yield Cluster(held["emulator"], k8s.ApiClient(k8s.Configuration(host=held["url"])))
    finally:
        held["loop"].call_soon_threadsafe(held["stop"].set)
        thread.join(30)
