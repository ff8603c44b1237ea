"""What a broker says about orders: the vocabulary every order adapter shares.

The Kite REST client and the paper broker both answer in these terms, so the
executor decides retries from one classification, whichever broker it talks to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from hmt.core.errors import HmtError


class ErrorKind(StrEnum):
    """How the executor must treat a failed broker call."""

    # Nothing reached the broker (connection refused, rate limited): send again as is.
    RETRY = "retry"
    # The order may exist (timeout after sending, 5xx): look the tag up before anything else.
    AMBIGUOUS = "ambiguous"
    # The broker refused it for a reason a retry cannot change: fail with its message.
    FINAL = "final"
    # The session is invalid or expired: nothing can succeed until a new token is set.
    AUTH = "auth"


class BrokerError(HmtError):
    """A failed broker call, classified, with the broker's own words kept for the trader."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        error_type: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.kind = kind
        self.message = message
        self.error_type = error_type
        self.http_status = http_status
        self.retry_after = retry_after
        detail = ", ".join(
            part
            for part in (error_type, None if http_status is None else f"HTTP {http_status}")
            if part
        )
        super().__init__(f"{kind}: {message}" + (f" ({detail})" if detail else ""))


# Kite's order statuses after which nothing more will happen to the order.
TERMINAL_ORDER_STATUSES = frozenset({"COMPLETE", "REJECTED", "CANCELLED"})


@dataclass(frozen=True, slots=True)
class OrderReport:
    """One order as the broker's order book shows it."""

    order_id: str
    status: str
    tag: str | None
    tags: tuple[str, ...] = ()
    status_message: str | None = None
    filled_quantity: int = 0
    instrument_token: int | None = None  # None when the broker's row does not say

    def carries(self, tag: str) -> bool:
        """Whether this order carries `tag`, as its user tag or in its tag list."""
        return self.tag == tag or tag in self.tags

    @property
    def rejected(self) -> bool:
        return self.status == "REJECTED"


def retry_after(headers: Mapping[str, str]) -> float | None:
    """A broker's Retry-After header in seconds (never negative); None if absent or not a number."""
    value = headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def describe(exc: Exception) -> str:
    """A transport error for a log or a broker error's message. Both brokers send the token in
    a header, so neither the URL nor the text carries a secret."""
    return type(exc).__name__ + (f" ({exc})" if str(exc) else "")
