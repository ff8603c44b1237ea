"""The dashboard's notifications section in a real chromium: add a channel (a refused
address first, its error next to the URL), test it against a real receiver, delete it;
the URL never shows again."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from tests.support.browser import DESKTOP, Problems, chromium, screenshot
from tests.support.receivers import http_receiver
from tests.support.system import running_system
from tests.ui.test_browser import WAIT_MS, sign_in

HOOK_KEY = "UiHookKey4q5w6e7r8t"


async def test_add_test_and_delete_a_channel(tmp_path: Path) -> None:
    problems = Problems()
    async with (
        http_receiver() as hook,
        running_system(
            f"sqlite:///{tmp_path / 'hmt.db'}",
            secret_key="UiNotifySealingKey012345",
            notify_allow_nets="127.0.0.1/32",
        ) as system,
        chromium() as browser,
    ):
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await expect(page.locator("#channels-empty")).to_be_visible(timeout=WAIT_MS)
        await page.fill("#channel-name", "phone")
        await page.fill("#channel-url", "json://10.1.2.3/hook")
        await page.click("#channel-add")
        await expect(page.locator('[data-channel-error="url"]')).to_contain_text(
            "private", timeout=WAIT_MS
        )
        await page.fill("#channel-url", f"json://{hook.url}/hook/{HOOK_KEY}")
        await page.uncheck('input[name=kinds][value="engine_degraded"]')
        await page.click("#channel-add")
        rows = page.locator("#channels tr")
        await expect(rows).to_have_count(1, timeout=WAIT_MS)
        await expect(rows.first).to_contain_text("phone")
        await expect(rows.first).not_to_contain_text("engine_degraded")
        assert HOOK_KEY not in await page.content()
        await rows.first.locator("button", has_text="Test").click()
        await expect(rows.first).to_contain_text("delivered", timeout=WAIT_MS)
        assert len(hook.requests) == 1
        await screenshot(page, "notifications")
        await rows.first.locator("button", has_text="Delete").click()
        await expect(rows).to_have_count(0, timeout=WAIT_MS)
    assert problems.seen == []
