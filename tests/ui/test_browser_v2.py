"""The v2 forms in a real headless chromium: baskets on a watched index, time legs in IST,
and the API's 422 beside the exact row and field (trigger model v2, issue 13)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Page, expect

from tests.support.browser import DESKTOP, PHONE, Problems, chromium, screenshot
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, created_id, row, sign_in

NIFTY_50 = 256265
INFY, TCS = 408065, 2953217
OPTION = "NIFTY26DEC24600CE"  # v2-sim's index options: NFO, lot 65, tick 0.05
_IST = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST$")


async def advanced(page: Page) -> None:
    await page.select_option("#mode", "basket")
    await expect(page.locator("#basket-fields")).to_be_visible()


def order_row(page: Page, leg: int, position: int) -> object:
    return page.locator("#legs fieldset.leg").nth(leg).locator(".order").nth(position)


async def pick_order(
    page: Page, leg: int, position: int, symbol: str, exchange: str = "NSE"
) -> None:
    order = order_row(page, leg, position)
    await order.locator('[data-name="exchange"]').select_option(exchange)
    await order.locator('[data-name="symbol"]').fill(symbol)
    await order.locator(f'.results li[data-symbol="{symbol}"]').click(timeout=WAIT_MS)
    await expect(order.locator("[data-picked]")).to_contain_text(f"{exchange}:{symbol}")


async def test_a_three_order_basket_watching_nifty_50_is_listed_and_shown_order_by_order(
    tmp_path: Path,
) -> None:
    """Watch NIFTY 50 (an index: watched, never ordered), three order rows of three types on
    two exchanges; the table says "3 orders" and the watched index, the page lists each
    order; the option's lot size is checked in its own row."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await advanced(page)
        await page.fill("#watch-symbol", "NIFTY 50")
        await page.locator('#watch-results li[data-symbol="NIFTY 50"]').click(timeout=WAIT_MS)
        await expect(page.locator("#watch-picked")).to_contain_text(
            f"NSE:NIFTY 50 (token {NIFTY_50}"
        )
        leg = page.locator("#legs fieldset.leg").first
        await leg.locator('[data-name="direction"]').select_option("at_or_below")
        await leg.locator('[data-name="level"]').fill("23800")
        add = leg.locator("[data-add-order]")
        await add.click()
        await add.click()
        await expect(leg.locator(".order")).to_have_count(3)
        await expect(leg.locator("[data-order-count]")).to_have_text("3 of 20 orders")

        await pick_order(page, 0, 0, "INFY")
        await pick_order(page, 0, 1, "TCS")
        second = order_row(page, 0, 1)
        await second.locator('[data-name="transaction_type"]').select_option("SELL")
        await second.locator('[data-name="product"]').select_option("MIS")
        await expect(second.locator('[data-name="price"]')).to_be_hidden()  # MARKET has none
        await second.locator('[data-name="order_type"]').select_option("LIMIT")
        await expect(second.locator('[data-name="trigger_price"]')).to_be_hidden()
        await second.locator('[data-name="price"]').fill("3100")
        # An index option on NFO (the exchange chosen beside the search), lot 65.
        await pick_order(page, 0, 2, OPTION, exchange="NFO")
        third = order_row(page, 0, 2)
        await expect(third.locator("[data-picked]")).to_contain_text("lot 65")
        await third.locator('[data-name="transaction_type"]').select_option("SELL")
        await third.locator('[data-name="product"]').select_option("NRML")
        await third.locator('[data-name="order_type"]').select_option("SL-M")
        await expect(third.locator('[data-name="price"]')).to_be_hidden()
        await third.locator('[data-name="trigger_price"]').fill("40.05")
        await third.locator('[data-name="validity"]').select_option("DAY")
        await page.click("#form-submit")  # one contract: not a multiple of the lot
        lot = third.locator('[data-error-for="legs[0].orders[2].quantity"]')
        await expect(lot).to_contain_text("lot size (65)", timeout=WAIT_MS)
        await third.locator('[data-name="quantity"]').fill("65")
        await screenshot(page, "v2-01-basket-form")
        await page.click("#form-submit")

        trigger_id = await created_id(page, set())
        listed = row(page, trigger_id)
        await expect(listed).to_contain_text("3 orders")
        await expect(listed.locator("td").nth(2)).to_have_text("BUY/SELL")  # every side
        await expect(listed).to_contain_text("on NIFTY 50")
        await expect(listed.locator('[data-col="status"]')).to_have_text("active")
        assert await listed.get_attribute("data-token") == str(NIFTY_50)
        # LTP and distance are the watched index's, not the first order's instrument's.
        system.push(NIFTY_50, "24000.00")
        await expect(listed.locator('[data-col="ltp"]')).to_have_text("24,000.00", timeout=WAIT_MS)
        await expect(listed.locator('[data-col="distance"]')).to_have_text("-0.83%")
        stored = await system.trigger(trigger_id)
        assert stored["watch"]["instrument_token"] == NIFTY_50
        (stored_leg,) = stored["legs"]
        assert [o["tradingsymbol"] for o in stored_leg["orders"]] == ["INFY", "TCS", OPTION]
        assert stored_leg["orders"][2]["quantity"] == 65
        assert [o["order_type"] for o in stored_leg["orders"]] == ["MARKET", "LIMIT", "SL-M"]
        await screenshot(page, "v2-02-basket-listed")

        await listed.locator("a").click()
        await expect(page.locator("#d-status")).to_have_text("active", timeout=WAIT_MS)
        await expect(page.locator("#d-watch")).to_have_text("NSE:NIFTY 50")
        await expect(page.locator("#d-symbol")).to_contain_text("3 orders")
        await expect(page.locator("#d-prices")).to_have_text("≤ 23,800.00")
        orders = page.locator("#orders tbody tr")
        await expect(orders).to_have_count(3)
        for i, (symbol, kind) in enumerate(
            (("NSE:INFY", "MARKET"), ("NSE:TCS", "LIMIT"), (f"NFO:{OPTION}", "SL-M"))
        ):
            await expect(orders.nth(i)).to_contain_text(symbol)
            await expect(orders.nth(i)).to_contain_text(kind)
        await expect(orders.nth(1)).to_contain_text("3,100.00 / –")
        await expect(orders.nth(2)).to_contain_text("– / 40.05")
        await expect(orders.nth(0)).to_contain_text("≤ 23,800.00")
        await expect(page.locator("#d-created")).to_have_text(_IST)
        await screenshot(page, "v2-03-basket-page")

        # Edit: the basket opens in the advanced form; drop an order and move the price.
        await page.goto(f"{system.api_url}/ui/")
        await row(page, trigger_id).locator("button.secondary").click(timeout=WAIT_MS)
        await expect(page.locator("#mode")).to_have_value("basket")
        await expect(page.locator("#watch-symbol")).to_have_value("NIFTY 50")
        leg = page.locator("#legs fieldset.leg").first
        await expect(leg.locator(".order")).to_have_count(3)
        await expect(order_row(page, 0, 2).locator('[data-name="trigger_price"]')).to_have_value(
            "40.05"
        )
        await order_row(page, 0, 2).locator("[data-remove-order]").click()
        await leg.locator('[data-name="level"]').fill("23700")
        await page.click("#form-submit")
        await expect(row(page, trigger_id)).to_contain_text("2 orders", timeout=WAIT_MS)
        await expect(row(page, trigger_id)).to_contain_text("23,700.00")
        edited = await system.trigger(trigger_id)
        assert edited["watch"]["instrument_token"] == NIFTY_50
        assert [o["tradingsymbol"] for o in edited["legs"][0]["orders"]] == ["INFY", "TCS"]

        await page.set_viewport_size(PHONE)
        await page.goto(f"{system.api_url}/ui/")
        # The quantity column is dropped at phone width: the count moves beside the symbol.
        count = row(page, trigger_id).locator(".phone-only")
        await expect(count).to_be_visible(timeout=WAIT_MS)
        await expect(count).to_have_text(" · 2 orders")
        await advanced(page)
        await screenshot(page, "v2-04-basket-form-phone")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the form scrolls sideways at phone width ({width} px)"
        await page.close()
    assert problems.seen == []


