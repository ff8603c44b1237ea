"""Secrets never reach a rendered log line, whether by key, inside text, or from a library."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from hmt import logs

CANARY = "canaryAccessToken9f8e7d"


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    logs.configure(level="debug", json=True)
    logs.register_secret(CANARY)
    yield capsys
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def test_secret_keys_are_masked(captured) -> None:  # type: ignore[no-untyped-def]
    """Values under secret-sounding keys are masked, other fields kept."""
    logs.get_logger("t").info("login", access_token="abc123456", api_secret="s3cr3t!!", user="u1")
    (line,) = lines(captured)
    assert line["access_token"] == logs.MASK
    assert line["api_secret"] == logs.MASK
    assert line["user"] == "u1"


def test_registered_values_are_masked_anywhere(captured) -> None:  # type: ignore[no-untyped-def]
    """A registered secret is masked inside URLs, nested data and exception text."""
    log = logs.get_logger("t")
    log.info("connecting", url=f"ws://127.0.0.1:1/?api_key=k&access_token={CANARY}")
    log.info("nested", data={"headers": [f"token k:{CANARY}"]})
    try:
        raise RuntimeError(f"handshake failed for {CANARY}")
    except RuntimeError:
        log.exception("boom")
    text = captured.readouterr().err
    assert CANARY not in text
    assert text.count(logs.MASK) >= 3


def test_standard_library_loggers_go_through_the_redactor(captured) -> None:  # type: ignore[no-untyped-def]
    """A library logging through `logging` (uvicorn, httpx) is redacted the same way."""
    logging.getLogger("httpx").warning("GET /x?access_token=%s", CANARY)
    (line,) = lines(captured)
    assert CANARY not in json.dumps(line)
    assert line["logger"] == "httpx"


def test_http_client_request_lines_are_quiet_at_info(capsys: pytest.CaptureFixture[str]) -> None:
    """At info, httpx's line per request is not shown (the engine's story is); its warnings
    are, and at debug everything is."""
    try:
        logs.configure(level="info")
        logging.getLogger("httpx").info('HTTP Request: POST http://x/orders "HTTP/1.1 200 OK"')
        logging.getLogger("httpx").warning("httpx trouble")
        logging.getLogger("hmt.engine").info("fired INFY")
        err = capsys.readouterr().err
        assert "HTTP Request" not in err
        assert "httpx trouble" in err
        assert "fired INFY" in err
        logs.configure(level="debug")
        logging.getLogger("httpx").info('HTTP Request: GET http://x/orders "HTTP/1.1 200 OK"')
        assert "HTTP Request" in capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)
