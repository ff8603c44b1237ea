"""A headless Debian chromium driven by Playwright, for the UI's browser tests.

The browser is the system's own (/usr/bin/chromium, installed by `make test`'s
set-up step); Playwright never downloads one. Each page records uncaught
script errors and Content-Security-Policy violations, which a test asserts
are none.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from tests.support.services import ROOT, unavailable

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class Problems:
    """What went wrong inside the pages: uncaught errors and CSP violations."""

    seen: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on(
            "console",
            lambda message: (
                self.seen.append(f"console: {message.text}")
                if message.type == "error" and "Content Security Policy" in message.text
                else None
            ),
        )
        return page


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless; missing: fail under CI, skip elsewhere."""
    _require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


def _require_chromium() -> None:
    if not CHROMIUM.is_file():
        unavailable(f"{CHROMIUM} is not installed (`make test` installs Debian's chromium)")


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
