"""The log filter masks every secret shape we hand out or hold."""

import io
import logging

import pytest

from control_plane.cli.redaction import RedactSecrets

PLANTED = [
    "tnt_admin_TnmAPqmrdAuTSsljztUbeK73HdGKmytPNGtQXFi-k1s",
    "tgk_kqrDc0-M8mGvTpvJr0zYYUgikuTDxfnwlo5x4e2afY0",
    "tgi_0123456789abcdefghijklmnopqrstuv",
    "sk-planted-openai-secret-value-7731",
    "123456789:AAplantedTelegramTokenValue_abcdefghijk",
]


@pytest.fixture
def captured() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("test-redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


@pytest.mark.parametrize("secret", PLANTED)
def test_secrets_in_messages_arguments_and_tracebacks_are_masked(
    captured: tuple[logging.Logger, io.StringIO], secret: str
) -> None:
    logger, stream = captured
    logger.info("value %s here", secret)
    logger.warning(f"inline {secret}")
    logger.info("header %r", {"Authorization": f"Bearer {secret}"})
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logger.exception("failed")
    output = stream.getvalue()
    assert secret not in output
    assert output.count("[redacted]") >= 4
    assert "value [redacted] here" in output


def test_ordinary_lines_pass_unchanged(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.info("tenant %s running at %s", "acme", "http://127.0.0.1:8080")
    assert stream.getvalue().strip() == "tenant acme running at http://127.0.0.1:8080"
