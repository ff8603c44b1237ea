"""Paging `GET /triggers`: X-Total-Count, an RFC 8288 next link with a keyset cursor."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from hmt.api.pages import cursor_after, next_link, position
from hmt.api.problems import ApiError
from tests.support.system import System, running_system

NEXT = re.compile(r'<([^>]+)>; rel="next"')


async def _page(system: System, url: str) -> tuple[list[str], int, str | None]:
    """The ids on one page, the total it reports and the next page's URL."""
    response = await system.client.get(url, headers=system.auth())
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)  # v1 clients keep reading a list
    link = response.headers.get("link")
    found = NEXT.fullmatch(link) if link is not None else None
    assert link is None or found is not None, link
    total = int(response.headers["x-total-count"])
    return [t["id"] for t in response.json()], total, found.group(1) if found else None


async def test_the_next_links_walk_every_trigger_once_while_new_ones_arrive(
    database_url: str,
) -> None:
    """Following rel="next" shows each trigger exactly once, newest first, though one is added."""
    async with running_system(database_url) as system:
        made = [(await system.create(trigger_price_1=f"{9000 + i}.00"))["id"] for i in range(7)]
        everything, total, link = await _page(system, "/triggers?limit=500")
        assert (sorted(everything), total, link) == (sorted(made), 7, None)
        seen: list[str] = []
        url: str | None = "/triggers?limit=3"
        pages = 0
        while url is not None:
            ids, total, url = await _page(system, url)
            seen += ids
            pages += 1
            if pages == 1:  # a newer trigger sorts first: with offsets it would shift page 2
                late = (await system.create(trigger_price_1="9100.00"))["id"]
            assert total == 8 if pages > 1 else total == 7
        assert pages == 3
        assert seen == everything
        assert late not in seen


async def test_filters_and_limit_ride_along_in_the_link_and_offset_still_works(
    database_url: str,
) -> None:
    """The link keeps status and limit; offset pages as before; the total counts the filter."""
    async with running_system(database_url) as system:
        for i in range(3):
            await system.create(trigger_price_1=f"{9000 + i}.00")
        await system.create(trigger_price_1="9500.00", paused=True)
        ids, total, link = await _page(system, "/triggers?status=active&limit=2")
        assert (len(ids), total) == (2, 3)
        assert link is not None
        assert "status=active" in link
        assert "limit=2" in link
        rest, _, end = await _page(system, link)
        assert (len(rest), end) == (1, None)
        every, _, _ = await _page(system, "/triggers?status=active")
        assert ids + rest == every
        by_offset, total, _ = await _page(system, "/triggers?status=active&limit=2&offset=2")
        assert (by_offset, total) == (rest, 3)
        empty, total, link = await _page(system, "/triggers?status=placed")
        assert (empty, total, link) == ([], 0, None)


async def test_a_cursor_that_is_not_ours_is_a_422_naming_cursor(sqlite_url: str) -> None:
    """A forged or mangled cursor is refused as bad input, not a 500."""
    async with running_system(sqlite_url) as system:
        for forged in ("abc", "%%%", "MjAyNnx4", "bm90LWEtZGF0ZXxub3QtYW4taWQ"):
            response = await system.client.get(
                "/triggers", params={"cursor": forged}, headers=system.auth()
            )
            assert response.status_code == 422, (forged, response.text)
            assert response.json()["errors"][0]["field"] == "cursor"


async def test_the_schema_declares_the_paging_headers_and_the_bulk_body(sqlite_url: str) -> None:
    """OpenAPI describes X-Total-Count, Link and the cursor, and the bulk create's body."""
    async with running_system(sqlite_url) as system:
        schema = (await system.client.get("/openapi.json")).json()
        listing = schema["paths"]["/triggers"]["get"]
        assert set(listing["responses"]["200"]["headers"]) == {"X-Total-Count", "Link"}
        assert "cursor" in {p["name"] for p in listing["parameters"]}
        bulk = schema["paths"]["/triggers/bulk"]["post"]
        body = bulk["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/TriggersIn"}
        items = schema["components"]["schemas"]["TriggersIn"]["properties"]["triggers"]
        assert (items["items"], items["maxItems"]) == (
            {"$ref": "#/components/schemas/TriggerIn"},
            1000,
        )
        assert {"400", "413", "422", "429", "401"} <= set(bulk["responses"])


def test_a_cursor_round_trips_its_position_and_hides_it() -> None:
    """The cursor decodes to the (created_at, id) it was made from; it is opaque text."""

    at = datetime(2026, 11, 30, 9, 15, 0, 123456, tzinfo=UTC)
    trigger_id = "0b9c5d0e-8f4a-4a4e-9d59-1c1f7b9f0d11"
    row = SimpleNamespace(created_at=at, trigger=SimpleNamespace(id=trigger_id))
    cursor = cursor_after(row)  # type: ignore[arg-type]
    assert "2026" not in cursor
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert position(cursor) == (at, trigger_id)
    link = next_link("/triggers", {"limit": "2", "offset": "4", "cursor": "old"}, cursor)
    assert link == f'</triggers?limit=2&cursor={cursor}>; rel="next"'
    with pytest.raises(ApiError):
        position(cursor[:-3])
