"""Keeping up with the installation's Tenants: one list, then a watch resumed from it.

The ``kubernetes`` client's watch blocks on its socket, so :class:`TenantWatch` runs it on a
thread of its own and hands what it sees to ``deliver``, which must be safe to call from that
thread (the runtime passes ``loop.call_soon_threadsafe`` onto a queue). It follows the API
server's protocol:

- list the Tenants, and deliver the whole list (:class:`Listed`), so that a Tenant deleted
  while nobody watched is noticed as missing;
- watch from the list's ``resourceVersion``, delivering each change (:class:`Changed`); each
  watch asks the server to end it after ``timeout`` seconds (the client gives up on it a
  little later, so a connection that died silently is noticed) and is then resumed from the
  last ``resourceVersion`` seen, bookmarks included;
- ``410 Gone`` (the version is too old to resume from) lists afresh at once; any other
  refusal, or a dropped connection, lists afresh after a backoff that doubles up to
  ``max_backoff``.

No periodic relist: a watch resumed from a ``resourceVersion`` misses nothing, or is answered
``410`` and relists. A server that keeps no versions (the API emulator in the tests answers
``...`` and replays every object on each watch) still works: a replay reads as changes to
Tenants already known.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from control_plane.runtime.kubernetes import resources

log = logging.getLogger(__name__)

GONE = 410


@dataclass(frozen=True)
class Listed:
    """Every Tenant of the installation, as a fresh list found them."""

    tenants: list[dict[str, Any]]


@dataclass(frozen=True)
class Changed:
    """One Tenant was added, modified or deleted (``type`` as the API server names it)."""

    type: str
    tenant: dict[str, Any]


Observation = Listed | Changed


@dataclass(frozen=True)
class WatchTimings:
    timeout: int = 300
    """Seconds the server is asked to keep one watch open before it is resumed."""
    request_timeout: float = 30.0
    """Seconds to connect, and for a list to answer; a watch may be silent this much longer
    than ``timeout`` before the connection is given up as dead."""
    backoff: float = 0.5
    """Seconds before the first relist after a failure; doubled on each further failure."""
    max_backoff: float = 30.0


class TenantWatch:
    """Lists, then watches, the Tenants labelled with ``installation`` in ``namespace`` (or in
    every namespace when it is None), on a thread, until :meth:`stop`."""

    def __init__(
        self,
        custom: Any,
        *,
        namespace: str | None,
        installation: str,
        deliver: Callable[[Observation], None],
        timings: WatchTimings,
    ) -> None:
        self.custom = custom
        self.namespace = namespace
        self.installation = installation
        self.deliver = deliver
        self.timings = timings
        self._stopping = threading.Event()
        # Typed loosely: the client's watch module is untyped.
        self._watch: Any = None
        self._thread = threading.Thread(
            target=self._run, name="kubernetes-tenant-watch", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the thread; False if it is still inside a request after ``timeout`` seconds.

        Called from a thread other than the watch's: a watch blocked on its socket is woken
        by shutting that socket down, retried until the thread is gone, since a watch that
        is still connecting has no socket to shut yet.
        """
        self._stopping.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            current = self._watch
            if current is not None:
                current.stop()
            self._thread.join(0.05)
        return not self._thread.is_alive()

    # -- on the watch's thread --------------------------------------------------------------

    def _run(self) -> None:
        version: str | None = None
        failures = 0
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._list()
                version = self._follow(version)
                failures = 0
            except ApiException as exc:
                version = None
                expired = exc.status == GONE
                if expired and failures == 0:
                    log.info("the Tenant watch expired; listing afresh")
                else:
                    self._pause(failures, f"{exc.status} {exc.reason or 'error'}")
                failures += 1
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                version = None
                self._pause(failures, f"connection lost ({exc.__class__.__name__})")
                failures += 1
            except Exception:
                # Anything else would end the thread and with it all news of the Tenants.
                log.exception("the Tenant watch failed")
                version = None
                self._pause(failures, "unexpected failure")
                failures += 1

    def _pause(self, failures: int, why: str) -> None:
        if self._stopping.is_set():
            return
        delay = min(self.timings.backoff * 2**failures, self.timings.max_backoff)
        log.warning("cannot watch Tenant resources: %s; listing again in %gs", why, delay)
        self._stopping.wait(delay)

    def _list(self) -> str | None:
        found: dict[str, Any] = self._list_call()(
            *self._list_args(),
            label_selector=self._selector(),
            _request_timeout=self.timings.request_timeout,
        )
        self.deliver(Listed([t for t in found.get("items") or [] if self._ours(t)]))
        version = (found.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None

    def _follow(self, version: str | None) -> str | None:
        """Watch until the server ends the watch; the version to resume from."""
        timings = self.timings
        options: dict[str, Any] = {
            "label_selector": self._selector(),
            "timeout_seconds": timings.timeout,
            "allow_watch_bookmarks": True,
            "_request_timeout": (
                timings.request_timeout,
                timings.timeout + timings.request_timeout,
            ),
        }
        if version:
            options["resource_version"] = version
        current: Any = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        self._watch = current
        try:
            if self._stopping.is_set():
                return version
            for event in current.stream(self._list_call(), *self._list_args(), **options):
                if self._stopping.is_set():
                    break
                body = event.get("raw_object")
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED") and self._ours(body):
                    self.deliver(Changed(str(event["type"]), body))
        finally:
            self._watch = None
        return current.resource_version or version

    def _list_call(self) -> Callable[..., Any]:
        if self.namespace is None:
            call: Callable[..., Any] = self.custom.list_cluster_custom_object
        else:
            call = self.custom.list_namespaced_custom_object
        return call

    def _list_args(self) -> tuple[str, ...]:
        if self.namespace is None:
            return (resources.GROUP, resources.VERSION, resources.PLURAL)
        return (resources.GROUP, resources.VERSION, self.namespace, resources.PLURAL)

    def _selector(self) -> str:
        return f"{resources.LABEL_INSTALLATION}={self.installation}"

    def _ours(self, body: Any) -> bool:
        # Checked here too: a selector is a request, and some servers ignore it.
        if not isinstance(body, dict):
            return False
        labels = (body.get("metadata") or {}).get("labels") or {}
        return bool(labels.get(resources.LABEL_INSTALLATION) == self.installation)
