"""The performance page in a real headless chromium against a running engine: live figures
from the stream, the last 24 hours from the history, charts drawn; screenshots saved."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.support.browser import DESKTOP, PHONE, Problems, chromium, screenshot
from tests.support.eventually import eventually
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, sign_in

INFY = 408065


async def test_performance_page_shows_the_engine_live_and_over_the_day(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        running_system(f"sqlite:///{tmp_path / 'hmt.db'}", metrics_sample_s=1) as system,
        chromium() as browser,
    ):
        system.push(INFY, "1600.00")
        fired = [await system.create(trigger_price_1=f"{1601 + k}.00") for k in range(2)]
        for price in ("1601.00", "1602.00"):
            system.push(INFY, price)
        for trigger in fired:
            await system.settled(trigger["id"])

        async def rows() -> bool:
            response = await system.client.get("/performance/history", headers=system.auth())
            return sum(r["orders_placed"] for r in response.json()["samples"]) == 2

        await eventually(rows, within=10, interval=0.2)

        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.click("#performance-link")
        await expect(page).to_have_url(re.compile(r"/ui/performance$"))
        await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
        await expect(page.locator("#p-health")).to_have_text("ok", timeout=WAIT_MS)
        await expect(page.locator("#p-orders")).to_have_text(
            "2 placed · 0 failed · 0 retried · 0 queued", timeout=WAIT_MS
        )
        await expect(page.locator("#p-headroom")).to_contain_text("/10 · 198/200 · 2998/3000")
        await expect(page.locator("#p-t2o")).to_have_text(re.compile(r"^\d.* / \d"))
        await expect(page.locator("#p-claim")).to_have_text(re.compile(r"^\d.* / \d"))
        await expect(page.locator("#p-ticks")).to_contain_text("#0 ")
        await expect(page.locator("#p-reconnects")).to_have_text("0")
        await expect(page.locator("#p-range")).to_contain_text("Live: the last 15 minutes")
        for chart in ("ticks", "latency", "orders", "headroom", "health"):
            await expect(page.locator(f"#c-{chart} canvas").first).to_be_visible()
        # Live points keep coming from the stream: ticks now show in the ticks chart's data.
        system.push(INFY, "1599.00")
        await page.wait_for_timeout(1500)
        await screenshot(page, "20-performance-live")

        await page.click("#view-day")
        await expect(page.locator("#view-day")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("#p-range")).to_contain_text("Last 24 hours", timeout=WAIT_MS)
        await expect(page.locator("#p-range")).to_contain_text(" IST")
        shown = int(await page.locator("#p-range").get_attribute("data-rows") or "0")
        assert shown >= 2
        # The orders chart carries the history's two fills (drawn from its data).
        await screenshot(page, "21-performance-day")
        await page.set_viewport_size(PHONE)
        await screenshot(page, "22-performance-phone")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width} px)"
        await page.close()
    assert problems.seen == []
