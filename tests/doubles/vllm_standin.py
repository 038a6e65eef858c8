"""A stand-in for the ``vllm`` executable: ``vllm serve MODEL`` speaking vLLM's wire format.

Takes vLLM's command line (``serve MODEL --host H --port P --served-model-name NAME`` and any
other vLLM option, which it accepts and ignores) and serves what vLLM's OpenAI-compatible
server does: ``GET /health`` (200, empty body), ``GET /v1/models`` (the served name) and
``POST /v1/chat/completions`` (:class:`~tests.doubles.openai_upstream.OpenAIUpstream`, which
echoes the last user message). Its first output line is ``stand-in argv: [...]`` (JSON), so
tests can see what it was given; like vLLM it writes loading progress before it listens.

Its own options, to play a model server's bad days:

* ``--load-seconds S``: load for S seconds before listening (connection refused meanwhile);
* ``--ready-file PATH``: load until PATH exists (a load the test decides to finish);
* ``--unhealthy-file PATH``: ``/health`` answers 503 while PATH exists (a dead engine);
* ``--exit-code N``: exit with N at once (a crash on start);
* ``--ignore-sigterm``: carry on after SIGTERM (only SIGKILL stops it).

Run as ``python -m tests.doubles.vllm_standin serve MODEL …`` with the repository on
``PYTHONPATH`` (:func:`standin_command` and :func:`standin_environment` give both).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from tests.doubles.openai_upstream import OpenAIUpstream

REPOSITORY = Path(__file__).resolve().parents[2]


def standin_command() -> tuple[str, ...]:
    """What stands where ``vllm`` would (``TENANTRY_FLEET_COMMAND`` takes it shell-quoted)."""
    return (sys.executable, "-m", "tests.doubles.vllm_standin")


def standin_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with the repository on ``PYTHONPATH``."""
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    return env


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class VllmStandIn:
    """vLLM's routes: ``/health`` here, the OpenAI API from :class:`OpenAIUpstream`."""

    def __init__(self, served_model_name: str, unhealthy_file: Path | None) -> None:
        self.upstream = OpenAIUpstream([served_model_name])
        self.unhealthy_file = unhealthy_file

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/health":
            sick = self.unhealthy_file is not None and self.unhealthy_file.exists()
            status = 503 if sick else 200
            headers = [(b"content-length", b"0")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.upstream(scope, receive, send)


class StubbornServer(uvicorn.Server):
    """A uvicorn server that shrugs off SIGTERM."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM:
            print("stand-in: ignoring SIGTERM", flush=True)
            return
        super().handle_exit(sig, frame)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="vllm")
    parser.add_argument("subcommand", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", dest="served_model_name")
    parser.add_argument("--load-seconds", type=float, default=0.0)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--unhealthy-file", type=Path)
    parser.add_argument("--exit-code", type=int)
    parser.add_argument("--ignore-sigterm", action="store_true")
    return parser.parse_known_args(argv)


def load(args: argparse.Namespace) -> None:
    """Pretend to load the model, writing progress the way vLLM does."""
    print(f"INFO Loading weights of {args.model}", flush=True)
    deadline = time.monotonic() + args.load_seconds
    shown = -1
    while time.monotonic() < deadline or (args.ready_file and not args.ready_file.exists()):
        left = max(0.0, deadline - time.monotonic())
        done = 10 * int(10 * (1 - left / args.load_seconds)) if args.load_seconds else 0
        if done != shown:
            print(f"\rLoading safetensors checkpoint shards: {done}%", end="", flush=True)
            shown = done
        time.sleep(0.02)  # the stand-in's own pacing, not a test's synchronisation
    print("\nINFO Model loaded", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    print(f"stand-in argv: {json.dumps(argv)}", flush=True)
    args, _vllm_options = parse(argv)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.exit_code is not None:
        print(f"ERROR stand-in exits with code {args.exit_code}, as asked", flush=True)
        return int(args.exit_code)
    load(args)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    app = VllmStandIn(args.served_model_name or args.model, args.unhealthy_file)
    config = uvicorn.Config(
        app, http="httptools", ws="none", lifespan="off", access_log=False, log_config=None
    )
    server = (StubbornServer if args.ignore_sigterm else uvicorn.Server)(config)
    print(f"INFO Started server process [{os.getpid()}] on port {args.port}", flush=True)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
