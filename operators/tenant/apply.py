"""The operator's one door to the Kubernetes API: read, apply, delete, write status.

Objects are plain dicts (see :mod:`operators.tenant.manifests`), so one generic path serves
every kind: the official ``kubernetes`` client's :class:`~kubernetes.client.ApiClient` signs
and sends the request (its configuration carries the server, token and certificates), and
the answer comes back as the JSON the server sent, with no model classes in between.

* :meth:`Cluster.apply` is idempotent "create or patch": a server-side apply (field manager
  ``tenantry-operator``, forced, so our fields win over hand edits: that is drift correction),
  and a create where the server does not create on apply (emulators). A create that loses a
  race (409) is applied again.
* Reads and deletes of something already gone answer ``None``/``False``, not errors.
* The client is synchronous, so every call runs in a worker thread (:func:`asyncio.to_thread`):
  the kopf event loop never blocks.
* Failures are translated here, once, into :mod:`operators.errors`: a refusal that will not
  fix itself (400, 403, 404 on create, 422...) is :class:`~operators.errors.KubernetesRefused`;
  conflicts, throttling, server errors and network trouble are
  :class:`~operators.errors.KubernetesUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

import urllib3
from kubernetes.client.exceptions import ApiException

from operators.errors import KubernetesRefused, KubernetesUnavailable
from operators.tenant.spec import API_VERSION, KIND, PLURAL

FIELD_MANAGER: Final = "tenantry-operator"
APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
RETRYABLE: Final = frozenset({401, 408, 409, 429})
"""Statuses below 500 that may pass: expired credentials, timeouts, conflicts, throttling."""


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API: its ``apiVersion`` and plural resource name."""

    api_version: str
    plural: str

    def collection(self, namespace: str) -> str:
        root = "/api" if "/" not in self.api_version else "/apis"
        return f"{root}/{self.api_version}/namespaces/{namespace}/{self.plural}"

    def item(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"


KINDS: Final[Mapping[str, Kind]] = {
    "ServiceAccount": Kind("v1", "serviceaccounts"),
    "PersistentVolumeClaim": Kind("v1", "persistentvolumeclaims"),
    "Service": Kind("v1", "services"),
    "Secret": Kind("v1", "secrets"),
    "Deployment": Kind("apps/v1", "deployments"),
    "NetworkPolicy": Kind("networking.k8s.io/v1", "networkpolicies"),
    KIND: Kind(API_VERSION, PLURAL),
}


def kind_of(kind: str) -> Kind:
    return KINDS[kind]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


def _describe(method: str, path: str, answer: Answer) -> tuple[str, str]:
    body = answer.body if isinstance(answer.body, dict) else {}
    try:
        phrase = HTTPStatus(answer.status).phrase
    except ValueError:
        phrase = "Error"
    reason = str(body.get("reason") or phrase.replace(" ", ""))
    detail = str(body.get("message") or phrase)
    return reason, f"{method} {path}: {answer.status} {reason}: {detail}"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("Retry-After", ""))
    except ValueError:
        return None


def refusal(method: str, path: str, answer: Answer) -> KubernetesRefused | KubernetesUnavailable:
    """The error an unsuccessful answer stands for."""
    reason, message = _describe(method, path, answer)
    if answer.status in RETRYABLE or answer.status >= 500:
        return KubernetesUnavailable(
            message,
            status=answer.status,
            api_reason=reason,
            retry_after=_retry_after(answer.headers),
        )
    return KubernetesRefused(message, status=answer.status, api_reason=reason)


class Cluster:
    """Idempotent operations on namespaced objects, off the event loop."""

    def __init__(
        self,
        api_client: Any,
        *,
        field_manager: str = FIELD_MANAGER,
        request_timeout: float = 30.0,
    ) -> None:
        self._client = api_client
        self._field_manager = field_manager
        self._timeout = request_timeout

    # -- the public operations ---------------------------------------------------------------

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Make the object look like ``body`` (create it if missing); returns it as stored."""
        return await asyncio.to_thread(self._apply, body)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        path = kind_of(kind).item(namespace, name)
        answer = await asyncio.to_thread(self._send, "GET", path)
        if answer.status == 404:
            return None
        return self._ok("GET", path, answer)

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete the object; False if it was already gone."""
        path = kind_of(kind).item(namespace, name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        answer = await asyncio.to_thread(self._send, "DELETE", path, body=body)
        if answer.status == 404:
            return False
        self._ok("DELETE", path, answer)
        return True

    async def patch_status(
        self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge ``patch`` into the object's status subresource; None if the object is gone."""
        path = kind_of(kind).item(namespace, name) + "/status"
        answer = await asyncio.to_thread(
            self._send, "PATCH", path, body=patch, content_type=MERGE_PATCH
        )
        if answer.status == 404:
            return None
        return self._ok("PATCH", path, answer)

    # -- in the worker thread ----------------------------------------------------------------

    def _apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kind = kind_of(str(body["kind"]))
        namespace = str(body["metadata"]["namespace"])
        name = str(body["metadata"]["name"])
        path = kind.item(namespace, name)
        query = [("fieldManager", self._field_manager), ("force", "true")]
        for _ in range(2):
            answer = self._send("PATCH", path, body=body, query=query, content_type=APPLY_PATCH)
            if answer.status != 404:
                return self._ok("PATCH", path, answer)
            created = self._send("POST", kind.collection(namespace), body=body, query=query[:1])
            if created.status != 409:  # 409: someone created it meanwhile; apply over it
                return self._ok("POST", kind.collection(namespace), created)
        raise refusal("POST", kind.collection(namespace), created)

    def _ok(self, method: str, path: str, answer: Answer) -> dict[str, Any]:
        if 200 <= answer.status < 300:
            return answer.body if isinstance(answer.body, dict) else {}
        raise refusal(method, path, answer)

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> Answer:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self._client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._client.call_api(*request, _request_timeout=self._timeout)
            raw = response.read()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubernetesUnavailable(
                f"{method} {path}: the Kubernetes API cannot be reached: {exc}"
            ) from exc
        return Answer(status=response.status, body=_decode(raw), headers=response.headers)


def _decode(raw: bytes | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
