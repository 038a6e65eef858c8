"""Value-based log redaction: a secret registered by the process that handles it is masked in
every log line, whatever its shape; the gateway's and the control plane's log set-ups both
carry the filter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from control_plane.cli import logs
from tenant_gateway import cli as gateway_cli
from tenant_gateway.redaction import (
    MASK,
    MIN_SECRET_LENGTH,
    SECRET_VALUES,
    RedactSecrets,
    SecretValues,
    redact,
)

SHAPELESS = "q7Rw2pLx9vKm4ZtB1nYc"  # an OpenAI-compatible key with no known prefix
OTHER = "u3Hs8dQe6fJa0WgP5rTk"  # never registered


@pytest.fixture
def values() -> SecretValues:
    return SecretValues()


@pytest.fixture
def captured(values: SecretValues) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(values))
    logger = logging.getLogger("test-value-redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers = []


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_shapeless_secrets_pass_the_shape_filter_until_registered(values: SecretValues) -> None:
    line = f"calling upstream with {SHAPELESS}"
    assert redact(line, values) == line
    values.add(SHAPELESS)
    assert redact(line, values) == f"calling upstream with {MASK}"


def test_registered_values_are_masked_in_messages_arguments_and_tracebacks(
    values: SecretValues, captured: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = captured
    values.add(SHAPELESS)
    logger.info("key %s", SHAPELESS)
    logger.info("fields %r", {"api_key": SHAPELESS, "base_url": "http://127.0.0.1:9/v1"})
    logger.warning(f"inline{SHAPELESS}glued")
    try:
        raise RuntimeError(f"upstream refused {SHAPELESS}")
    except RuntimeError:
        logger.exception("failed")
    logger.info("unrelated %s", OTHER)
    output = stream.getvalue()
    assert SHAPELESS not in output
    assert output.count(MASK) == 4
    assert f"inline{MASK}glued" in output
    assert "http://127.0.0.1:9/v1" in output, "only the registered value is masked"
    assert OTHER in output


def test_json_escaped_forms_are_masked_too(values: SecretValues) -> None:
    quoted = 'ab"cd\\ef-0123456789'
    values.add(quoted)
    document = json.dumps({"api_key": quoted})
    assert quoted not in document  # the escaped form is what a JSON line carries
    assert redact(document, values) == json.dumps({"api_key": MASK})


def test_short_values_are_not_registered(values: SecretValues) -> None:
    short = "x" * (MIN_SECRET_LENGTH - 1)
    values.add(short, "")
    assert len(values) == 0
    assert redact(f"the {short} stays", values) == f"the {short} stays"


def test_overlapping_values_mask_the_longest_first(values: SecretValues) -> None:
    values.add("abcdefgh1234", "abcdefgh1234567890", "abcdefghZZZZ")
    text = "a abcdefgh1234567890 b abcdefgh1234 c abcdefghZZZZ d"
    assert redact(text, values) == f"a {MASK} b {MASK} c {MASK} d"


def test_the_oldest_values_are_forgotten_past_the_capacity() -> None:
    values = SecretValues(capacity=3)
    names = [f"secret-value-{n:04d}" for n in range(4)]  # one shared prefix
    values.add(*names)
    assert names[0] not in values
    assert all(name in values for name in names[1:])
    values.add(names[1])  # used again: now the newest
    values.add("secret-value-9999")
    assert names[1] in values
    assert names[2] not in values
    assert redact(f"{names[2]} {names[1]}", values) == f"{names[2]} {MASK}"


def test_many_values_are_all_found(values: SecretValues) -> None:
    many = [f"tenant-{n:05d}-key-{n * 7919:08d}" for n in range(2000)]
    values.add(*many)
    line = " ".join(many[::250])
    assert redact(line, values) == " ".join([MASK] * len(many[::250]))


def test_a_registry_never_shows_its_values(values: SecretValues) -> None:
    values.add(SHAPELESS)
    assert SHAPELESS not in repr(values)
    assert SHAPELESS not in str(values)


def test_the_gateway_log_handler_masks_shapes_and_unsealed_values(
    restore_root_logger: None, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "gw-unsealed-Xk29fLq0Pz7"
    SECRET_VALUES.add(secret)
    gateway_cli._configure_logging("info")
    log = logging.getLogger("tenant_gateway.test")
    log.info("opened %s and %s", secret, "sk-planted-gateway-shape-0042")
    try:
        raise ValueError(secret)
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["msg"] == f"opened {MASK} and {MASK}"
    assert "ValueError" in lines[1]["exc"]
    assert secret not in json.dumps(lines)


def test_the_control_plane_log_handler_masks_registered_values(restore_root_logger: None) -> None:
    secret = "cp-stored-Wm41nVb8Rq2"
    SECRET_VALUES.add(secret)
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    logging.getLogger("tenantry.test").info("stored %s", secret, extra={"field": secret})
    entry = json.loads(stream.getvalue())
    assert entry["msg"] == f"stored {MASK}"
    assert entry["field"] == MASK
