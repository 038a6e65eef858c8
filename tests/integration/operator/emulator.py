"""The Kubernetes API the operator's tests and benchmark run against: kmock's emulator with
what a real API server stamps on every write, and every resource the operator touches.

The tests serve :class:`ApiServerEmulator` from their own event loop (see ``conftest.py``).
The benchmark runs ``python -m tests.integration.operator.emulator``: a process of its own,
so that the emulator and the operator each get a core, serving :class:`LoadEmulator` (the
same API without kmock's record of every request) and printing ``listening <url>`` once it
serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import itertools
import signal
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp.web
import kmock

from operators.tenant.spec import GROUP, PLURAL, VERSION

TENANTS = f"{GROUP}/{VERSION}/{PLURAL}"
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}

RESOURCES = {
    TENANTS: ("Tenant", True, {"status"}),
    "apps/v1/deployments": ("Deployment", True, {"status"}),
    "v1/services": ("Service", True, set()),
    "v1/serviceaccounts": ("ServiceAccount", True, set()),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True, set()),
    "v1/secrets": ("Secret", True, set()),
    "v1/events": ("Event", True, set()),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, set()),
    # Discovered only: kopf waits for both kinds to be known, even cluster-wide.
    "v1/namespaces": ("Namespace", False, set()),
    "apiextensions.k8s.io/v1/customresourcedefinitions": (
        "CustomResourceDefinition",
        False,
        set(),
    ),
}


WATCHED = {
    TENANTS,
    "apps/v1/deployments",
    "v1/services",
    "v1/serviceaccounts",
    "v1/persistentvolumeclaims",
    "networking.k8s.io/v1/networkpolicies",
}
"""What the operator watches; kmock can drop an event while a watch starts, so whoever drives
the emulator begins once every watch is open."""


class ApiServerEmulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus what a real API server stamps on every write: a new
    ``resourceVersion`` each time, a ``uid`` on creation, and a ``generation`` that grows when
    the spec changes. kopf relies on resource versions to tell its own writes from stale
    events; without them it re-handles old snapshots of a Tenant.

    JSON patches are applied without their ``test`` operations: kmock may drop an event while
    a watch starts, and kopf, refused by a failed test, would wait for that event forever.
    (As before, kmock does no optimistic concurrency.)"""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watched_resources: set[str] = set()
        """The resources someone has opened a watch on."""

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is not None and request.action == kmock.action.WATCH:
            resource = request.resource
            self.watched_resources.add(
                f"{resource.group}/{resource.version}/{resource.plural}".lstrip("/")
            )
        if request.resource is not None and request.action == kmock.action.CREATE:
            if isinstance(request.data, dict):
                self._stamp_creation(request.data)
        elif request.resource is not None and request.action == kmock.action.UPDATE:
            if isinstance(request.data, dict) and request.name is not None:
                self._stamp_merge(request)
            elif isinstance(request.data, list):
                request.data[:] = [op for op in request.data if op.get("op") != "test"]
                request.data.append(
                    {"op": "add", "path": "/metadata/resourceVersion", "value": _revision()}
                )
        return await super()._handle(request)

    @staticmethod
    def _stamp_creation(data: dict[str, Any]) -> None:
        meta = data.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = _revision()
        meta.setdefault("generation", 1)

    def _stamp_merge(self, request: kmock.Request) -> None:
        meta = request.data.setdefault("metadata", {})
        meta["resourceVersion"] = _revision()
        if "spec" in request.data and request.subresource is None:
            current = self._current(request) or {}
            generation = current.get("metadata", {}).get("generation") or 0
            meta.setdefault("generation", generation + 1)

    def _current(self, request: kmock.Request) -> dict[str, Any] | None:
        found = self._stored(request.resource, request.namespace, request.name)
        return None if found is None or found.deleted else found.raw  # type: ignore[no-any-return]

    # -- reading one object by its key ---------------------------------------------------------
    # kmock finds the object a request names by scanning every stored object; these find it by
    # its key, with the same answers, so that a read costs the same with 6 objects or 6,000.

    def _stored(self, resource: Any, namespace: str | None, name: str | None) -> Any:
        """The stored object (deleted or not) under this key, or None."""
        key = (resource, namespace, name)
        return self.objects[key] if name is not None and key in self.objects else None

    async def _serve_fetch(self, request: kmock.Request) -> Any:
        if request.name is None:
            return await super()._serve_fetch(request)
        obj = self._stored(request.resource, request.namespace, request.name)
        if obj is None or obj.deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return obj.raw

    async def _serve_create(self, request: kmock.Request) -> Any:
        meta = request.data.get("metadata", {}) if isinstance(request.data, dict) else {}
        namespace = request.namespace or meta.get("namespace")
        obj = self._stored(request.resource, namespace, request.name or meta.get("name"))
        return obj.raw if obj is not None else await super()._serve_create(request)

    async def _serve_update(self, request: kmock.Request) -> Any:
        obj = self._stored(request.resource, request.namespace, request.name)
        return obj.last.raw if obj is not None else await super()._serve_update(request)

    async def _serve_delete(self, request: kmock.Request) -> Any:
        obj = self._stored(request.resource, request.namespace, request.name)
        return obj.last.raw if obj is not None else await super()._serve_delete(request)


