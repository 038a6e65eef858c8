"""Entry point of the ``tenantry`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from control_plane.cli import (
    channels_cmd,
    fleet_cmd,
    login_cmd,
    tenants_cmd,
    up_cmd,
    users_cmd,
    vault_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tenantry", description="Tenantry: a dedicated AI-assistant gateway per tenant."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the control plane (embedded default)")
    up.add_argument("--data-dir", help="state directory (default $TENANTRY_DATA_DIR or .tenantry)")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8080; 0 picks one)")
    up.add_argument(
        "--fleet-model",
        metavar="MODEL",
        help="also run vLLM with MODEL as the platform model (default $TENANTRY_FLEET_MODEL; "
        f"needs tenantry[fleet]); {fleet_cmd.PASSTHROUGH_HELP}",
    )
    up.add_argument(
        "--fleet-served-model-name", metavar="NAME", help="name tenants ask for the fleet model by"
    )
    up.add_argument(
        "--fleet-port", type=int, metavar="PORT", help="vLLM's port (default 8000; 0 picks one)"
    )
    up.set_defaults(run=up_cmd.run, takes_vllm_options=True)

    gateway = commands.add_parser(
        "gateway", help="run one tenant gateway (started by the runtime)", add_help=False
    )
    gateway.add_argument("args", nargs=argparse.REMAINDER)
    gateway.set_defaults(run=_run_gateway)

    operator = commands.add_parser("operator", help="run the Kubernetes operator (kopf)")
    operator.add_argument(
        "--namespace", help="watch Tenants in this namespace only (default: all namespaces)"
    )
    operator.add_argument(
        "--standalone", action="store_true", help="no kopf peering with other operators"
    )
    operator.add_argument(
        "--liveness", metavar="URL", help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    operator.set_defaults(run=_run_operator)

    fleet_cmd.add_parser(commands)
    tenants_cmd.add_parser(commands)
    channels_cmd.add_parser(commands)
    users_cmd.add_parser(commands)
    login_cmd.add_parser(commands)
    vault_cmd.add_parser(commands)
    return parser


def _run_gateway(args: argparse.Namespace) -> int:
    from tenant_gateway.cli import main as gateway_main

    return gateway_main(list(args.args))


def _run_operator(args: argparse.Namespace) -> int:
    from operators.main import run

    return run(args.namespace, standalone=args.standalone, liveness_endpoint=args.liveness)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gateway"]:  # pass every flag, --help included, to the gateway
        from tenant_gateway.cli import main as gateway_main

        return gateway_main(argv[1:])
    parser = build_parser()
    argv, vllm_options = fleet_cmd.split_passthrough(argv)
    args = parser.parse_args(argv)
    if vllm_options and not getattr(args, "takes_vllm_options", False):
        parser.error("options after -- are for `tenantry up` and `tenantry fleet serve`")
    args.vllm_options = vllm_options
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
