"""The control plane's log set-up: JSON lines or text, and secrets masked in both."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from control_plane.cli import logs

SECRET = "sk-planted-openai-secret-value-7731"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_record_and_its_extra_fields() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    logging.getLogger("tenantry.test").info("tenant %s started", "acme", extra={"tenant_id": "t1"})
    entry = json.loads(stream.getvalue().strip())
    assert entry["msg"] == "tenant acme started"
    assert entry["level"] == "info"
    assert entry["logger"] == "tenantry.test"
    assert entry["tenant_id"] == "t1"
    assert isinstance(entry["ts"], float)


def test_secrets_are_masked_in_json_messages_extras_and_tracebacks() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    log = logging.getLogger("tenantry.test")
    log.info("key %s", SECRET, extra={"header": f"Bearer {SECRET}"})
    try:
        raise ValueError(SECRET)
    except ValueError:
        log.exception("failed")
    output = stream.getvalue()
    assert SECRET not in output
    lines = [json.loads(line) for line in output.splitlines()]
    assert lines[0]["msg"] == "key [redacted]"
    # Masked as a bearer header, or (once another test registered the value) as the value.
    assert lines[0]["header"] in ("[redacted]", "Bearer [redacted]")
    assert "ValueError" in lines[1]["exc"]


def test_text_format_masks_too_and_is_the_terminal_default() -> None:
    stream = Terminal()
    logs.configure("info", "auto", stream)
    logging.getLogger("tenantry.test").warning("key %s", SECRET)
    line = stream.getvalue()
    assert "WARNING tenantry.test key [redacted]" in line
    assert not line.startswith("{")


def test_auto_is_json_when_not_on_a_terminal() -> None:
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    assert logs.resolve_format("text", io.StringIO()) == "text"


def test_levels_below_the_setting_are_dropped_and_uvicorn_goes_through_the_same_handler() -> None:
    stream = io.StringIO()
    logs.configure("warning", "json", stream)
    logging.getLogger("tenantry.test").info("quiet")
    logging.getLogger("uvicorn.error").error("loud %s", SECRET)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["loud [redacted]"]
