"""What goes wrong with the local fleet.

::

    FleetError
    ├── FleetOptionTaken      an extra vLLM option sets what the supervisor owns (--port, …)
    ├── FleetCommandMissing   the vllm executable is not installed or not runnable
    ├── FleetPortTaken        something already listens on the fleet's port
    └── FleetGaveUp           vLLM crashed too often within the restart window
"""

from __future__ import annotations


class FleetError(Exception):
    """The root of the local fleet's errors; ``str()`` is a sentence for the operator."""


class FleetOptionTaken(FleetError):
    def __init__(self, option: str) -> None:
        super().__init__(
            f"{option} is set by tenantry itself; use the fleet's own setting instead "
            "(--model, --served-model-name, --host, --port)"
        )
        self.option = option


class FleetCommandMissing(FleetError):
    def __init__(self, command: str, reason: str) -> None:
        super().__init__(
            f"cannot run {command!r} ({reason}): install vLLM with "
            "pip install 'tenantry[fleet]', or name the executable in TENANTRY_FLEET_COMMAND"
        )
        self.command = command


class FleetPortTaken(FleetError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot listen on {host}:{port} for vLLM ({reason}); pick another port with "
            "--port/--fleet-port or TENANTRY_FLEET_PORT (0 picks a free one)"
        )
        self.port = port


class FleetGaveUp(FleetError):
    def __init__(self, crashes: int, window: float, reason: str) -> None:
        super().__init__(
            f"vLLM crashed {crashes} times within {window:g}s, last: {reason}; not restarting"
        )
        self.crashes = crashes
        self.reason = reason
