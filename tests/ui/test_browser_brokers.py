"""Two brokers in the create form (docs/ui.md, "Broker accounts"): with a Kite default
account and a linked Upstox one, the instrument search asks for the chosen account's
broker only and says whose each result is; choosing another account drops an instrument
picked at the other broker. The Kite simulator and the Upstox simulator at once."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Locator, Page, expect

from tests.support.brokers import KITE_INFY, UPSTOX_RELIANCE
from tests.support.browser import DESKTOP, Problems, chromium, screenshot
from tests.support.two_brokers import kite_beside_upstox, link_upstox
from tests.ui.test_browser import WAIT_MS, created_id, row, sign_in
from tests.ui.test_browser_v2 import advanced, order_row

KITE_RELIANCE = 738561  # the Kite simulator's NSE:RELIANCE


def reliance(results: Locator) -> Locator:
    return results.locator('li[data-symbol="RELIANCE"]')


async def test_the_search_offers_the_chosen_accounts_brokers_instrument(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        kite_beside_upstox(f"sqlite:///{tmp_path / 'hmt.db'}") as (system, upstox),
        chromium() as browser,
    ):
        await link_upstox(system, upstox)
        system.side.push(KITE_INFY.token, "1600.00")
        upstox.push(UPSTOX_RELIANCE.token, "2400.00")
        await upstox.pushed()
        page: Page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        chooser = page.locator("#account")
        await expect(chooser).to_be_visible(timeout=WAIT_MS)
        await expect(chooser).to_have_value("default")
        results = page.locator("#symbol-results")

        # The default account trades at Kite: Kite's RELIANCE only, said to be Kite's.
        await page.fill("#symbol", "RELIANCE")
        await expect(reliance(results)).to_have_count(1, timeout=WAIT_MS)
        await expect(reliance(results)).to_have_attribute("data-broker", "kite")
        await expect(reliance(results)).to_contain_text("kite")
        await reliance(results).click()
        await expect(page.locator("#picked")).to_contain_text("kite")
        await expect(page.locator("#instrument_token")).to_have_value(str(KITE_RELIANCE))

        # The Upstox account: the Kite pick is dropped and the search asks Upstox's.
        await chooser.select_option("up-1")
        await expect(page.locator("#instrument_token")).to_have_value("")
        await expect(page.locator("#picked")).not_to_contain_text("kite")
        await expect(reliance(results)).to_have_attribute("data-broker", "upstox", timeout=WAIT_MS)
        await expect(reliance(results)).to_have_count(1)
        await expect(reliance(results)).to_contain_text("upstox")
        await screenshot(page, "47-search-upstox-account")
        await reliance(results).click()
        await expect(page.locator("#picked")).to_contain_text("NSE:RELIANCE (upstox")
        await page.fill("#trigger_price_1", "2410.00")
        await page.fill("#quantity", "1")
        await page.click("#form-submit")
        made = await created_id(page, set())
        stored = await system.trigger(made)
        assert (stored["account"], stored["instrument_token"]) == ("up-1", UPSTOX_RELIANCE.token)
        await expect(row(page, made).locator('[data-col="account"]')).to_have_text("up-1")

        # The advanced form's order rows likewise, back and forth between the accounts.
        await advanced(page)
        await chooser.select_option("up-1")
        order = order_row(page, 0, 0)
        await order.locator('[data-name="symbol"]').fill("RELIANCE")
        order_results = order.locator(".results")
        await expect(reliance(order_results)).to_have_count(1, timeout=WAIT_MS)
        await expect(reliance(order_results)).to_have_attribute("data-broker", "upstox")
        await reliance(order_results).click()
        picked = order.locator("[data-picked]")
        await expect(picked).to_contain_text("upstox")
        await chooser.select_option("default")
        await expect(picked).to_have_text("")
        await expect(reliance(order_results)).to_have_attribute(
            "data-broker", "kite", timeout=WAIT_MS
        )
        await expect(reliance(order_results)).to_have_count(1)
        await page.close()
    assert problems.seen == []
