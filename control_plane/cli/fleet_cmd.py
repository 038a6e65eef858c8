"""``tenantry fleet serve``, and the local fleet that ``tenantry up --fleet-model`` runs.

Both run vLLM (``vllm serve``, from ``pip install 'tenantry[fleet]'``) as a supervised child
and show its progress while it loads, which can take minutes. Options after ``--`` go to
``vllm serve`` unchanged, after any in ``TENANTRY_FLEET_ARGS``::

    tenantry fleet serve --model Qwen/Qwen2.5-7B-Instruct -- --gpu-memory-utilization 0.8
    tenantry up --fleet-model Qwen/Qwen2.5-7B-Instruct -- --max-model-len 8192
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import shutil
import signal
import sys
from collections.abc import Sequence

import uvloop
from litestar import Litestar

from control_plane.cli import logs
from control_plane.errors import SettingsError
from control_plane.fleet import FleetError, FleetGaveUp, FleetSupervisor, VllmServe, events
from control_plane.fleet.errors import FleetCommandMissing
from control_plane.fleet.process import claim_port
from control_plane.settings import FleetSettings, Settings, load_settings

log = logging.getLogger("tenantry.fleet")

PASSTHROUGH_HELP = "options after -- go to `vllm serve` unchanged"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = commands.add_parser("fleet", help="a local vLLM model fleet (GPU workstation)")
    actions = fleet.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="run vLLM's OpenAI-compatible server, supervised",
        usage="tenantry fleet serve --model NAME [options] [-- VLLM_OPTIONS...]",
        description="Run `vllm serve` as a child process: wait for its /health, restart it "
        "when it crashes, stop it on SIGTERM or Ctrl-C. Its output goes to DIR/fleet/vllm.log.",
        epilog=f"{PASSTHROUGH_HELP}, e.g. -- --gpu-memory-utilization 0.8",
    )
    serve.add_argument("--model", help="model to load (default $TENANTRY_FLEET_MODEL)")
    serve.add_argument(
        "--served-model-name", metavar="NAME", help="name tenants ask for (default: the model)"
    )
    serve.add_argument("--host", help="address vLLM listens on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="vLLM's port (default 8000; 0 picks one)")
    serve.add_argument("--data-dir", help="state directory; vLLM's log goes to DIR/fleet/")
    serve.set_defaults(run=run_serve, takes_vllm_options=True)


def split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``tenantry … -- VLLM_OPTIONS``: the words before the first ``--``, and after it."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    at = argv.index("--")
    return argv[:at], argv[at + 1 :]


def with_flags(
    fleet: FleetSettings,
    *,
    model: str | None = None,
    served_model_name: str | None = None,
    host: str | None = None,
    port: int | None = None,
    vllm_options: Sequence[str] = (),
) -> FleetSettings:
    """Flags win over ``TENANTRY_FLEET_*``; options after ``--`` follow the variable's."""
    return dataclasses.replace(
        fleet,
        model=model or fleet.model,
        served_model_name=served_model_name or fleet.served_model_name,
        host=host or fleet.host,
        port=fleet.port if port is None else port,
        extra_args=(*fleet.extra_args, *vllm_options),
    )


def build_supervisor(settings: Settings, fleet: FleetSettings) -> FleetSupervisor:
    """Check the fleet can start here (model named, vLLM installed, port free), then build
    its supervisor; raises :class:`FleetError` or :class:`SettingsError` saying what is
    wrong."""
    if not fleet.model:
        raise SettingsError("TENANTRY_FLEET_MODEL", "name the model to serve (or --model)")
    if shutil.which(fleet.command[0]) is None:
        raise FleetCommandMissing(fleet.command[0], "not found")
    spec = VllmServe(
        model=fleet.model,
        host=fleet.host,
        port=claim_port(fleet.host, fleet.port),
        served_model_name=fleet.served_model_name,
        extra_args=fleet.extra_args,
        command=fleet.command,
    )
    supervisor = FleetSupervisor(spec, fleet, fleet_dir=settings.fleet_dir)
    supervisor.on_event = reporter(supervisor)
    return supervisor


