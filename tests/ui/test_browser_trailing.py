"""A trailing stop in a real headless chromium (issue 14): created in the advanced form
(a 422 beside the trail's own field first), listed with its terms, and its page showing
the current stop as the engine moves it with the simulator's ticks."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from tests.support.browser import DESKTOP, Problems, chromium, screenshot
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, created_id, row, sign_in
from tests.ui.test_browser_v2 import advanced, order_row, pick_order

INFY = 408065


async def test_a_trailing_stop_is_created_in_the_form_and_its_stop_moves_on_its_page(
    tmp_path: Path,
) -> None:
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        system.push(INFY, "1500.00")
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await advanced(page)
        leg = page.locator("#legs fieldset.leg").first
        await leg.locator('[data-name="kind"]').select_option("trail")
        await expect(leg.locator('[data-name="level"]')).to_be_hidden()
        await expect(leg.locator('[data-name="trail_offset"]')).to_be_visible()
        await leg.locator('[data-name="direction"]').select_option("at_or_below")
        await leg.locator('[data-name="trail_offset"]').fill("5")
        await leg.locator('[data-name="trail_step"]').fill("0.15")  # not whole ticks (0.10)
        await pick_order(page, 0, 0, "INFY")
        first = order_row(page, 0, 0)
        await first.locator('[data-name="transaction_type"]').select_option("SELL")
        await first.locator('[data-name="product"]').select_option("CNC")
        await page.click("#form-submit")
        step = leg.locator('[data-error-for="legs[0].condition.trail.step"]')
        await expect(step).to_contain_text("whole number", timeout=WAIT_MS)
        assert (await system.client.get("/triggers", headers=system.auth())).json() == []

        await leg.locator('[data-name="trail_step"]').fill("0.20")
        await page.click("#form-submit")
        trigger_id = await created_id(page, set())
        listed = row(page, trigger_id)
        await expect(listed).to_contain_text("trailing 5.00 below")
        stored = await system.trigger(trigger_id)
        trail = stored["legs"][0]["condition"]["trail"]
        assert (trail["kind"], trail["offset"], trail["step"], trail["side"]) == (
            "price",
            "5",
            "0.2",
            "SELL",
        )
        await screenshot(page, "trail-01-listed")

        await listed.locator("a").click()
        await expect(page.locator("#d-prices")).to_contain_text(
            "trailing 5.00 below", timeout=WAIT_MS
        )
        system.push(INFY, "1510.00")
        stop = page.locator("#d-stop")
        await expect(stop).to_contain_text("1,505.00", timeout=WAIT_MS)
        await expect(stop).to_contain_text("best ₹1,510.00, live")
        system.push(INFY, "1520.00")  # the page follows the stop as it moves
        await expect(stop).to_contain_text("1,515.00", timeout=WAIT_MS)
        await screenshot(page, "trail-02-page")

        # An edit opens it in the advanced form with its terms.
        await page.goto(f"{system.api_url}/ui/")
        await row(page, trigger_id).locator("button.secondary").click(timeout=WAIT_MS)
        await expect(page.locator("#mode")).to_have_value("basket")
        leg = page.locator("#legs fieldset.leg").first
        await expect(leg.locator('[data-name="kind"]')).to_have_value("trail")
        await expect(leg.locator('[data-name="trail_offset"]')).to_have_value("5")
        await expect(leg.locator('[data-name="trail_step"]')).to_have_value("0.2")
        await leg.locator('[data-name="trail_offset"]').fill("8")
        await page.click("#form-submit")
        await expect(row(page, trigger_id)).to_contain_text("trailing 8.00 below", timeout=WAIT_MS)
        edited = await system.trigger(trigger_id)
        assert edited["legs"][0]["condition"]["trail"]["offset"] == "8"
        await page.close()
    assert problems.seen == []
