"""The web UI in a real headless chromium against the whole system on loopback.

One system per test (SQLite; the store's backends are the system tests'
business); screenshots of each page land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import DESKTOP, PHONE, Problems, chromium, screenshot
from tests.support.system import System, running_system

INFY, TCS = 408065, 2953217
WAIT_MS = 10_000


async def sign_in(page: Page, system: System, token: str) -> None:
    await page.goto(f"{system.api_url}/ui/")
    await page.fill("#token", token)
    await page.click("#signin-form button[type=submit]")
    await expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)


async def pick_instrument(page: Page, query: str, symbol: str) -> None:
    await page.fill("#symbol", query)
    await page.locator(f'#symbol-results li[data-symbol="{symbol}"]').click(timeout=WAIT_MS)
    await expect(page.locator("#picked")).to_contain_text(f"NSE:{symbol}")


def row(page: Page, trigger_id: str) -> object:
    return page.locator(f'#triggers tr[data-id="{trigger_id}"]')


async def created_id(page: Page, before: set[str]) -> str:
    """The id of the row the form just added."""
    await expect(page.locator("#triggers tbody tr")).to_have_count(len(before) + 1, timeout=WAIT_MS)
    ids = set(
        await page.locator("#triggers tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    )
    (new,) = ids - before
    return new


async def test_sign_in_create_watch_it_move_and_fire_without_reloading(tmp_path: Path) -> None:
    """Sign in, create through the form (a bad price first), see LTP move, see it become placed."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(INFY, "1600.00")
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await page.goto(f"{system.api_url}/ui/")
        await expect(page.locator("#signin")).to_be_visible()
        await page.fill("#token", "hmt_wrong_token")
        await page.click("#signin-form button[type=submit]")
        await expect(page.locator("#signin-error")).to_contain_text("not accepted")
        await screenshot(page, "01-sign-in")
        await sign_in(page, system, system.user_token)
        assert "hmt_" not in page.url
        assert system.user_token not in page.url

        # A bad price: the API's 422 lands next to the field, nothing is created.
        await pick_instrument(page, "INF", "INFY")
        await page.fill("#trigger_price_1", "-5")
        await page.click("#form-submit")
        error = page.locator('[data-error-for="trigger_price_1"]')
        await expect(error).to_contain_text("greater than 0", timeout=WAIT_MS)
        await expect(page.locator("#trigger_price_1")).to_have_attribute("aria-invalid", "true")
        await screenshot(page, "02-inline-error")
        assert await page.locator("#triggers tbody tr").count() == 0

        await page.fill("#trigger_price_1", "1610.00")
        await page.click("#form-submit")
        trigger_id = await created_id(page, set())
        created = row(page, trigger_id)
        await expect(created.locator('[data-col="status"]')).to_have_text("active")
        await page.evaluate("window.notReloaded = true")

        # Live LTP and distance move with the simulator's prices.
        system.push(INFY, "1601.00")
        await expect(created.locator('[data-col="ltp"]')).to_have_text("1,601.00", timeout=WAIT_MS)
        system.push(INFY, "1605.00")
        await expect(created.locator('[data-col="ltp"]')).to_have_text("1,605.00", timeout=WAIT_MS)
        await expect(created.locator('[data-col="distance"]')).to_have_text("+0.31%")
        await expect(page.locator("#engine-state")).to_have_text("running")
        await expect(page.locator("#s-ticker")).to_have_text("connected")
        await screenshot(page, "03-dashboard")

        system.push(INFY, "1610.00")
        await expect(created.locator('[data-col="status"]')).to_have_text("placed", timeout=WAIT_MS)
        assert await page.evaluate("window.notReloaded") is True
        (order,) = system.sim.orders()
        assert (order["tradingsymbol"], order["transaction_type"]) == ("INFY", "BUY")

        # The filter shows only the chosen status.
        await page.select_option("#filter", "active")
        await expect(page.locator("#triggers tbody tr")).to_have_count(0, timeout=WAIT_MS)
        await page.select_option("#filter", "placed")
        await expect(page.locator("#triggers tbody tr")).to_have_count(1, timeout=WAIT_MS)

        # The detail page follows a live oco: LTP and distance, then its fire, without a reload.
        oco = await system.create(
            trigger_type="oco",
            transaction_type="SELL",
            trigger_price_1="1590.00",
            trigger_price_2="1620.00",
        )
        await page.goto(f"{system.api_url}/ui/triggers/{oco['id']}")
        await expect(page.locator("#d-status")).to_have_text("active", timeout=WAIT_MS)
        await expect(page.locator("#chart canvas").first).to_be_visible()
        await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
        await page.evaluate("window.notReloaded = true")
        system.push(INFY, "1615.00")
        await expect(page.locator("#d-ltp")).to_have_text("1,615.00", timeout=WAIT_MS)
        await expect(page.locator("#d-distance")).to_have_text("+0.31%")
        system.push(INFY, "1620.00")
        await expect(page.locator("#d-status")).to_have_text("placed", timeout=WAIT_MS)
        assert await page.evaluate("window.notReloaded") is True
        history = page.locator("#history tbody")
        for kind in ("created", "claimed", "order_sent", "placed"):
            await expect(history).to_contain_text(kind)
        await expect(page.locator("#d-fired")).to_contain_text("1,620.00 (leg 2)")
        await expect(page.locator("#d-ltp")).to_have_text("1,620.00", timeout=WAIT_MS)
        await screenshot(page, "04-trigger-detail")
        await page.set_viewport_size(PHONE)
        await screenshot(page, "05-trigger-detail-phone")
        await page.goto(f"{system.api_url}/ui/")
        await expect(page.locator("#app")).to_be_visible()
        await expect(page.locator("#triggers tbody tr")).to_have_count(2, timeout=WAIT_MS)
        await screenshot(page, "06-dashboard-phone")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width} px)"
        await page.close()
    assert problems.seen == []


