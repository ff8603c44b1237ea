"""GET and POST /accounts, and a trigger's account (docs/accounts.md): clear 422s naming the
field, secrets sealed and never shown, another user's accounts unknown. Both stores."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hmt.logs import REDACTOR
from hmt.store.tables import gtt_orders
from tests.support.system import System, running_system

KEY = "a-test-sealing-key-0123456789"
SECRET = "CANARYaccountsecret42"
TOKEN = "CANARYaccounttoken77"


def _account(**changes: Any) -> dict[str, Any]:
    return {
        "id": "desk-1",
        "broker": "kite",
        "label": "The desk",
        "api_key": "deskkey01",
        "api_secret": SECRET,
        "access_token": TOKEN,
        **changes,
    }


async def _post(system: System, body: dict[str, Any], token: str | None = None) -> Any:
    return await system.client.post("/accounts", json=body, headers=system.auth(token))


def _rules(response: Any) -> set[tuple[str, str]]:
    return {(e["field"], e["rule"]) for e in response.json()["errors"]}


async def test_link_list_and_refuse(database_url: str) -> None:
    async with running_system(database_url, secret_key=KEY) as system:
        listed = await system.client.get("/accounts", headers=system.auth())
        assert listed.status_code == 200, listed.text
        assert [(a["id"], a["broker"], a["session"]) for a in listed.json()] == [
            ("default", "kite", "valid")
        ]

        bad = [
            (_account(id="Desk_1"), ("id", "string_pattern_mismatch")),
            (_account(id="default"), ("id", "reserved")),
            (_account(broker="zerodha"), ("broker", "literal_error")),
            (_account(api_key=""), ("api_key", "string_too_short")),
            (_account(access_token="bad token!"), ("access_token", "string_pattern_mismatch")),
            (_account(label=""), ("label", "string_too_short")),
        ]
        for body, rule in bad:
            refused = await _post(system, body)
            assert refused.status_code == 422, refused.text
            assert rule in _rules(refused), refused.text
        missing = {k: v for k, v in _account().items() if k != "broker"}
        assert ("broker", "missing") in _rules(await _post(system, missing))

        made = await _post(system, _account())
        assert made.status_code == 201, made.text
        shown = made.json()
        assert (shown["id"], shown["broker"], shown["label"]) == ("desk-1", "kite", "The desk")
        # The simulator knows no such API key: its order book was refused at once.
        assert shown["session"] == "expired"
        assert "api_key" in shown["reason"]
        # The log redactor hides them from here on.
        assert TOKEN not in REDACTOR.scrub(f"token {TOKEN}")
        assert SECRET not in REDACTOR.scrub(f"secret {SECRET}")
        again = await _post(system, _account(), system.operator_token)
        assert again.status_code == 409, again.text
        assert ("id", "taken") in _rules(again)

        listed = await system.client.get("/accounts", headers=system.auth())
        assert [a["id"] for a in listed.json()] == ["default", "desk-1"]
        assert TOKEN not in listed.text
        assert SECRET not in listed.text
        theirs = await system.client.get("/accounts", headers=system.auth(system.operator_token))
        assert [a["id"] for a in theirs.json()] == ["default"]  # another user's: not shown

        # A trigger's account: the caller's own, "default", or absent.
        mine = await system.create(trigger_price_1="1700.00", account="desk-1")
        assert mine["account"] == "desk-1"
        assert (await system.trigger(mine["id"]))["account"] == "desk-1"
        plain = await system.create(trigger_price_1="1700.00")
        assert plain["account"] == "default"
        named = await system.create(trigger_price_1="1700.00", account="default")
        assert named["account"] == "default"
        base = {k: v for k, v in plain.items() if k in _V1_SENT}
        for account, rule in (("nobody", "unknown_account"), ("Bad Id", "string_pattern_mismatch")):
            refused = await system.client.post(
                "/triggers", json={**base, "account": account}, headers=system.auth()
            )
            assert refused.status_code == 422, refused.text
            assert ("account", rule) in _rules(refused), refused.text
        theirs_trigger = await system.client.post(
            "/triggers",
            json={**base, "account": "desk-1"},
            headers=system.auth(system.operator_token),
        )
        assert theirs_trigger.status_code == 422, theirs_trigger.text
        assert "desk-1" in theirs_trigger.text

        # An edit may move it to another of the caller's accounts, checked the same way.
        moved = await system.client.patch(
            f"/triggers/{mine['id']}", json={"account": "default"}, headers=system.auth()
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["account"] == "default"
        kept = await system.create(trigger_price_1="1700.00", account="desk-1")
        as_v2 = await system.client.patch(
            f"/triggers/{kept['id']}", json={"on_gap": "skip"}, headers=system.auth()
        )
        assert as_v2.status_code == 200, as_v2.text
        assert as_v2.json()["account"] == "desk-1"  # a v2 edit keeps the account
        refused = await system.client.patch(
            f"/triggers/{mine['id']}", json={"account": "nobody"}, headers=system.auth()
        )
        assert refused.status_code == 422, refused.text
        assert ("account", "unknown_account") in _rules(refused)


_V1_SENT = {
    "instrument_token",
    "exchange",
    "tradingsymbol",
    "trigger_type",
    "transaction_type",
    "trigger_price_1",
    "quantity",
    "product",
}


async def test_linking_needs_the_sealing_key(database_url: str) -> None:
    async with running_system(database_url) as system:
        refused = await _post(system, _account())
        assert refused.status_code == 409, refused.text
        assert ("server", "not_configured") in _rules(refused)
        listed = await system.client.get("/accounts", headers=system.auth())
        assert [a["id"] for a in listed.json()] == ["default"]


OPTION = {"instrument_token": 12073986, "exchange": "NFO", "tradingsymbol": "BANKNIFTY18JAN23500CE"}


def _v2(**changes: Any) -> dict[str, Any]:
    """A v2 body (with `legs`): buy 40 calls at market when they fall to 2,000."""
    order = {**OPTION, "transaction_type": "BUY", "quantity": 40, "product": "NRML"}
    return {
        "trigger_type": "single",
        "legs": [
            {"condition": {"price": "2000.00", "direction": "at_or_below"}, "orders": [order]}
        ],
        **changes,
    }


async def _stored(system: System) -> list[tuple[str, str | None]]:
    async def work(conn: Any) -> list[tuple[str, str | None]]:
        rows = await conn.execute(select(gtt_orders.c.id, gtt_orders.c.account))
        return sorted((r.id, r.account) for r in rows)

    result: list[tuple[str, str | None]] = await system.runtime.db.transaction(work, write=False)
    return result


async def test_a_v2_trigger_names_its_account(database_url: str) -> None:
    """The v2 body's `account`: checked as v1's, stored, shown; a v2 edit keeps or moves it."""
    async with running_system(database_url, secret_key=KEY) as system:
        assert (await _post(system, _account())).status_code == 201

        made = await system.client.post(
            "/triggers", json=_v2(account="desk-1"), headers=system.auth()
        )
        assert made.status_code == 201, made.text
        mine = made.json()
        assert mine["account"] == "desk-1"
        assert (await system.trigger(mine["id"]))["account"] == "desk-1"
        assert await _stored(system) == [(mine["id"], "desk-1")]
        for account in (None, "default"):
            plain = await system.client.post(
                "/triggers", json=_v2(account=account), headers=system.auth()
            )
            assert plain.status_code == 201, plain.text
            assert plain.json()["account"] == "default"
            assert (plain.json()["id"], None) in await _stored(system)
        before = await _stored(system)

        for who, account in ((None, "nobody"), (system.operator_token, "desk-1")):
            refused = await system.client.post(
                "/triggers", json=_v2(account=account), headers=system.auth(who)
            )
            assert refused.status_code == 422, refused.text
            assert ("account", "unknown_account") in _rules(refused), refused.text
            assert repr(account) in refused.text
        # A bracket's entry is checked as a trigger's (tests/api/test_bracket_accounts.py).
        bracket = {"entry": _v2(account="nobody"), "exits": {"target": "2500", "stop": "1900"}}
        refused = await system.client.post("/brackets", json=bracket, headers=system.auth())
        assert refused.status_code == 422, refused.text
        assert ("entry.account", "unknown_account") in _rules(refused), refused.text
        assert await _stored(system) == before  # nothing written

        edit = {"legs": [{"condition": {"price": "1950.00", "direction": "at_or_below"}}]}
        kept = await system.client.patch(
            f"/triggers/{mine['id']}", json=edit, headers=system.auth()
        )
        assert kept.status_code == 200, kept.text
        assert (kept.json()["account"], kept.json()["trigger_price_1"]) == ("desk-1", "1950")

        moved = await system.client.patch(
            f"/triggers/{mine['id']}", json={**edit, "account": "default"}, headers=system.auth()
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["account"] == "default"
        assert (mine["id"], None) in await _stored(system)
        # A v1-shaped edit of a v2 trigger may name it too (it means the same in both).
        back = await system.client.patch(
            f"/triggers/{mine['id']}", json={"account": "desk-1"}, headers=system.auth()
        )
        assert back.status_code == 200, back.text
        assert back.json()["account"] == "desk-1"
        for body in ({**edit, "account": "nobody"}, {"account": "nobody"}):
            refused = await system.client.patch(
                f"/triggers/{mine['id']}", json=body, headers=system.auth()
            )
            assert refused.status_code == 422, refused.text
            assert ("account", "unknown_account") in _rules(refused), refused.text
        assert (await system.trigger(mine["id"]))["account"] == "desk-1"
