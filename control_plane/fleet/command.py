"""The ``vllm serve`` command line, built by a pure function from one typed spec.

vLLM's command line (0.9 and later) is ``vllm serve MODEL [options]``: the model is the
positional argument, and vLLM refuses ``--model`` beside it. The older module entry point,
``python -m vllm.entrypoints.openai.api_server --model MODEL``, is not used. The supervisor
owns where vLLM listens and what the model is called, so the extra options may not set
``--host``, ``--port``, ``--served-model-name`` or ``--model`` again (vLLM's parser takes
``--served_model_name`` for ``--served-model-name``, and so does this check).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from control_plane.fleet.errors import FleetOptionTaken

OWNED_OPTIONS = ("--host", "--port", "--served-model-name", "--model")
_ANY_ADDRESS = {"", "0.0.0.0", "::"}

CHILD_ENVIRONMENT = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
"""Set for vLLM unless the environment already says otherwise: no usage reports."""


@dataclass(frozen=True)
class VllmServe:
    """One vLLM server: which model, where it listens, and anything else it is told."""

    model: str
    """A Hugging Face model id or a local path."""
    host: str = "127.0.0.1"
    port: int = 8000
    served_model_name: str | None = None
    """The name clients ask for; None: the model's own."""
    extra_args: tuple[str, ...] = ()
    """More ``vllm serve`` options, passed through as they are."""
    command: tuple[str, ...] = ("vllm",)
    """The executable (and any words before ``serve``): a stand-in in tests."""

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model

    @property
    def origin(self) -> str:
        """How this machine reaches the server (a wildcard address means loopback)."""
        host = self.host
        if host in _ANY_ADDRESS:
            host = "::1" if host == "::" else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, as ``TENANTRY_PLATFORM_MODELS_URL`` takes it."""
        return f"{self.origin}/v1"

    @property
    def health_url(self) -> str:
        return f"{self.origin}/health"


def _option_name(arg: str) -> str:
    name = arg.split("=", 1)[0]
    return "--" + name[2:].replace("_", "-") if name.startswith("--") else name


def check_extra_args(args: Sequence[str]) -> None:
    """Refuse extra options that would move or rename the server behind our back."""
    for arg in args:
        if _option_name(arg) in OWNED_OPTIONS:
            raise FleetOptionTaken(arg.split("=", 1)[0])


def vllm_argv(spec: VllmServe) -> list[str]:
    """``vllm serve MODEL --host H --port P --served-model-name NAME [extra options]``."""
    check_extra_args(spec.extra_args)
    return [
        *spec.command,
        "serve",
        spec.model,
        "--host",
        spec.host,
        "--port",
        str(spec.port),
        "--served-model-name",
        spec.model_name,
        *spec.extra_args,
    ]


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """vLLM's environment: ours without the control plane's own ``TENANTRY_*`` variables
    (keys among them), and with usage reporting off unless already decided."""
    env = {k: v for k, v in environ.items() if not k.startswith("TENANTRY_")}
    for name, value in CHILD_ENVIRONMENT.items():
        env.setdefault(name, value)
    return env
