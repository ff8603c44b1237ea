"""The Backtest page in a real headless chromium against a running hmt: triggers from a
JSON file over a CSV upload, and the user's stored triggers over the broker's candles;
summary, per-trigger table and the charts drawn; bad input named; screenshots saved."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.async_api import Page, expect

from tests.support.browser import DESKTOP, PHONE, Problems, chromium, screenshot
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, sign_in

DAY = "2026-11-27"
TRIGGERS = [
    {"instrument_token": 408065, "exchange": "NSE", "tradingsymbol": "INFY",
     "trigger_type": "oco", "transaction_type": "SELL", "quantity": 10, "product": "MIS",
     "trigger_price_1": "1590.00", "trigger_price_2": "1610.00"},
    {"instrument_token": 408065, "exchange": "NSE", "tradingsymbol": "INFY",
     "trigger_type": "single", "transaction_type": "BUY", "quantity": 10, "product": "MIS",
     "trigger_price_1": "1700.00"},
]  # fmt: skip
PRICES = ["1600.00", "1604.00", "1608.50", "1610.20", "1606.00", "1602.00"]
TICKS = "timestamp,instrument,price\n" + "".join(
    f"{DAY}T09:{15 + n}:00+05:30,NSE:INFY,{p}\n" for n, p in enumerate(PRICES)
)


def _file(name: str, text: str, mime: str) -> dict[str, object]:
    return {"name": name, "mimeType": mime, "buffer": text.encode()}


async def _run(page: Page) -> None:
    await page.click("#bt-run")
    await expect(page.locator("#bt-status")).to_have_attribute("data-state", "done", timeout=30_000)


async def test_backtest_page_runs_and_draws(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system,
        chromium() as browser,
    ):
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.click("#backtest-link")
        await expect(page).to_have_url(re.compile(r"/ui/backtest$"))

        # Triggers from a JSON file, ticks from a CSV upload.
        await page.select_option("#bt-triggers", "json")
        await page.set_input_files(
            "#bt-triggers-file", _file("triggers.json", json.dumps(TRIGGERS), "application/json")
        )
        await page.select_option("#bt-source", "csv")
        await expect(page.locator("#bt-instruments-field")).to_be_hidden()
        # A bad row first: the 422 names the field and the row.
        await page.set_input_files(
            "#bt-csv-file", _file("ticks.csv", TICKS.replace("1604.00", "16o4"), "text/csv")
        )
        await page.click("#bt-run")
        await expect(page.locator("#bt-errors")).to_contain_text(
            "csv: csv:3: column 'price'", timeout=WAIT_MS
        )
        await page.set_input_files("#bt-csv-file", _file("ticks.csv", TICKS, "text/csv"))
        await _run(page)
        await expect(page.locator("#bt-errors")).to_be_empty()
        await expect(page.locator("#bt-fired")).to_have_text("1 of 2")
        await expect(page.locator("#bt-filled")).to_have_text("1 of 1")
        first = page.locator('#bt-table tr[data-id="t1"]')
        await expect(first.locator('[data-col="status"]')).to_have_text("fired")
        await expect(first.locator('[data-col="price"]')).to_have_text(
            "1,610.20"
        )  # a tick past the level: its price
        await expect(first).to_contain_text("2 · target")
        await expect(first).to_contain_text("SELL 10 NSE:INFY @ 1,610.20")
        await expect(page.locator('#bt-table tr[data-id="t2"] [data-col="status"]')).to_have_text(
            "active"
        )
        chart = page.locator('#bt-charts .chart[data-instrument="NSE:INFY"]')
        await expect(chart.locator("canvas").first).to_be_visible()
        await expect(chart).to_have_attribute("data-fills", "1")
        await expect(chart).to_have_attribute("data-lines", "3")  # the oco's two, the single's
        await expect(page.locator("#bt-equity canvas").first).to_be_visible()
        assert int(await page.locator("#bt-equity").get_attribute("data-points") or "0") >= 2
        await screenshot(page, "30-backtest-csv")

        # The user's stored triggers over the broker's minute candles of a whole day.
        await system.create(
            trigger_type="oco", transaction_type="SELL", trigger_price_1="1450.00",
            trigger_price_2="1700.00",
        )  # fmt: skip
        await page.select_option("#bt-triggers", "mine")
        await page.select_option("#bt-source", "candles")
        await page.fill("#bt-instruments", "NSE:INFY")
        await page.select_option("#bt-interval", "minute")
        await page.fill("#bt-from", f"{DAY}T09:15:00")
        await page.fill("#bt-to", f"{DAY}T15:29:00")
        await _run(page)
        await expect(page.locator("#bt-status")).to_have_text("Done: 375 rows replayed")
        await expect(page.locator("#bt-data")).to_contain_text("candles, 375 rows")
        await expect(page.locator("#bt-table tbody tr")).to_have_count(1)
        await expect(chart).to_have_attribute("data-lines", "2")
        await expect(page.locator("#bt-equity-note")).to_contain_text("No fills")
        await expect(chart.locator("canvas").first).to_be_visible()
        await screenshot(page, "31-backtest-candles")
        await page.set_viewport_size(PHONE)
        await screenshot(page, "32-backtest-phone")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width} px)"
        await page.close()
    assert problems.seen == []
