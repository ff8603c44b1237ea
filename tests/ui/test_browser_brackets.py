"""A bracket's page in a real headless chromium: entry -> fill -> exits, each with its
status, following partial fills live (issue 14)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from hmt.sim.broker import Fills
from tests.support.browser import DESKTOP, Problems, chromium, screenshot
from tests.support.factories import INFY
from tests.support.system import running_system
from tests.system.test_brackets import bracket_body, create
from tests.ui.test_browser import WAIT_MS, sign_in


async def test_the_entry_page_shows_entry_fill_and_exits_as_they_change(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        running_system(f"sqlite:///{tmp_path / 'hmt.db'}", fill_sweep_ms=200) as system,
        chromium() as browser,
    ):
        system.sim.broker.fills = Fills(parts=2)
        system.push(INFY, "1000")
        created = await create(system, bracket_body())
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/triggers/{created['id']}")
        card = page.locator("#bracket-card")
        await expect(card).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#b-status")).to_have_text("open")
        await expect(page.locator("#b-entry")).to_contain_text("active")
        await expect(page.locator("#b-fill")).to_have_text("0 filled · 0 armed")
        await expect(page.locator("#b-prices")).to_have_text("target ₹1,050.00 · stop ₹980.00")
        await expect(page.locator("#b-exits tbody tr")).to_have_count(0)

        system.push(INFY, "1012")  # the entry fires: 5 of 10 fill
        await expect(page.locator("#b-status")).to_have_text("armed", timeout=WAIT_MS)
        await expect(page.locator("#b-fill")).to_have_text("5 filled · 5 armed")
        await expect(page.locator("#b-entry")).to_contain_text("placed")
        exits = page.locator("#b-exits tbody tr")
        await expect(exits).to_have_count(1)
        await expect(exits.locator('[data-col="order"]')).to_have_text("SELL 5 · MIS · MARKET")
        await expect(exits.locator('[data-col="status"]')).to_have_text("active")
        await screenshot(page, "bracket-01-armed")

        system.push(INFY, "1013")  # the rest fills: the exit grows
        await expect(page.locator("#b-status")).to_have_text("filled", timeout=WAIT_MS)
        await expect(page.locator("#b-fill")).to_have_text("10 filled · 10 armed")
        await expect(exits.locator('[data-col="order"]')).to_have_text("SELL 10 · MIS · MARKET")

        system.push(INFY, "1051")  # the target
        await expect(exits.locator('[data-col="status"]')).to_have_text("placed", timeout=WAIT_MS)
        await expect(exits.locator('[data-col="fired"]')).to_have_text("target")
        await screenshot(page, "bracket-02-exit-placed")
    assert problems.seen == []  # no console error, no CSP violation