async def test_a_time_leg_is_entered_and_shown_in_ist(tmp_path: Path) -> None:
    """15:15 typed in the form is 09:45 UTC in the API and "15:15:00 IST" on both pages."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await advanced(page)
        leg = page.locator("#legs fieldset.leg").first
        await leg.locator('[data-name="kind"]').select_option("time")
        await expect(leg.locator('[data-name="level"]')).to_be_hidden()
        await leg.locator('[data-name="at"]').fill("2027-12-01T15:15:00")
        await pick_order(page, 0, 0, "INFY")
        first = order_row(page, 0, 0)
        await first.locator('[data-name="transaction_type"]').select_option("SELL")
        await first.locator('[data-name="product"]').select_option("MIS")
        await page.fill("#expires_at", "2027-12-01T15:25:00")
        await page.click("#form-submit")

        trigger_id = await created_id(page, set())
        listed = row(page, trigger_id)
        await expect(listed).to_contain_text("at 2027-12-01 15:15:00 IST")
        stored = await system.trigger(trigger_id)
        at = datetime.fromisoformat(stored["legs"][0]["condition"]["at"])
        assert at.astimezone(UTC) == datetime(2027, 12, 1, 9, 45, tzinfo=UTC)
        expires = datetime.fromisoformat(stored["expires_at"])
        assert expires.astimezone(UTC) == datetime(2027, 12, 1, 9, 55, tzinfo=UTC)

        await listed.locator("a").click()
        await expect(page.locator("#d-prices")).to_have_text(
            "at 2027-12-01 15:15:00 IST", timeout=WAIT_MS
        )
        await expect(page.locator("#d-expires")).to_have_text("2027-12-01 15:25:00 IST")
        await expect(page.locator("#orders tbody tr")).to_have_count(1)
        await expect(page.locator("#history tbody tr").first.locator("td").first).to_have_text(_IST)
        await screenshot(page, "v2-05-time-leg-page")

        # An edit loads the time back in IST: the same wall-clock time, not the browser's zone.
        await page.goto(f"{system.api_url}/ui/")
        await row(page, trigger_id).locator("button.secondary").click(timeout=WAIT_MS)
        await expect(page.locator("#mode")).to_have_value("basket")
        at_input = page.locator("#legs fieldset.leg").first.locator('[data-name="at"]')
        await expect(at_input).to_have_value(
            re.compile(r"^2027-12-01T15:15(:00)?$")
        )  # chromium drops :00
        await at_input.fill("2027-12-01T15:20:00")
        await page.click("#form-submit")
        await expect(row(page, trigger_id)).to_contain_text(
            "at 2027-12-01 15:20:00 IST", timeout=WAIT_MS
        )
        edited = await system.trigger(trigger_id)
        at = datetime.fromisoformat(edited["legs"][0]["condition"]["at"])
        assert at.astimezone(UTC) == datetime(2027, 12, 1, 9, 50, tzinfo=UTC)
        assert edited["expires_at"] == stored["expires_at"]  # not sent, so unchanged
        assert edited["legs"][0]["orders"] == stored["legs"][0]["orders"]
        await page.close()
    assert problems.seen == []


async def test_a_basket_rows_422_lands_beside_that_rows_field(tmp_path: Path) -> None:
    """A zero quantity in the second row: the message sits in that row, the input is marked,
    the other rows are clean and nothing is created; an unpicked symbol is caught first."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await advanced(page)
        leg = page.locator("#legs fieldset.leg").first
        await leg.locator('[data-name="level"]').fill("1610")
        await leg.locator('[data-name="direction"]').select_option("at_or_above")
        await leg.locator("[data-add-order]").click()
        await pick_order(page, 0, 0, "INFY")
        second = order_row(page, 0, 1)
        await second.locator('[data-name="symbol"]').fill("NOSUCHSYMBOL")
        await page.click("#form-submit")
        await expect(
            second.locator('[data-error-for="legs[0].orders[1].instrument_token"]')
        ).to_have_text("Pick an instrument from the search.", timeout=WAIT_MS)

        await pick_order(page, 0, 1, "TCS")
        await second.locator('[data-name="quantity"]').fill("0")
        await page.click("#form-submit")
        slot = second.locator('[data-error-for="legs[0].orders[1].quantity"]')
        await expect(slot).to_contain_text("greater than or equal to 1", timeout=WAIT_MS)
        await expect(second.locator('[data-name="quantity"]')).to_have_attribute(
            "aria-invalid", "true"
        )
        first = order_row(page, 0, 0)
        await expect(first.locator('[data-error-for="legs[0].orders[0].quantity"]')).to_be_empty()
        await expect(first.locator('[data-name="quantity"]')).not_to_have_attribute(
            "aria-invalid", "true"
        )
        await screenshot(page, "v2-06-row-error")

        # The instrument master's rule (tick size) on that row's LIMIT price lands there too.
        await second.locator('[data-name="quantity"]').fill("1")
        await second.locator('[data-name="order_type"]').select_option("LIMIT")
        await second.locator('[data-name="price"]').fill("3100.03")  # TCS's tick is 0.10
        await page.click("#form-submit")
        price = second.locator('[data-error-for="legs[0].orders[1].price"]')
        await expect(price).to_contain_text("tick size 0.10", timeout=WAIT_MS)
        await expect(slot).to_be_empty()
        await expect(second.locator('[data-name="price"]')).to_have_attribute(
            "aria-invalid", "true"
        )
        await screenshot(page, "v2-07-row-tick-error")
        listed = await system.client.get("/triggers", headers=system.auth())
        assert listed.json() == []

        # Removing the first row renumbers the rest: TCS's error slot is now orders[0]'s.
        await first.locator("[data-remove-order]").click()
        await expect(leg.locator(".order")).to_have_count(1)
        await expect(
            leg.locator('.order [data-error-for="legs[0].orders[0].quantity"]')
        ).to_have_count(1)
        await expect(leg.locator("[data-remove-order]")).to_be_disabled()
        await page.close()
    assert problems.seen == []


