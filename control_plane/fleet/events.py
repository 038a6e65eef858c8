"""What the supervisor reports as it goes: one value per step, for the CLI to show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Spawned:
    """vLLM was started (``attempt`` 1 is the first start)."""

    pid: int
    attempt: int
    log_path: Path


@dataclass(frozen=True)
class Loading:
    """vLLM is not healthy yet; ``waiting_for`` says what its ``/health`` did."""

    pid: int
    elapsed: float
    timeout: float
    waiting_for: str
    last_output: str
    """The last line vLLM wrote (its loading progress), or empty."""


@dataclass(frozen=True)
class Ready:
    pid: int
    elapsed: float
    """Seconds from start to the first healthy answer."""
    base_url: str


@dataclass(frozen=True)
class Crashed:
    """vLLM ended or was found broken; it starts again in ``restart_in`` seconds."""

    pid: int
    reason: str
    crashes: int
    """Crashes within the restart window, this one included."""
    max_restarts: int
    restart_in: float


@dataclass(frozen=True)
class GaveUp:
    reason: str
    crashes: int
    window: float


@dataclass(frozen=True)
class Stopped:
    """The supervisor stopped vLLM as asked (``exit_code`` None: it was not running)."""

    exit_code: int | None


FleetEvent = Spawned | Loading | Ready | Crashed | GaveUp | Stopped
EventSink = Callable[[FleetEvent], None]
