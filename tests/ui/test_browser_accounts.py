"""Broker accounts in the browser (docs/ui.md, docs/accounts.md): link one through the
Accounts page (a bad id first), trade through it from the create form, and watch the
dashboard flag its session when its login lapses, then renew it from the Accounts page.

The Kite simulator's second API key is the linked account (docs/simulator.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Page, expect

from hmt.sim.simulator import Simulator
from tests.support.browser import DESKTOP, PHONE, Problems, chromium, screenshot
from tests.support.eventually import eventually
from tests.support.system import System, running_system
from tests.ui.test_browser import INFY, WAIT_MS, created_id, pick_instrument, row, sign_in
from tests.ui.test_browser_v2 import advanced, pick_order

KEY = "a-test-sealing-key-0123456789"


async def no_secret_in(page: Page, *secrets: str) -> None:
    """Neither the page's markup, its text nor any input's value holds a secret."""
    html = await page.content()
    text = await page.evaluate("document.body.innerText")
    values = await page.evaluate("[...document.querySelectorAll('input')].map(i => i.value)")
    for secret in secrets:
        assert secret not in html
        assert secret not in text
        assert secret not in values


async def fill_link_form(page: Page, account_id: str, api_key: str, token: str) -> None:
    await page.fill("#account-id", account_id)
    await page.select_option("#account-broker", "kite")
    await page.fill("#account-label", "Family, second")
    await page.fill("#account-api-key", api_key)
    await page.fill("#account-api-secret", "not-used-secret")
    await page.fill("#account-access-token", token)


async def accounts_of(system: System) -> dict[str, dict[str, str]]:
    response = await system.client.get("/accounts", headers=system.auth())
    assert response.status_code == 200, response.text
    return {a["id"]: a for a in response.json()}


async def test_link_an_account_trade_through_it_and_see_its_session_lapse(tmp_path: Path) -> None:
    problems = Problems()
    db = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with running_system(db, secret_key=KEY) as system, chromium() as browser:
        second = system.sim.add_account("SIM002")
        system.push(INFY, "1600.00")
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        # One account: no chooser, no account column, no per-account lines.
        await expect(page.locator("#account")).to_be_hidden()
        await expect(page.locator("#accounts-status")).to_be_hidden()
        await page.click("#accounts-link")
        await expect(page).to_have_url(f"{system.api_url}/ui/accounts")
        default = page.locator('#accounts tr[data-id="default"]')
        await expect(default).to_contain_text("kite", timeout=WAIT_MS)
        await expect(default.locator('[data-col="session"]')).to_have_text("valid")

        # A bad id: the API's 422 beside the id, nothing linked, the token not shown.
        await fill_link_form(page, "Family_2", second.api_key, second.access_token)
        await page.click("#account-link")
        id_error = page.locator('[data-account-error="id"]')
        await expect(id_error).to_contain_text("match pattern", timeout=WAIT_MS)
        await expect(page.locator("#account-id")).to_have_attribute("aria-invalid", "true")
        await expect(page.locator('[data-account-error="access_token"]')).to_have_text("")
        assert "Family_2" not in await accounts_of(system)
        await screenshot(page, "40-accounts-bad-id")

        await page.fill("#account-id", "family-2")
        await page.click("#account-link")
        linked = page.locator('#accounts tr[data-id="family-2"]')
        await expect(linked).to_contain_text("Family, second", timeout=WAIT_MS)
        await expect(linked.locator('[data-col="session"]')).to_have_text("valid")
        await expect(id_error).to_have_text("")
        await no_secret_in(page, second.access_token, "not-used-secret")
        assert (await accounts_of(system))["family-2"]["session"] == "valid"

        # The same id again: the 409 names the id.
        await fill_link_form(page, "family-2", second.api_key, second.access_token)
        await page.click("#account-link")
        await expect(id_error).to_contain_text("family-2", timeout=WAIT_MS)
        await screenshot(page, "41-accounts-linked")

        # The create form offers it (default preselected); the stored trigger names it.
        await page.click("text=← All triggers")
        await expect(page.locator("#app")).to_be_visible(timeout=WAIT_MS)
        chooser = page.locator("#account")
        await expect(chooser).to_be_visible(timeout=WAIT_MS)
        await expect(chooser).to_have_value("default")
        await pick_instrument(page, "INF", "INFY")
        await page.fill("#trigger_price_1", "1700.00")
        await page.click("#form-submit")
        on_default = await created_id(page, set())
        await chooser.select_option("family-2")
        await pick_instrument(page, "INF", "INFY")
        await page.fill("#trigger_price_1", "1650.00")
        await page.click("#form-submit")
        theirs = await created_id(page, {on_default})
        assert (await system.trigger(theirs))["account"] == "family-2"
        assert (await system.trigger(on_default))["account"] == "default"
        await expect(row(page, theirs).locator('[data-col="account"]')).to_have_text("family-2")
        await expect(row(page, on_default).locator('[data-col="account"]')).to_have_text("default")
        await expect(chooser).to_have_value("default")  # the form is cleared after a create

        # An edit moves a trigger to another account and back.
        await row(page, on_default).locator("button.secondary").click()
        await expect(chooser).to_have_value("default")
        await chooser.select_option("family-2")
        await page.click("#form-submit")
        await expect(row(page, on_default).locator('[data-col="account"]')).to_have_text(
            "family-2", timeout=WAIT_MS
        )
        assert (await system.trigger(on_default))["account"] == "family-2"

        # The status card: one line per account, live from the stream.
        sessions = page.locator("#account-sessions")
        family = sessions.locator('li[data-account="family-2"]')
        await expect(family).to_have_attribute("data-session", "valid", timeout=WAIT_MS)
        await expect(sessions.locator('li[data-account="default"]')).to_contain_text("valid")
        await page.evaluate("window.notReloaded = true")

        # Its login lapses; its trigger's order is refused, which the engine notices.
        second.expire_session()
        system.push(INFY, "1651.00")
        await expect(family).to_have_attribute("data-session", "expired", timeout=WAIT_MS)
        await expect(family).to_have_class("bad")
        await expect(family).to_contain_text("new access token")
        await expect(sessions.locator('li[data-account="default"]')).not_to_have_class("bad")
        assert await page.evaluate("window.notReloaded") is True
        assert (await system.trigger(theirs))["status"] == "active"  # paused, nothing sent
        await screenshot(page, "42-dashboard-account-expired")
        await page.set_viewport_size(PHONE)
        await screenshot(page, "43-dashboard-accounts-phone")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways at phone width ({width} px)"
        await page.set_viewport_size(DESKTOP)

        # The daily login: a new token on the Accounts page; the state turns valid.
        await family.locator("a").click()
        await expect(page).to_have_url(f"{system.api_url}/ui/accounts")
        linked = page.locator('#accounts tr[data-id="family-2"]')
        await expect(linked.locator('[data-col="session"]')).to_contain_text(
            "expired", timeout=WAIT_MS
        )
        renewed = second.renew_session()
        await linked.locator('input[type="password"]').fill(renewed)
        await linked.locator("button", has_text="Set token").click()
        await expect(linked.locator('[data-col="session"]')).to_have_text("valid", timeout=WAIT_MS)
        await no_secret_in(page, renewed, second.access_token)
        await screenshot(page, "44-accounts-renewed")
        await page.close()
    assert problems.seen == []


async def test_the_advanced_form_names_the_account_and_its_422_lands_beside_the_chooser(
    tmp_path: Path,
) -> None:
    """A v2 trigger made in the advanced form on the linked account (its page says so), and
    an account the API refuses: its 422 beside the chooser, nothing created."""
    problems = Problems()
    db = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with running_system(db, secret_key=KEY) as system, chromium() as browser:
        second = system.sim.add_account("SIM002")
        body = {
            "id": "family-2",
            "broker": "kite",
            "label": "Family",
            "api_key": second.api_key,
            "access_token": second.access_token,
        }
        linked = await system.client.post("/accounts", json=body, headers=system.auth())
        assert linked.status_code == 201, linked.text
        system.push(INFY, "1600.00")
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await expect(page.locator("#account")).to_be_visible(timeout=WAIT_MS)
        await advanced(page)
        await page.locator("#account").select_option("family-2")
        leg = page.locator("#legs fieldset.leg").first
        await leg.locator('[data-name="level"]').fill("1700.00")
        await pick_order(page, 0, 0, "INFY")
        # An id the API does not know (as a stale tab might send): the 422 names the account.
        await page.evaluate(
            "document.querySelector('#account option[value=\"family-2\"]').value = 'gone-1'"
        )
        await page.click("#form-submit")
        error = page.locator('#account-field [data-error-for="account"]')
        await expect(error).to_contain_text("gone-1", timeout=WAIT_MS)
        await expect(page.locator("#account")).to_have_attribute("aria-invalid", "true")
        assert (await system.client.get("/triggers", headers=system.auth())).json() == []

        await page.evaluate(
            "document.querySelector('#account option[value=\"gone-1\"]').value = 'family-2'"
        )
        await page.locator("#account").select_option("family-2")
        await page.click("#form-submit")
        made = await created_id(page, set())
        stored = await system.trigger(made)
        assert (stored["account"], stored["legs"][0]["condition"]["price"]) == ("family-2", "1700")
        await expect(row(page, made).locator('[data-col="account"]')).to_have_text("family-2")
        await row(page, made).locator("a").click()
        await expect(page.locator("#d-account")).to_have_text("family-2", timeout=WAIT_MS)
        await page.close()
    assert problems.seen == []


async def test_linking_without_the_sealing_key_says_why_above_the_form(tmp_path: Path) -> None:
    """No HMT_SECRET_KEY: the API's 409 is shown above the form, and only the default is listed."""
    problems = Problems()
    async with running_system(f"sqlite:///{tmp_path / 'hmt.db'}") as system, chromium() as browser:
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/accounts")
        await expect(page.locator('#accounts tr[data-id="default"]')).to_be_visible(timeout=WAIT_MS)
        await fill_link_form(page, "family-2", "somekey", "sometoken123")
        await page.click("#account-link")
        await expect(page.locator("#account-form-error")).to_contain_text(
            "HMT_SECRET_KEY", timeout=WAIT_MS
        )
        assert list(await accounts_of(system)) == ["default"]
        await expect(page.locator("#accounts tbody tr")).to_have_count(1)
        await page.close()
    assert problems.seen == []


