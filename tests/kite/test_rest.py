"""Kite's envelope and error classification (FACTS.md 2.3): what a retry may do."""

from __future__ import annotations

import json

import pytest

from hmt.core.broker import BrokerError, ErrorKind
from hmt.kite.rest import classify, parse_response
from tests.support.services import kite_fixture


def error_body(error_type: str | None, message: str = "nope") -> bytes:
    body: dict[str, object] = {"status": "error", "message": message}
    if error_type:
        body["error_type"] = error_type
    return json.dumps(body).encode()


def test_success_envelope_unwraps_data() -> None:
    """The `data` of the real order_response fixture comes back as it is."""
    body = kite_fixture("order_response.json").read_bytes()
    assert parse_response(200, body, {}) == {"order_id": "151220000000000"}


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (429, None, ErrorKind.RETRY),
        (403, "TokenException", ErrorKind.AUTH),
        (403, None, ErrorKind.AUTH),
        (403, "PermissionException", ErrorKind.FINAL),
        (400, "InputException", ErrorKind.FINAL),
        (400, "MarginException", ErrorKind.FINAL),
        (500, "OrderException", ErrorKind.FINAL),
        (400, "OrderException", ErrorKind.FINAL),
        (503, "NetworkException", ErrorKind.AMBIGUOUS),
        (502, "DataException", ErrorKind.AMBIGUOUS),
        (500, "GeneralException", ErrorKind.AMBIGUOUS),
        (504, None, ErrorKind.AMBIGUOUS),
    ],
)
def test_each_error_is_classified(status: int, error_type: str | None, kind: ErrorKind) -> None:
    """Each documented error type and HTTP code maps to the retry rule of FACTS.md 2.3."""
    assert classify(status, error_type) is kind
    with pytest.raises(BrokerError) as info:
        parse_response(status, error_body(error_type, "broker says no"), {"retry-after": "2"})
    assert info.value.kind is kind
    assert info.value.message == "broker says no"
    assert info.value.http_status == status
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (200, b"<html>gateway</html>", ErrorKind.AMBIGUOUS),
        (502, b"", ErrorKind.AMBIGUOUS),
        (400, b"not json", ErrorKind.FINAL),
        (200, b"[1, 2]", ErrorKind.AMBIGUOUS),
    ],
)
def test_unreadable_bodies_are_errors_not_crashes(
    status: int, body: bytes, kind: ErrorKind
) -> None:
    """A body that is not Kite's envelope becomes a classified error naming the problem."""
    with pytest.raises(BrokerError, match="unreadable response body") as info:
        parse_response(status, body, {"retry-after": "soon"})
    assert info.value.kind is kind
    assert info.value.retry_after is None
