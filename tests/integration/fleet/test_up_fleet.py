"""What ``tenantry up`` makes of its fleet flags and variables, before anything runs."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest

from control_plane.cli.fleet_cmd import fleet_for_up
from control_plane.cli.main import build_parser
from control_plane.errors import SettingsError
from control_plane.settings import load_settings
from tests.doubles.vllm_standin import standin_command

STANDIN = {"TENANTRY_FLEET_COMMAND": shlex.join(standin_command())}


def up_args(*argv: str, vllm_options: tuple[str, ...] = ()) -> argparse.Namespace:
    args = build_parser().parse_args(["up", *argv])
    args.vllm_options = list(vllm_options)
    return args


def test_the_platform_models_url_points_at_the_fleet(tmp_path: Path) -> None:
    settings = load_settings(STANDIN, data_dir=str(tmp_path))
    args = up_args("--fleet-model", "org/m", "--fleet-port", "0", vllm_options=("--seed", "1"))
    settings, fleet = fleet_for_up(settings, args)
    assert fleet is not None
    assert fleet.spec.port != 0
    assert settings.platform_models_url == f"http://127.0.0.1:{fleet.spec.port}/v1"
    assert fleet.argv[-2:] == ["--seed", "1"]
    assert fleet.log_path == tmp_path.resolve() / "fleet" / "vllm.log"


def test_a_configured_platform_models_url_wins(tmp_path: Path) -> None:
    env = {**STANDIN, "TENANTRY_PLATFORM_MODELS_URL": "http://models.internal/v1"}
    settings = load_settings(env, data_dir=str(tmp_path))
    settings, fleet = fleet_for_up(settings, up_args("--fleet-model", "m", "--fleet-port", "0"))
    assert fleet is not None
    assert settings.platform_models_url == "http://models.internal/v1"


def test_the_variable_asks_for_a_fleet_too(tmp_path: Path) -> None:
    env = {**STANDIN, "TENANTRY_FLEET_MODEL": "org/m", "TENANTRY_FLEET_PORT": "0"}
    settings, fleet = fleet_for_up(load_settings(env, data_dir=str(tmp_path)), up_args())
    assert fleet is not None
    assert fleet.spec.model == "org/m"
    assert settings.platform_models_url == fleet.spec.base_url


def test_no_model_no_fleet(tmp_path: Path) -> None:
    settings = load_settings(STANDIN, data_dir=str(tmp_path))
    assert fleet_for_up(settings, up_args()) == (settings, None)


@pytest.mark.parametrize(
    ("env", "argv", "vllm_options", "variable"),
    [
        ({}, [], ("--seed", "1"), "TENANTRY_FLEET_MODEL"),
        ({"TENANTRY_RUNTIME": "kubernetes"}, ["--fleet-model", "m"], (), "TENANTRY_RUNTIME"),
    ],
)
def test_a_fleet_that_cannot_serve_is_refused(
    tmp_path: Path,
    env: dict[str, str],
    argv: list[str],
    vllm_options: tuple[str, ...],
    variable: str,
) -> None:
    settings = load_settings({**STANDIN, **env}, data_dir=str(tmp_path))
    with pytest.raises(SettingsError) as caught:
        fleet_for_up(settings, up_args(*argv, vllm_options=vllm_options))
    assert variable in str(caught.value)