def _kite_login_at_sim(sim: Simulator) -> dict[str, Any]:
    return {"kite_login_url": f"{sim.api_url}/connect/login"}


async def test_a_linked_account_logs_in_through_kite_from_its_row(tmp_path: Path) -> None:
    """The daily login's round trip in the browser: the row's "Log in with Kite" -> the
    simulator's Kite login (the account's app) -> /kite/callback -> back on the Accounts
    page, the account's session valid and the login said beside it; its paused trigger
    then fires in its own book."""
    problems = Problems()
    db = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with (
        running_system(db, secret_key=KEY, sim_overrides=_kite_login_at_sim) as system,
        chromium() as browser,
    ):
        sim = system.sim
        second = sim.add_account("SIM002")
        body = {
            "id": "family-2",
            "broker": "kite",
            "label": "Family, second",
            "api_key": second.api_key,
            "api_secret": second.sessions.api_secret,
        }
        linked = await system.client.post("/accounts", json=body, headers=system.auth())
        assert linked.status_code == 201, linked.text
        system.push(INFY, "1600.00")
        theirs = await system.create(trigger_price_1="1610.00", account="family-2")
        system.push(INFY, "1612.00")
        paused = system.runtime.engine.paused_triggers
        await eventually(lambda: paused("family-2") == {theirs["id"]})
        sim.rest.redirect_url = f"{system.api_url}/kite/callback"  # the app's redirect URL

        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/accounts")
        row_ = page.locator('#accounts tr[data-id="family-2"]')
        session = row_.locator('[data-col="session"]')
        await expect(session).to_contain_text("awaiting login", timeout=WAIT_MS)
        await expect(page.locator('[data-login="default"]')).to_have_count(0)
        button = row_.locator('[data-login="family-2"]')
        await expect(button).to_have_text("Log in with Kite")
        async with page.expect_request(lambda r: r.url.startswith(sim.api_url)) as at_kite:
            await button.click()
        to_kite = urlsplit((await at_kite.value).url)
        assert to_kite.path == "/connect/login"
        assert parse_qs(to_kite.query)["api_key"] == [second.api_key]  # the account's app
        # Back through /kite/callback's redirect: the Accounts page, the note's query gone.
        await page.wait_for_url(f"{system.api_url}/ui/accounts", timeout=WAIT_MS)
        await expect(session).to_have_text("valid", timeout=WAIT_MS)
        await expect(row_.locator('[data-login-error="family-2"]')).to_contain_text("Logged in")
        assert (await accounts_of(system))["family-2"]["session"] == "valid"
        await screenshot(page, "45-accounts-kite-login")
        # The note is not said again on a reload.
        await page.reload()
        await expect(session).to_have_text("valid", timeout=WAIT_MS)
        await expect(row_.locator('[data-login-error="family-2"]')).to_have_text("")

        system.push(INFY, "1613.00")
        placed = await system.settled(theirs["id"])
        assert placed["status"] == "placed"
        assert [o["tag"] for o in second.orders()] == [placed["broker_tag"]]
        await no_secret_in(page, second.sessions.api_secret)
        await page.close()
    assert problems.seen == []