async def test_the_orders_table_shows_each_orders_status_id_tag_and_the_brokers_message(
    tmp_path: Path,
) -> None:
    """A fired order's row says placed with its order id and tag; a refused one says failed
    with the broker's own words; a leg that has not fired has no state yet."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(INFY, "1600.00")
        placed = await system.create(
            trigger_type="oco",
            transaction_type="SELL",
            trigger_price_1="1590.00",
            trigger_price_2="1610.00",
        )
        system.push(INFY, "1610.00")
        done = await system.settled(placed["id"])
        assert done["status"] == "placed"
        system.sim.faults.add(
            kind="error",
            endpoint="place_order",
            error_type="InputException",
            message="Insufficient funds for this order",
        )
        refused = await system.create(trigger_price_1="1620.00")
        system.push(INFY, "1620.00")
        assert (await system.settled(refused["id"]))["status"] == "failed"

        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/triggers/{placed['id']}")
        orders = page.locator("#orders tbody tr")
        await expect(orders).to_have_count(2, timeout=WAIT_MS)
        fired = page.locator('#orders tr[data-leg="2"]')
        await expect(fired.locator('[data-col="status"]')).to_have_text("placed")
        await expect(fired.locator('[data-col="order_id"]')).to_have_text(done["order_id"])
        await expect(fired.locator('[data-col="tag"]')).to_have_text(done["broker_tag"])
        unfired = page.locator('#orders tr[data-leg="1"]')
        await expect(unfired.locator('[data-col="status"]')).to_have_text("–")
        await expect(unfired.locator('[data-col="order_id"]')).to_have_text("–")
        await expect(page.locator("#d-fired")).to_contain_text(" IST")

        await page.goto(f"{system.api_url}/ui/triggers/{refused['id']}")
        failed = page.locator('#orders tr[data-leg="1"]')
        await expect(failed.locator('[data-col="status"]')).to_have_text("failed", timeout=WAIT_MS)
        await expect(failed.locator('[data-col="message"]')).to_contain_text("Insufficient funds")
        await screenshot(page, "v2-08-failed-order")
        await page.close()
    assert problems.seen == []


async def test_a_fired_basket_shows_each_orders_own_outcome_live(tmp_path: Path) -> None:
    """NIFTY 50 falls through the level while the page is open: the first order is placed
    (its id and tag shown), the broker refuses the second (its words shown), no reload."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(NIFTY_50, "24000.00")
        created = await system.client.post(
            "/triggers",
            json={
                "watch": {"exchange": "NSE", "tradingsymbol": "NIFTY 50",
                          "instrument_token": NIFTY_50},
                "trigger_type": "single",
                "legs": [
                    {
                        "condition": {"price": "23800", "direction": "at_or_below"},
                        "orders": [
                            {"exchange": "NSE", "tradingsymbol": "INFY", "instrument_token": INFY,
                             "transaction_type": "BUY", "quantity": 1, "product": "CNC"},
                            {"exchange": "NSE", "tradingsymbol": "TCS", "instrument_token": TCS,
                             "transaction_type": "BUY", "quantity": 1, "product": "CNC"},
                        ],
                    }
                ],
            },
            headers=system.auth(),
        )  # fmt: skip
        assert created.status_code == 201, created.text
        trigger_id = created.json()["id"]
        # The first placement passes untouched; the second is refused for good.
        system.sim.faults.add(kind="latency", endpoint="place_order", delay=0.0, times=1)
        system.sim.faults.add(
            kind="error", endpoint="place_order", error_type="InputException",
            message="Margin exceeds the available funds", times=1,
        )  # fmt: skip

        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/triggers/{trigger_id}")
        await expect(page.locator("#orders tbody tr")).to_have_count(2, timeout=WAIT_MS)
        await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
        await page.evaluate("window.notReloaded = true")
        system.push(NIFTY_50, "23790.00")
        await expect(page.locator("#d-status")).to_have_text("failed", timeout=WAIT_MS)
        assert await page.evaluate("window.notReloaded") is True
        final = await system.trigger(trigger_id)
        first, second = final["legs"][0]["orders"]
        assert (first["status"], second["status"]) == ("placed", "failed")
        rows = page.locator("#orders tbody tr")
        await expect(rows.nth(0).locator('[data-col="status"]')).to_have_text("placed")
        await expect(rows.nth(0).locator('[data-col="order_id"]')).to_have_text(first["order_id"])
        await expect(rows.nth(0).locator('[data-col="tag"]')).to_have_text(first["tag"])
        await expect(rows.nth(1).locator('[data-col="status"]')).to_have_text("failed")
        await expect(rows.nth(1).locator('[data-col="tag"]')).to_have_text(second["tag"])
        await expect(rows.nth(1).locator('[data-col="message"]')).to_contain_text(
            "Margin exceeds the available funds"
        )
        assert first["tag"] != second["tag"]
        await expect(page.locator("#d-fired")).to_contain_text("₹23,790.00 (leg 1)")
        await expect(page.locator("#d-fired")).to_contain_text(" IST")
        await screenshot(page, "v2-09-fired-basket")
        await page.close()
    assert problems.seen == []


