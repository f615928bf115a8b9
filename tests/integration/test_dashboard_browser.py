"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real API, operator
and WordPress: sign in, clone, watch it become Ready, open its wp-admin, change it there, extend it,
preview and run the restore, delete it. A screenshot of each page is kept as an artifact."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from testenv.api_process import ApiProcess
from testenv.operator_process import OperatorProcess
from tests.helpers import ARTIFACTS
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site
READY_SECONDS = 240  # a bound for the wait, not a measure: the time is printed


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: testenv/install-system-packages.sh installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium)
        yield launched
        launched.close()


def snap(page: Page, name: str) -> None:
    folder = ARTIFACTS / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / f"{name}.png", full_page=True)


def test_a_person_clones_opens_extends_restores_and_deletes_in_the_browser(
        api: ApiProcess, operator: OperatorProcess, make_site: SiteMaker, browser: Browser) -> None:
    production, name = make_site(), f"ui-{uuid.uuid4().hex[:6]}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the script's "are you sure?" before a delete or restore

    page.goto(f"{api.url}/ui/")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.fill("#token", "not-a-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("that token is not valid")
    snap(page, "1-sign-in")
    page.fill("#token", api.token)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Request a clone")
    assert api.token not in page.url and all(api.token not in cookie["value"] for cookie in context.cookies())

    page.fill("#source_url", production.url)
    page.fill("#source_username", production.admin_user)
    page.fill("#source_password", production.admin_password)
    page.fill("#customer_id", name)
    clicked = time.monotonic()
    page.click("#new-clone button[type=submit]")
    expect(page.locator(".notice")).to_contain_text(f"Clone {name} requested")
    row = page.locator(f"tr[data-clone='{name}']")
    expect(row).to_be_visible()
    # The script refreshes the table as the operator works: the row turns completed without a reload.
    expect(row).to_have_attribute("data-state", "completed", timeout=READY_SECONDS * 1000)
    assert production.admin_password not in page.content()
    expect(row.locator("progress")).to_have_attribute("value", "4")
    snap(page, "2-clone-ready")

    with context.expect_page() as opened:
        row.get_by_role("button", name=f"Open wp-admin of {name}").click()
    admin = opened.value
    admin.wait_for_load_state()
    expect(admin).to_have_url(re.compile(rf"^http://{name}\.localhost:\d+/wp-admin/"))
    expect(admin.locator("#wpadminbar")).to_be_visible()
    print(f"\nfrom the click on Clone to the clone's wp-admin open in the browser: {time.monotonic() - clicked:.1f} s")
    snap(admin, "3-clone-wp-admin")
    # A change made on the clone, as a person makes it: the site's title, in its General Settings.
    admin.goto(admin.url.split("/wp-admin/")[0] + "/wp-admin/options-general.php")
    admin.fill("#blogname", "Renamed on the clone")
    admin.click("#submit")
    expect(admin.locator("#setting-error-settings_updated")).to_be_visible()
    admin.close()

    left = row.locator("time[data-expires]")
    before = left.get_attribute("data-expires")
    row.get_by_role("button", name=f"Extend {name} by 30 minutes").click()
    expect(page.locator(".notice")).to_contain_text("now expires")
    expect(left).not_to_have_attribute("data-expires", before or "", timeout=15_000)
    assert re.fullmatch(r"(5[0-9]|60) min \d\d s", left.inner_text()), left.inner_text()  # 30 + 30, counting down

    row.get_by_role("link", name=f"Restore {name} to production").click()
    expect(page.locator("#target_url")).to_have_value(production.url)
    page.fill("#target_username", production.admin_user)
    page.fill("#target_password", "a wrong password")
    page.click("button:has-text('Preview the changes')")
    preview = page.locator("#restore section")
    expect(preview).to_have_attribute("data-state", "failed", timeout=READY_SECONDS * 1000)
    expect(preview.locator(".why")).to_contain_text("login")
    page.goto(f"{api.url}/ui/clones/{name}/restore")
    page.fill("#target_username", production.admin_user)
    page.fill("#target_password", production.admin_password)
    page.click("button:has-text('Preview the changes')")
    expect(page.locator(".notice")).to_contain_text("nothing is written yet")
    expect(preview).to_have_attribute("data-state", "completed", timeout=READY_SECONDS * 1000)
    expect(preview.locator("ul.changes")).to_contain_text("options")
    snap(page, "4-restore-preview")
    assert "Renamed on the clone" not in httpx.get(production.url, timeout=30).text  # a preview writes nothing

    page.click("button:has-text('Restore these changes')")
    expect(page.locator(".notice")).to_contain_text("backed up first")
    restored = page.locator("#restore section")
    expect(restored).to_have_attribute("data-state", "completed", timeout=READY_SECONDS * 1000)
    expect(restored).to_contain_text("backed up first: backup")
    assert "Renamed on the clone" in httpx.get(production.url, timeout=30).text
    snap(page, "5-restored")

    page.goto(f"{api.url}/ui/")
    expect(page.locator("tr[data-restore]").first).to_contain_text("restore of " + name)
    page.locator(f"tr[data-clone='{name}']").get_by_role("button", name=f"Delete {name}").click()
    expect(page.locator(".notice")).to_contain_text(f"Clone {name} is being deleted")
    expect(page.locator(f"tr[data-clone='{name}']")).to_have_count(0, timeout=READY_SECONDS * 1000)
    snap(page, "6-deleted")

    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                storage_state=context.storage_state())
    small = phone.new_page()
    small.goto(f"{api.url}/ui/")
    expect(small.locator("h1")).to_have_text("Request a clone")
    assert small.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    snap(small, "7-phone")
    phone.close()
    context.close()