async def test_a_login_the_server_refuses_is_said_beside_that_accounts_row(
    tmp_path: Path,
) -> None:
    """No API secret linked (Kite) and no HMT_UPSTOX_REDIRECT_URI (Upstox): each 409's
    message beside its own row, no alert, the page not left, nothing at the broker."""
    problems = Problems()
    db = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with (
        running_system(db, secret_key=KEY, sim_overrides=_kite_login_at_sim) as system,
        chromium() as browser,
    ):
        second = system.sim.add_account("SIM002")
        for body in (
            {"id": "family-2", "broker": "kite", "label": "F", "api_key": second.api_key},
            {"id": "up-1", "broker": "upstox", "label": "U", "api_key": "client-1"},
        ):
            linked = await system.client.post("/accounts", json=body, headers=system.auth())
            assert linked.status_code == 201, linked.text
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/accounts")

        kite_error = page.locator('#accounts tr[data-id="family-2"] [data-login-error]')
        upstox_error = page.locator('#accounts tr[data-id="up-1"] [data-login-error]')
        await page.locator('[data-login="family-2"]').click(timeout=WAIT_MS)
        await expect(kite_error).to_contain_text("no API secret linked", timeout=WAIT_MS)
        await expect(upstox_error).to_have_text("")
        upstox_button = page.locator('[data-login="up-1"]')
        await expect(upstox_button).to_have_text("Log in with Upstox")
        await upstox_button.click()
        await expect(upstox_error).to_contain_text("HMT_UPSTOX_REDIRECT_URI", timeout=WAIT_MS)
        await expect(kite_error).to_contain_text("no API secret linked")
        await expect(page).to_have_url(f"{system.api_url}/ui/accounts")
        await expect(page.locator("#page-error")).to_have_text("")
        assert dialogs == []
        await screenshot(page, "46-accounts-login-refused")
        assert (await accounts_of(system))["family-2"]["session"] == "awaiting_login"
        await page.close()
    assert problems.seen == []


