"""The local fleet's pure parts: vLLM's command line, its environment, backoff, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.cli.fleet_cmd import split_passthrough, with_flags
from control_plane.cli.main import main
from control_plane.errors import SettingsError
from control_plane.fleet import VllmServe, vllm_argv
from control_plane.fleet.command import child_environment
from control_plane.fleet.errors import FleetOptionTaken
from control_plane.fleet.process import last_output
from control_plane.fleet.supervisor import CrashLog, restart_delay
from control_plane.settings import FleetSettings, load_fleet_settings, load_settings


def test_vllm_serve_takes_the_model_as_its_positional_argument() -> None:
    spec = VllmServe(model="Qwen/Qwen2.5-7B-Instruct", host="127.0.0.1", port=8123)
    assert vllm_argv(spec) == [
        "vllm",
        "serve",
        "Qwen/Qwen2.5-7B-Instruct",
        "--host",
        "127.0.0.1",
        "--port",
        "8123",
        "--served-model-name",
        "Qwen/Qwen2.5-7B-Instruct",
    ]


def test_extra_options_follow_and_the_command_can_be_replaced() -> None:
    spec = VllmServe(
        model="/models/llama",
        port=9000,
        served_model_name="llama-3.1-8b",
        extra_args=("--gpu-memory-utilization", "0.8", "--max-model-len=8192"),
        command=("/opt/venv/bin/python", "-m", "stand_in"),
    )
    assert vllm_argv(spec) == [
        "/opt/venv/bin/python",
        "-m",
        "stand_in",
        "serve",
        "/models/llama",
        "--host",
        "127.0.0.1",
        "--port",
        "9000",
        "--served-model-name",
        "llama-3.1-8b",
        "--gpu-memory-utilization",
        "0.8",
        "--max-model-len=8192",
    ]


@pytest.mark.parametrize(
    "option",
    ["--port", "--port=9", "--host", "--served-model-name", "--served_model_name=x", "--model"],
)
def test_extra_options_may_not_move_or_rename_the_server(option: str) -> None:
    spec = VllmServe(model="m", extra_args=("--dtype", "auto", option, "1"))
    with pytest.raises(FleetOptionTaken) as caught:
        vllm_argv(spec)
    assert option.split("=")[0] in str(caught.value)
    assert "set by tenantry" in str(caught.value)


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("10.0.0.5", "http://10.0.0.5:8000"),
    ],
)
def test_urls_reach_the_server_from_this_machine(host: str, origin: str) -> None:
    spec = VllmServe(model="m", host=host)
    assert spec.base_url == f"{origin}/v1"
    assert spec.health_url == f"{origin}/health"


def test_vllm_gets_no_control_plane_variables_and_no_usage_reports() -> None:
    env = child_environment(
        {"PATH": "/bin", "TENANTRY_KEK": "k1:secret", "HF_TOKEN": "hf", "DO_NOT_TRACK": "0"}
    )
    assert env == {
        "PATH": "/bin",
        "HF_TOKEN": "hf",
        "DO_NOT_TRACK": "0",
        "VLLM_NO_USAGE_STATS": "1",
    }


def test_restart_delay_doubles_per_crash_up_to_the_cap() -> None:
    assert [restart_delay(n, 2.0, 60.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_crashes_outside_the_window_are_forgotten() -> None:
    log = CrashLog(window=10.0)
    assert [log.record(t) for t in (0.0, 1.0, 2.0)] == [1, 2, 3]
    assert log.record(11.5) == 2  # the crashes at 0 and 1 are older than 10 s
    assert log.record(30.0) == 1


def test_the_last_output_line_counts_progress_bars(tmp_path: Path) -> None:
    log = tmp_path / "vllm.log"
    log.write_bytes(b"old line\n")
    since = log.stat().st_size
    assert last_output(log, since) == ""
    log.write_bytes(b"old line\nINFO loading\rshards: 10%\rshards: 40%")
    assert last_output(log, since) == "shards: 40%"
    assert last_output(log, since, limit=6) == "shard…"
    assert last_output(tmp_path / "missing.log", 0) == ""


def test_fleet_settings_come_from_variables(tmp_path: Path) -> None:
    assert load_settings({}, data_dir=str(tmp_path)).fleet == FleetSettings()
    fleet = load_fleet_settings(
        {
            "TENANTRY_FLEET_MODEL": "Qwen/Qwen2.5-7B-Instruct",
            "TENANTRY_FLEET_SERVED_MODEL_NAME": "qwen",
            "TENANTRY_FLEET_PORT": "0",
            "TENANTRY_FLEET_COMMAND": "'/opt/my vllm/bin/vllm'",
            "TENANTRY_FLEET_ARGS": "--gpu-memory-utilization 0.8 --chat-template '/t/a b.jinja'",
            "TENANTRY_FLEET_MAX_RESTARTS": "2",
            "TENANTRY_FLEET_RESTART_DELAY": "0.5",
        }
    )
    assert fleet.model == "Qwen/Qwen2.5-7B-Instruct"
    assert fleet.served_model_name == "qwen"
    assert fleet.port == 0
    assert fleet.command == ("/opt/my vllm/bin/vllm",)
    assert fleet.extra_args == (
        "--gpu-memory-utilization",
        "0.8",
        "--chat-template",
        "/t/a b.jinja",
    )
    assert (fleet.max_restarts, fleet.restart_delay) == (2, 0.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TENANTRY_FLEET_PORT", "eighty"),
        ("TENANTRY_FLEET_PORT", "70000"),
        ("TENANTRY_FLEET_COMMAND", "'unbalanced"),
        ("TENANTRY_FLEET_READY_TIMEOUT", "0"),
        ("TENANTRY_FLEET_MAX_RESTARTS", "0"),
    ],
)
def test_bad_fleet_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_fleet_settings({name: value})
    assert name in str(caught.value)


def test_flags_win_and_options_after_the_separator_follow_the_variables() -> None:
    assert split_passthrough(["up", "--fleet-model", "m", "--", "--dtype", "--", "x"]) == (
        ["up", "--fleet-model", "m"],
        ["--dtype", "--", "x"],
    )
    assert split_passthrough(["fleet", "serve"]) == (["fleet", "serve"], [])
    fleet = FleetSettings(model="env-model", port=8000, extra_args=("--dtype", "half"))
    flagged = with_flags(fleet, model="flag-model", port=0, vllm_options=["--seed", "1"])
    assert flagged.model == "flag-model"
    assert flagged.port == 0
    assert flagged.extra_args == ("--dtype", "half", "--seed", "1")
    assert with_flags(fleet) == fleet


def test_options_after_the_separator_belong_to_the_fleet_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["tenants", "list", "--", "--gpu-memory-utilization", "0.8"])
    assert caught.value.code == 2
    assert "options after -- are for" in capsys.readouterr().err
