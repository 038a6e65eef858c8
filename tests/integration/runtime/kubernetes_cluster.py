"""A Kubernetes API emulator (kmock) with the resources the control plane touches, and the
real ``kubernetes`` client pointed at it; tests play the operator through it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import kmock
import pytest
from kubernetes import client as k8s

TENANTS = "tenantry.dev/v1alpha1/tenants"


class Cluster:
    def __init__(self, emulator: kmock.KubernetesEmulator, api: k8s.ApiClient) -> None:
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


def register(emulator: kmock.KubernetesEmulator) -> None:
    """The resources the control plane touches."""
    emulator.resources[TENANTS] = kmock.ResourceInfo(
        kind="Tenant", namespaced=True, subresources={"status"}
    )
    emulator.resources["v1/secrets"] = kmock.ResourceInfo(kind="Secret", namespaced=True)


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
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
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
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
