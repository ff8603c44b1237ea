"""The trigger page's chart in a real headless chromium: the watched instrument's candles of
the day from the broker's historical API (the simulator serves them) come first, then the
live prices, the trigger lines and the fire marker on top (issue 18)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from playwright.async_api import expect

from tests.support.browser import DESKTOP, Problems, chromium, screenshot
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, sign_in

INFY, NIFTY = 408065, 256265


async def test_the_chart_starts_with_the_days_candles(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system,
        chromium() as browser,
    ):
        system.push(INFY, "1600.00")
        # Watching NIFTY 50: the candles are the watched instrument's, not the traded one's.
        created = await system.client.post(
            "/triggers",
            json={
                "trigger_type": "single",
                "watch": {"instrument_token": NIFTY, "exchange": "NSE",
                          "tradingsymbol": "NIFTY 50"},
                "legs": [{"condition": {"price": "24000.00", "direction": "at_or_below"},
                          "orders": [{"instrument_token": INFY, "exchange": "NSE",
                                      "tradingsymbol": "INFY", "transaction_type": "BUY",
                                      "quantity": 1, "product": "CNC"}]}],
            },
            headers=system.auth(),
        )  # fmt: skip
        assert created.status_code == 201, created.text
        trigger = created.json()
        day = await system.client.get(f"/instruments/{NIFTY}/candles", headers=system.auth())
        want = day.json()["candles"]
        assert want, "the simulator serves the latest session's candles"

        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/triggers/{trigger['id']}")
        chart = page.locator("#chart")
        await expect(chart).to_have_attribute("data-candles", str(len(want)), timeout=WAIT_MS)
        await expect(chart.locator("canvas").first).to_be_visible()
        first = datetime.fromisoformat(want[0]["at"]).strftime("%Y-%m-%d %H:%M:%S IST")
        await expect(page.locator("#chart-note")).to_contain_text(
            f"{len(want)} minute candles from {first}"
        )
        # The live prices come after (the stream opens once the candles are drawn).
        await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
        system.push(NIFTY, "23999.95")
        await expect(page.locator("#d-status")).to_have_text("placed", timeout=WAIT_MS)
        fired = await system.trigger(trigger["id"])
        at = int(datetime.fromisoformat(fired["triggered_at"]).timestamp())
        await expect(chart).to_have_attribute("data-fired", str(at), timeout=WAIT_MS)
        await screenshot(page, "33-trigger-chart-history")
        await page.close()
    assert problems.seen == []