async def test_cancel_and_edit_through_the_forms(tmp_path: Path) -> None:
    """Cancel takes a confirming second click; edit saves through PATCH and the row shows it."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(TCS, "3100.00")
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await pick_instrument(page, "TC", "TCS")
        await page.select_option("#transaction_type", "SELL")
        await page.fill("#trigger_price_1", "3000.00")
        await page.click("#form-submit")
        first = await created_id(page, set())
        await page.select_option("#trigger_type", "oco")
        await pick_instrument(page, "TCS", "TCS")
        await page.select_option("#transaction_type", "SELL")
        await page.fill("#trigger_price_1", "3000.00")
        await page.fill("#trigger_price_2", "3200.00")
        await page.click("#form-submit")
        second = await created_id(page, {first})

        cancel = row(page, first).locator("button.danger")
        await cancel.click()
        await expect(cancel).to_have_text("Confirm cancel")
        await cancel.click()
        await expect(row(page, first).locator('[data-col="status"]')).to_have_text("cancelled")
        assert (await system.trigger(first))["status"] == "cancelled"

        probe = await system.client.patch(f"/triggers/{second}", json={}, headers=system.auth())
        if probe.status_code == 405:
            await page.close()
            pytest.skip("edit step: PATCH /triggers/{id} is not in this branch's API yet")
        await row(page, second).locator("button.secondary").click()
        await expect(page.locator("#form-title")).to_contain_text("Edit TCS")
        await screenshot(page, "07-edit-form")
        await page.fill("#trigger_price_2", "3250.00")
        await page.click("#form-submit")
        await expect(row(page, second)).to_contain_text("3,250.00", timeout=WAIT_MS)
        assert (await system.trigger(second))["trigger_price_2"] == "3250"
        await page.close()
    assert problems.seen == []


async def test_another_user_sees_none_of_the_first_users_triggers(tmp_path: Path) -> None:
    """Bob's table lacks Alice's trigger, and her trigger's page is 'not yours' for him."""
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(INFY, "1600.00")
        alices = await system.create(trigger_price_1="1700.00")
        bob = (await system.runtime.tokens.issue("bob")).token
        alice_page = await browser.new_page(viewport=DESKTOP)
        await sign_in(alice_page, system, system.user_token)
        await expect(row(alice_page, alices["id"])).to_be_visible(timeout=WAIT_MS)
        bob_context = await browser.new_context(viewport=DESKTOP)  # his own sessionStorage
        bob_page = await bob_context.new_page()
        await sign_in(bob_page, system, bob)
        await expect(bob_page.locator("#empty")).to_be_visible(timeout=WAIT_MS)
        system.push(INFY, "1601.00")
        await expect(row(alice_page, alices["id"]).locator('[data-col="ltp"]')).to_have_text(
            "1,601.00", timeout=WAIT_MS
        )
        assert await bob_page.locator("#triggers tbody tr").count() == 0
        await bob_page.goto(f"{system.api_url}/ui/triggers/{alices['id']}")
        await expect(bob_page.locator("#page-error")).to_have_text("No such trigger of yours.")
        await expect(bob_page.locator("#detail")).to_be_hidden()
        await screenshot(bob_page, "08-other-users-trigger")
        await bob_context.close()
        await alice_page.close()


