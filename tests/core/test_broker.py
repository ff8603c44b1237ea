"""The broker vocabulary: tag matching on reports, and errors that keep the broker's words."""

from __future__ import annotations

from hmt.core.broker import BrokerError, ErrorKind, OrderReport


def test_report_carries_tag_as_user_tag_or_in_the_list() -> None:
    """A tag matches in `tag` or in `tags` (Kite adds system tags such as mktp)."""
    plain = OrderReport(order_id="1", status="OPEN", tag="HMTX1")
    listed = OrderReport(order_id="2", status="OPEN", tag=None, tags=("mktp", "HMTX1"))
    assert plain.carries("HMTX1")
    assert listed.carries("HMTX1")
    assert not plain.carries("HMTX2")
    assert OrderReport(order_id="3", status="REJECTED", tag=None).rejected


def test_broker_error_text_keeps_message_type_and_status() -> None:
    """The error's text carries the kind, the broker's message, its type and HTTP status."""
    error = BrokerError(
        ErrorKind.FINAL, "Insufficient funds", error_type="MarginException", http_status=400
    )
    assert str(error) == "final: Insufficient funds (MarginException, HTTP 400)"
    assert str(BrokerError(ErrorKind.RETRY, "refused")) == "retry: refused"
