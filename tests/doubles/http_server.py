"""Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread, for tests.

The socket is bound before the server starts (port 0 picks a free one), so the URL is known
at once; :func:`serve_in_thread` returns only when uvicorn reports it has started (polled
with a deadline) and stops it cleanly afterwards.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn


class BackgroundServer:
    """One uvicorn server running ``app`` on its own thread and event loop."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["auto", "on", "off"] = "auto",
        graceful_shutdown: int = 5,
    ) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(512)
        self.host = host
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan=lifespan,
            access_log=False,
            log_config=None,
            log_level="warning",
            timeout_graceful_shutdown=graceful_shutdown,
        )
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        except BaseException as exc:  # SystemExit included: uvicorn exits on startup failure
            self.error = exc

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                self.socket.close()
                raise RuntimeError(f"server on port {self.port} failed to start: {self.error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on port {self.port} did not start in {timeout:g}s")
            time.sleep(0.005)

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(timeout)
        self.socket.close()
        if self._thread.is_alive():
            raise RuntimeError(f"server on port {self.port} did not stop in {timeout:g}s")


@contextmanager
def serve_in_thread(app: Any, **options: Any) -> Iterator[BackgroundServer]:
    """``with serve_in_thread(app) as server:`` ``server.url`` answers until the block ends."""
    server = BackgroundServer(app, **options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