def reporter(supervisor: FleetSupervisor) -> events.EventSink:
    """Log each step in words (the log handler masks anything shaped like a secret)."""
    spec = supervisor.spec

    def report(event: events.FleetEvent) -> None:
        match event:
            case events.Spawned(pid=pid, attempt=attempt, log_path=path):
                again = "" if attempt == 1 else f" again (start {attempt})"
                log.info(
                    "starting vLLM%s for %s, pid %d; its output: %s", again, spec.model, pid, path
                )
            case events.Loading():
                last = f"; it last wrote: {event.last_output}" if event.last_output else ""
                log.info(
                    "waiting for vLLM to load %s: GET %s %s (%.0fs of %.0fs)%s",
                    spec.model,
                    spec.health_url,
                    event.waiting_for,
                    event.elapsed,
                    event.timeout,
                    last,
                )
            case events.Ready():
                log.info(
                    "vLLM is ready after %.1fs: model %r at %s",
                    event.elapsed,
                    spec.model_name,
                    event.base_url,
                )
            case events.Crashed():
                log.warning(
                    "%s; restarting in %gs (crash %d of %d within %gs)",
                    event.reason,
                    event.restart_in,
                    event.crashes,
                    event.max_restarts,
                    supervisor.settings.restart_window,
                )
            case events.GaveUp():
                log.error(
                    "giving up on vLLM: it crashed %d times within %gs, last: %s; see %s",
                    event.crashes,
                    event.window,
                    event.reason,
                    supervisor.log_path,
                )
            case events.Stopped(exit_code=code):
                log.info("vLLM stopped (exit code %s)", code)

    return report


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(data_dir=args.data_dir)
        logs.configure(settings.log_level, settings.log_format)
        fleet = with_flags(
            settings.fleet,
            model=args.model,
            served_model_name=args.served_model_name,
            host=args.host,
            port=args.port,
            vllm_options=args.vllm_options,
        )
        supervisor = build_supervisor(settings, fleet)
    except (SettingsError, FleetError) as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2
    return uvloop.run(_serve(supervisor))


async def _serve(supervisor: FleetSupervisor) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stop)
    try:
        await supervisor.run()
    except FleetGaveUp as exc:
        print(f"tenantry: {exc}; see {supervisor.log_path}", file=sys.stderr)
        return 1
    except FleetError as exc:
        print(f"tenantry: {exc}", file=sys.stderr)
        return 2
    return 0


def fleet_for_up(
    settings: Settings, args: argparse.Namespace
) -> tuple[Settings, FleetSupervisor | None]:
    """The local fleet ``tenantry up`` runs beside the control plane, if one is asked for,
    and the settings with the platform models URL pointing at it (unless already set)."""
    fleet = with_flags(
        settings.fleet,
        model=args.fleet_model,
        served_model_name=args.fleet_served_model_name,
        port=args.fleet_port,
        vllm_options=args.vllm_options,
    )
    if not fleet.model:
        if args.vllm_options:
            raise SettingsError("TENANTRY_FLEET_MODEL", f"{PASSTHROUGH_HELP}: name a --fleet-model")
        return settings, None
    if settings.runtime != "local":
        raise SettingsError(
            "TENANTRY_RUNTIME",
            "the local fleet serves gateways on this machine; on Kubernetes install "
            "charts/vllm-fleet and set TENANTRY_PLATFORM_MODELS_URL",
        )
    supervisor = build_supervisor(settings, fleet)
    if settings.platform_models_url is None:
        settings = dataclasses.replace(settings, platform_models_url=supervisor.spec.base_url)
    else:
        log.warning(
            "TENANTRY_PLATFORM_MODELS_URL is set, so gateways use %s, not the local fleet",
            settings.platform_models_url,
        )
    return settings, supervisor


def attach(app: Litestar, supervisor: FleetSupervisor) -> None:
    """Run the fleet while the control plane runs: started at startup without waiting for
    the model to load, stopped first at shutdown."""
    running: list[asyncio.Task[None]] = []

    async def supervise() -> None:
        try:
            await supervisor.run()
        except FleetGaveUp:
            pass  # reported as it happened; the control plane carries on without its fleet
        except FleetError as exc:
            log.error("the local fleet did not start: %s", exc)

    def start() -> None:
        running.append(asyncio.get_running_loop().create_task(supervise(), name="fleet"))

    async def stop() -> None:
        supervisor.stop()
        for task in running:
            await task

    app.on_startup.append(start)
    app.on_shutdown.insert(0, stop)
