"""From a click on "Clone" in the dashboard to the clone's wp-admin open in the browser, on the running
`make dev` stack, against the same job done by a raw REST client in the same run.

    make dev   # then:
    .venv/bin/python -m bench.bench_dashboard [--rounds 3]

Each round, alternately: Debian's Chromium (through Playwright) signs in to /ui/, requests a clone of
the sample site and clicks "Open wp-admin" as soon as the row is ready, until wp-admin's admin bar
shows; and the floor, an httpx client that POSTs the clone, polls job-status every 100 ms, asks for a
login link and opens it. Each clone is deleted after. No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
import uuid
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

from testenv import stack


def through_the_dashboard(browser: Browser, api: str, token: str, site: dict[str, str], name: str) -> float:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{api}/ui/login")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.fill("#source_url", site["url"])
    page.fill("#source_username", site["user"])
    page.fill("#source_password", site["password"])
    page.fill("#customer_id", name)
    clicked = time.monotonic()
    page.click("#new-clone button[type=submit]")
    page.locator(f"tr[data-clone='{name}'][data-state='completed']").wait_for(timeout=600_000)
    with context.expect_page() as opened:
        page.get_by_role("button", name=f"Open wp-admin of {name}").click()
    opened.value.locator("#wpadminbar").wait_for()
    seconds = time.monotonic() - clicked
    context.close()
    return seconds


def through_rest(api: str, token: str, site: dict[str, str], name: str) -> float:
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        started = time.monotonic()
        job = http.post("/api/v2/clone", json={"source_url": site["url"], "source_username": site["user"],
                                               "source_password": site["password"], "customer_id": name}).json()
        while (status := http.get(job["status_url"]).json())["status"] not in ("completed", "failed"):
            time.sleep(0.1)
        assert status["status"] == "completed", status
        link = http.post(f"/api/v2/clones/{name}/login-link").json()["url"]
        with httpx.Client(follow_redirects=True, timeout=30) as browserless:
            assert "wpadminbar" in browserless.get(link).text
        return time.monotonic() - started


def delete(api: str, token: str, name: str) -> None:
    httpx.delete(f"{api}/api/v2/delete/{name}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    running = stack.load_state(stack.default_base())
    assert running is not None and running.get("api"), "start the stack first: make dev"
    described: dict[str, Any] = running
    api, token, first = described["api"]["url"], described["api"]["token"], described["sites"][0]
    site = {"url": first["url"], "user": first["admin_user"], "password": first["admin_password"]}
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: testenv/install-system-packages.sh installs it"
    browser_times: list[float] = []
    rest_times: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        for round_number in range(args.rounds):
            for kind, run, times in (("dashboard", lambda n: through_the_dashboard(browser, api, token, site, n),
                                      browser_times),
                                     ("REST floor", lambda n: through_rest(api, token, site, n), rest_times)):
                name = f"bench-ui-{uuid.uuid4().hex[:6]}"
                times.append(run(name))
                delete(api, token, name)
                print(f"round {round_number + 1} {kind:10}: {times[-1]:.1f} s")
        browser.close()
    print(f"click on Clone to wp-admin open (dashboard): median {statistics.median(browser_times):.1f} s, "
          f"best {min(browser_times):.1f} s")
    print(f"POST to wp-admin open (raw REST client):     median {statistics.median(rest_times):.1f} s, "
          f"best {min(rest_times):.1f} s")
    print(f"ratio (median): {statistics.median(browser_times) / statistics.median(rest_times):.2f}")


if __name__ == "__main__":
    main()
