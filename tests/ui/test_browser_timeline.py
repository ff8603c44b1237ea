"""The trigger page's event history as a readable timeline, in a real headless chromium:
the fire's price, each step timed from it, the order id, the broker's message, the retries,
every time in IST with the zone written."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.support.browser import DESKTOP, PHONE, Problems, chromium, screenshot
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, sign_in

INFY = 408065
IST = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d IST$")
AFTER = re.compile(r"\d+(\.\d+)? (µs|ms|s) after the fire")


async def test_the_history_tells_the_fire_retry_placement_and_refusal(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system,
        chromium() as browser,
    ):
        system.push(INFY, "1600.00")
        # The first request meets a retryable broker error, the second is placed.
        system.sim.faults.add(
            kind="error",
            endpoint="place_order",
            error_type="NetworkException",
            message="The order gateway is busy",
            times=1,
        )
        retried = await system.create(trigger_price_1="1610.00")
        system.push(INFY, "1610.00")
        done = await system.settled(retried["id"])
        assert done["status"] == "placed"
        order_id = done["order_id"]
        # A refusal for good: its message is the broker's.
        system.sim.faults.add(
            kind="error",
            endpoint="place_order",
            error_type="InputException",
            message="Insufficient funds for this order",
            times=1,
        )
        refused = await system.create(trigger_price_1="1620.00")
        system.push(INFY, "1620.00")
        assert (await system.settled(refused["id"]))["status"] == "failed"

        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/triggers/{retried['id']}")
        history = page.locator("#history tbody")
        await expect(history.locator('tr[data-kind="placed"]')).to_have_count(1, timeout=WAIT_MS)
        story = history.locator('td[data-col="story"]')
        fired = history.locator('tr[data-kind="fired"] td[data-col="story"]')
        await expect(fired).to_have_text("Fired at ₹1,610.00 (leg 1)")
        await expect(history.locator('tr[data-kind="retry"] td[data-col="story"]')).to_have_text(
            re.compile(
                r"^Retry after attempt 1broker: .*The order gateway is busy.* after the fire$"
            )
        )
        sent = history.locator('tr[data-kind="order_sent"] td[data-col="story"]')
        await expect(sent).to_have_count(2)
        await expect(sent.nth(1)).to_contain_text("Order sent, attempt 2")
        placed = history.locator('tr[data-kind="placed"] td[data-col="story"]')
        await expect(placed).to_contain_text(f"Placed: order id {order_id}")
        await expect(placed).to_contain_text(AFTER)
        for cell in await history.locator('td[data-col="when"]').all():
            await expect(cell).to_have_text(IST)
        assert await story.count() >= 6
        summary = page.locator("#history-summary")
        await expect(summary).to_have_text(
            re.compile(
                rf"^Fired at ₹1,610\.00 \(leg 1\) · order {order_id} placed "
                r"\d+(\.\d+)? (µs|ms|s) after the fire · 1 retry$"
            )
        )
        # No raw field dump: the payload's key names are not shown.
        assert "ltp:" not in await history.inner_text()
        await screenshot(page, "30-timeline-placed-after-a-retry")

        await page.goto(f"{system.api_url}/ui/triggers/{refused['id']}")
        failed = page.locator('#history tbody tr[data-kind="failed"] td[data-col="story"]')
        await expect(failed).to_contain_text(
            "broker: Insufficient funds for this order", timeout=WAIT_MS
        )
        await expect(page.locator("#history-summary")).to_contain_text("failed", timeout=WAIT_MS)
        await expect(page.locator("#history-summary")).to_contain_text(
            "Insufficient funds for this order · 0 retries"
        )
        await screenshot(page, "31-timeline-refused")
        await page.set_viewport_size(PHONE)
        await screenshot(page, "32-timeline-phone")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width} px)"
        await page.close()
    assert problems.seen == []