async def test_unlink_an_account_from_its_row_after_a_confirming_click(tmp_path: Path) -> None:
    """Unlink takes a confirming second click; the server's refusal (a trigger of it still
    active) is said beside that row and nothing changes; once the trigger is cancelled the
    account is unlinked and its row leaves the page."""
    problems = Problems()
    db = f"sqlite:///{tmp_path / 'hmt.db'}"
    async with running_system(db, secret_key=KEY) as system, chromium() as browser:
        second = system.sim.add_account("SIM002")
        body = {
            "id": "family-2",
            "broker": "kite",
            "label": "F",
            "api_key": second.api_key,
            "access_token": second.access_token,
        }
        linked = await system.client.post("/accounts", json=body, headers=system.auth())
        assert linked.status_code == 201, linked.text
        system.push(INFY, "1600.00")
        held = await system.create(trigger_price_1="9000.00", account="family-2")
        page = problems.watch(await browser.new_page(viewport=DESKTOP))
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await sign_in(page, system, system.user_token)
        await page.goto(f"{system.api_url}/ui/accounts")

        row_ = page.locator('#accounts tr[data-id="family-2"]')
        button = row_.locator('[data-unlink="family-2"]')
        error = row_.locator('[data-unlink-error="family-2"]')
        await expect(button).to_have_text("Unlink", timeout=WAIT_MS)
        await expect(page.locator('#accounts tr[data-id="default"] [data-unlink]')).to_have_count(0)
        await button.click()
        await expect(button).to_have_text("Confirm unlink family-2")
        assert "family-2" in await accounts_of(system)  # one click sends nothing
        await button.click()
        await expect(error).to_contain_text("1 trigger(s)", timeout=WAIT_MS)
        await expect(button).to_have_text("Unlink")
        assert "family-2" in await accounts_of(system)
        await screenshot(page, "47-accounts-unlink-refused")

        cancelled = await system.client.delete(f"/triggers/{held['id']}", headers=system.auth())
        assert cancelled.status_code == 200, cancelled.text
        await button.click()
        await button.click()
        await expect(row_).to_have_count(0, timeout=WAIT_MS)
        await expect(page.locator('#accounts tr[data-id="default"]')).to_have_count(1)
        assert list(await accounts_of(system)) == ["default"]
        executors = system.runtime.executors
        assert executors is not None
        assert "family-2" not in executors.linked
        assert (await system.trigger(held["id"]))["account"] == "family-2"
        assert dialogs == []
        await page.close()
    assert problems.seen == []