async def test_an_oco_of_a_stop_and_a_square_off_time(tmp_path: Path) -> None:
    """oco shows the second leg: a price stop on one leg, a time in IST on the other; the
    table shows both conditions, the API has both legs in order."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await advanced(page)
        legs = page.locator("#legs fieldset.leg")
        await expect(legs.nth(1)).to_be_hidden()
        await page.select_option("#b-trigger_type", "oco")
        await expect(legs.nth(1)).to_be_visible()
        await legs.nth(0).locator('[data-name="direction"]').select_option("at_or_below")
        await legs.nth(0).locator('[data-name="level"]').fill("1500")
        await pick_order(page, 0, 0, "INFY")
        await legs.nth(1).locator('[data-name="kind"]').select_option("time")
        await legs.nth(1).locator('[data-name="at"]').fill("2027-12-01T15:15")
        await pick_order(page, 1, 0, "INFY")
        for leg in (0, 1):
            order = order_row(page, leg, 0)
            await order.locator('[data-name="transaction_type"]').select_option("SELL")
            await order.locator('[data-name="product"]').select_option("MIS")
        await page.click("#form-submit")

        trigger_id = await created_id(page, set())
        await expect(row(page, trigger_id)).to_contain_text(
            "≤ 1,500.00 / at 2027-12-01 15:15:00 IST"
        )
        stored = await system.trigger(trigger_id)
        first, second = stored["legs"]
        assert (first["condition"]["price"], first["condition"]["direction"]) == (
            "1500",
            "at_or_below",
        )
        at = datetime.fromisoformat(second["condition"]["at"])
        assert at.astimezone(UTC) == datetime(2027, 12, 1, 9, 45, tzinfo=UTC)
        await page.close()
    assert problems.seen == []