async def test_status_card_shows_a_ticker_disconnect_and_the_login_banner(tmp_path: Path) -> None:
    """The broker session expires: the card says the ticker is down and asks for a login."""
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(INFY, "1600.00")
        await system.create(trigger_price_1="1700.00")
        page = await browser.new_page(viewport=DESKTOP)
        await sign_in(page, system, system.user_token)
        await expect(page.locator("#s-ticker")).to_have_text("connected", timeout=WAIT_MS)
        await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
        await expect(page.locator("#login-banner")).to_be_hidden()
        system.sim.expire_session()
        await expect(page.locator("#s-ticker")).to_have_text(
            re.compile(r"^disconnected"), timeout=WAIT_MS
        )
        await expect(page.locator("#s-health")).to_have_text("down")
        await expect(page.locator("#login-banner")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#s-reasons")).to_contain_text("ticker disconnected")
        await screenshot(page, "09-ticker-disconnected")
        await page.close()


async def test_the_form_shows_the_instrument_masters_422_next_to_the_field(tmp_path: Path) -> None:
    """An off-tick price and a symbol that is not the token's: each error lands by its field,
    says the rule in words, and nothing is created."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await pick_instrument(page, "INF", "INFY")
        await page.fill("#trigger_price_1", "1610.03")  # INFY's tick is 0.10 in the simulator
        await page.click("#form-submit")
        price_error = page.locator('[data-error-for="trigger_price_1"]')
        await expect(price_error).to_contain_text("tick size 0.10", timeout=WAIT_MS)
        await expect(price_error).to_contain_text("1610.00 and 1610.10")
        await expect(page.locator("#trigger_price_1")).to_have_attribute("aria-invalid", "true")
        await screenshot(page, "10-off-tick-price")

        # A stale pick: INFY's token sent with another symbol (as a script or an old tab might).
        await page.fill("#trigger_price_1", "1610.00")
        await page.evaluate("document.getElementById('tradingsymbol').value = 'RELIANCE'")
        await page.click("#form-submit")
        symbol_error = page.locator('[data-error-for="tradingsymbol"]')
        await expect(symbol_error).to_have_text(
            "instrument 408065 is NSE:INFY, not RELIANCE", timeout=WAIT_MS
        )
        await expect(page.locator("#symbol")).to_have_attribute("aria-invalid", "true")
        await expect(price_error).to_have_text("")
        await screenshot(page, "11-symbol-not-the-tokens")
        assert await page.locator("#triggers tbody tr").count() == 0
        listed = await system.client.get("/triggers", headers=system.auth())
        assert listed.json() == []

        # An edit is checked the same way: an off-tick price stays in the form, the row unchanged.
        created = await system.create(trigger_price_1="1700.00")
        await row(page, created["id"]).locator("button.secondary").click(timeout=WAIT_MS)
        await expect(page.locator("#form-title")).to_contain_text("Edit INFY")
        await page.fill("#trigger_price_1", "1700.07")
        await page.click("#form-submit")
        await expect(price_error).to_contain_text("1700.00 and 1700.10", timeout=WAIT_MS)
        assert (await system.trigger(created["id"]))["trigger_price_1"] == "1700"
        await page.close()
    assert problems.seen == []