class _Dispatch(kmock.RawHandler):
    """kmock's way to find the reaction to a request (the first by priority whose filters
    take it), with the reactions' order worked out once per set of reactions instead of on
    every request (kmock walks each reaction's chain of views for it: half a millisecond a
    request), and without a record of what each reaction served."""

    async def _handle(self, request: kmock.Request) -> Any:
        for reaction in self._by_priority():
            if request in reaction._source and not reaction._disabled.is_set():
                try:
                    return await reaction(request)
                except kmock.ReactionMismatchError:  # a mismatch, or the reaction is used up
                    reaction._disabled.set()
                except NotImplementedError:  # taken, but nothing to answer with
                    pass
                finally:
                    reaction._requests.clear()
        raise NotImplementedError("no reaction matches the request")

    def _by_priority(self) -> list[Any]:
        reactions = list(self._payloads)
        key = tuple(map(id, reactions))
        cached: tuple[tuple[int, ...], list[Any]] | None = getattr(self, "_ordered", None)
        if cached is None or cached[0] != key:
            # As kmock orders them: highest first, shorter priorities padded with zeros.
            ranks = [tuple(-p for p in reaction.priorities) for reaction in reactions]
            width = max((len(rank) for rank in ranks), default=0)
            padded = [rank + (0,) * (width - len(rank)) for rank in ranks]
            order = sorted(range(len(reactions)), key=lambda index: padded[index])
            cached = (key, [reactions[index] for index in order])
            self._ordered = cached
        return cached[1]


class LoadEmulator(ApiServerEmulator, _Dispatch):
    """The emulator for load (the benchmark), which keeps no log of requests.

    kmock finds the reaction to a request by running every reaction's filters over its whole
    log of requests, looking for that one; with every request kept, serving the n-th costs
    O(n), and a thousand Tenants' worth of traffic would measure the emulator, not the
    operator. Here each request, while it is served, is the only one the filters see, and it
    is forgotten once served; errors carry no traceback. The log is for tests' assertions,
    which a benchmark makes none of."""

    _serving: contextvars.ContextVar[kmock.Request | None] = contextvars.ContextVar(
        "serving", default=None
    )

    def __iter__(self) -> Iterator[kmock.Request]:
        serving = self._serving.get()
        if serving is not None:
            yield serving

    async def _handle(self, request: kmock.Request) -> Any:
        self._requests.clear()  # appended by kmock before every request: never read here
        self._serving.set(request)
        return await super()._handle(request)

    async def _render_error(self, exc: Exception) -> Any:
        if isinstance(exc, kmock.KubernetesError):
            return aiohttp.web.json_response(_status(exc), status=exc.status)
        return await super()._render_error(exc)


def _status(exc: kmock.KubernetesError) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "code": exc.status,
        "status": "Failure",
        "reason": exc.reason or type(exc).__name__,
        "message": exc.message or repr(exc),
    }


def _revision() -> str:
    return str(next(_REVISIONS))


_REVISIONS = itertools.count(1000)


def register(emulator: kmock.KubernetesEmulator) -> None:
    """Declare every resource the operator touches (kopf discovers them before it starts)."""
    for resource, (kind, namespaced, subresources) in RESOURCES.items():
        emulator.resources[resource] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )


WATCHES_PATH = "/emulator/watches"
"""Where the emulator process answers ``{"watched": [resource, ...]}``."""


async def serve(port: int) -> None:
    """Serve the emulator on 127.0.0.1 until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with LoadEmulator() as emulator, kmock.Server(emulator, port=port) as server:
        register(emulator)
        emulator[f"get {WATCHES_PATH}"] << (lambda: {"watched": sorted(emulator.watched_resources)})
        print(f"listening {str(server.url).rstrip('/')}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.operator.emulator")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
