"""A local model fleet: vLLM's OpenAI-compatible server as a supervised child process.

On a single machine with a GPU, ``tenantry fleet serve`` (or ``tenantry up --fleet-model``)
gives the embedded default a real platform model: :mod:`.command` builds the ``vllm serve``
command line from typed options, :mod:`.process` starts it in its own process group (dying
with its parent) and stops it, :mod:`.health` reads its ``GET /health``, and
:class:`~.supervisor.FleetSupervisor` waits for it to load, restarts it when it crashes and
gives up when it keeps crashing, reporting each step as an :mod:`.events` value.

It imports only :mod:`control_plane.settings` and foreign libraries; the CLI drives it.
"""

from control_plane.fleet.command import VllmServe, vllm_argv
from control_plane.fleet.errors import FleetError, FleetGaveUp
from control_plane.fleet.supervisor import FleetSupervisor

__all__ = ["FleetError", "FleetGaveUp", "FleetSupervisor", "VllmServe", "vllm_argv"]
