"""Kite's error envelope: an error type, its HTTP status and a message."""

from __future__ import annotations

from typing import Any

# HTTP status Kite uses for each error_type (../shared/kite/FACTS.md 2.3). The
# statuses FACTS marks "client default" are what pykiteconnect assumes too.
ERROR_STATUS: dict[str, int] = {
    "TokenException": 403,
    "PermissionException": 403,
    "UserException": 403,
    "InputException": 400,
    "MarginException": 400,
    "HoldingException": 400,
    "OrderException": 500,
    "GeneralException": 500,
    "DataException": 502,
    "NetworkException": 503,
}

INVALID_SESSION = "Incorrect `api_key` or `access_token`."


class KiteError(Exception):
    """An error that the REST layer renders as Kite's error envelope."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(error_type, 500)

    def envelope(self) -> dict[str, Any]:
        """The JSON body Kite sends with this error."""
        return {
            "status": "error",
            "message": self.message,
            "data": None,
            "error_type": self.error_type,
        }


def input_error(message: str) -> KiteError:
    """A 400 InputException: the request's parameters are wrong."""
    return KiteError("InputException", message)
