"""Paging `GET /triggers`: an opaque keyset cursor and the RFC 8288 `Link` to the next page.

The cursor names the last row a page showed, as (created_at, id): the next
page starts just past it, so triggers created meanwhile (which sort first)
shift nothing and none is shown twice or skipped. It is opaque to clients:
base64url of that pair, which a later version may change.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

from hmt.api.problems import ApiError
from hmt.store.records import TriggerRecord

Position = tuple[datetime, str]


def cursor_after(record: TriggerRecord) -> str:
    """The cursor of the page that starts just past `record`."""
    moment = record.created_at.astimezone(UTC).isoformat()
    raw = f"{moment}|{record.trigger.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position(cursor: str) -> Position:
    """The (created_at, id) a cursor names; a 422 naming `cursor` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, trigger_id = raw.split("|")
        at = datetime.fromisoformat(moment)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at.astimezone(UTC), str(uuid.UUID(trigger_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        message = 'is not a cursor from this API: follow the Link header\'s rel="next"'
        raise ApiError(422, f"cursor: {message}", field="cursor", rule="cursor_invalid") from None


def next_link(path: str, query: Mapping[str, str], cursor: str) -> str:
    """`Link` to the page after this one: the same filters and limit, the new cursor."""
    params = {k: v for k, v in query.items() if k not in ("cursor", "offset")}
    params["cursor"] = cursor
    return f'<{path}?{urlencode(params, quote_via=quote)}>; rel="next"'
