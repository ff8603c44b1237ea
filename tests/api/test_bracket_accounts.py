"""A bracket's entry names its account as a trigger does (docs/accounts.md): the
caller's own, traded by this engine, at its instrument's broker; else a 422 naming
`entry.account` and nothing is stored. A Kite engine beside the Upstox simulator, both
stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from hmt.store.tables import brackets, gtt_orders
from tests.support.brokers import KITE_INFY, UPSTOX_RELIANCE, Listed
from tests.support.system import System
from tests.support.two_brokers import kite_beside_upstox, link_upstox


def _bracket(listed: Listed, account: str | None, target: str, stop: str) -> dict[str, Any]:
    order = {
        "instrument_token": listed.token,
        "exchange": listed.exchange,
        "tradingsymbol": listed.tradingsymbol,
        "transaction_type": "BUY",
        "quantity": 1,
        "product": "MIS",
    }
    entry: dict[str, Any] = {
        "trigger_type": "single",
        "legs": [{"condition": {"price": stop, "direction": "at_or_below"}, "orders": [order]}],
    }
    if account is not None:
        entry["account"] = account
    return {"entry": entry, "exits": {"target": target, "stop": str(int(stop) - 50)}}


def _rules(response: Any) -> set[tuple[str, str]]:
    return {(e["field"], e["rule"]) for e in response.json()["errors"]}


async def _counts(system: System) -> tuple[int, int]:
    async def work(conn: Any) -> tuple[int, int]:
        triggers = (await conn.execute(select(func.count()).select_from(gtt_orders))).scalar()
        made = (await conn.execute(select(func.count()).select_from(brackets))).scalar()
        return int(triggers), int(made)

    result: tuple[int, int] = await system.runtime.db.transaction(work, write=False)
    return result


async def test_a_brackets_entry_account_is_checked_as_a_triggers(database_url: str) -> None:
    async with kite_beside_upstox(database_url) as (system, upstox):
        await link_upstox(system, upstox)  # "up-1", the caller's Upstox account

        def kite(account: str | None) -> dict[str, Any]:
            return _bracket(KITE_INFY, account, target="1700", stop="1600")

        def on_upstox(account: str | None) -> dict[str, Any]:
            return _bracket(UPSTOX_RELIANCE, account, target="2500", stop="2400")

        before = await _counts(system)
        refusals = [
            (kite("nobody"), None, "unknown_account", "'nobody'"),
            # Another user's account is not theirs to name.
            (kite("up-1"), system.operator_token, "unknown_account", "'up-1'"),
            # An account at another broker than its instrument's: the order could not go.
            (kite("up-1"), None, "instrument_broker", str(KITE_INFY.token)),
            (on_upstox(None), None, "instrument_broker", str(UPSTOX_RELIANCE.token)),
            (on_upstox("default"), None, "instrument_broker", "upstox"),
        ]
        for body, who, rule, named in refusals:
            refused = await system.client.post("/brackets", json=body, headers=system.auth(who))
            assert refused.status_code == 422, refused.text
            assert ("entry.account", rule) in _rules(refused), refused.text
            assert named in refused.text
        assert await _counts(system) == before  # nothing stored

        made = await system.client.post("/brackets", json=on_upstox("up-1"), headers=system.auth())
        assert made.status_code == 201, made.text
        assert made.json()["entry"]["account"] == "up-1"
        assert await _counts(system) == (before[0] + 1, before[1] + 1)
