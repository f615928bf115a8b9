"""The dashboard over an in-memory Kubernetes: sign-in, CSRF, tenants and each action's refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from tests.unit.fake_apiserver import FakeKube
from tests.unit.test_api_routes import TOKENS, as_, restore_record, settings, start_clone
from wpclone_api import dashboard, sessions, tenants
from wpclone_api.app import create_app

SHOP = "https://shop.example.com"


@pytest.fixture
def cluster() -> FakeKube:
    return FakeKube()


@pytest.fixture
def browser(cluster: FakeKube) -> Iterator[TestClient]:
    """A browser of the tenant acme, signed in."""
    with TestClient(create_app(settings(max_ttl_minutes=120), cluster)) as client:
        signed_in = client.post("/ui/login", data={"token": TOKENS["acme"]}, follow_redirects=False)
        assert signed_in.status_code == 303, signed_in.text
        yield client


def csrf(browser: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', browser.get("/ui/").text)
    assert found
    return found.group(1)


def shown(page: str, kind: str) -> str:
    """The text of the page's notice or error."""
    found = re.search(rf'<p class="{kind}" role="\w+">([^<]*)</p>', page)
    return found.group(1) if found else ""


def test_a_session_names_its_token_without_holding_it_and_ends_when_the_token_goes() -> None:
    table = tenants.token_table("acme:token-acme,globex:token-globex", "")
    key = sessions.session_key("", table)
    cookie = sessions.issue(table[0], key, expires=2000)
    assert "token-acme" not in cookie and sessions.read(cookie, key, table, now=1000) == table[0]
    assert sessions.read(cookie, key, table, now=2000) is None  # expired
    payload, _, signature = cookie.partition(".")
    forged = sessions.issue(table[1], b"another key", expires=2000)
    assert sessions.read(forged, key, table, now=1000) is None
    assert sessions.read(forged.partition(".")[0] + "." + signature, key, table, now=1000) is None
    assert sessions.read(payload, key, table, now=1000) is None
    assert sessions.read("x" * 600, key, table, now=1000) is None
    without_acme = table[1:]  # the token was taken out of the table: its session ends (another key too)
    assert sessions.read(cookie, key, without_acme, now=1000) is None
    assert sessions.read(cookie, sessions.session_key("", without_acme), without_acme, now=1000) is None
    assert sessions.csrf_holds(cookie, key, sessions.csrf_token(cookie, key))
    assert not sessions.csrf_holds(forged, key, sessions.csrf_token(cookie, key))


def test_sign_in_sets_a_strict_http_only_cookie_and_pages_carry_no_token(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(), cluster)) as client:
        assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"
        wrong = client.post("/ui/login", data={"token": "token-nobody"})
        assert wrong.status_code == 401 and shown(wrong.text, "error") == "that token is not valid"
        signed_in = client.post("/ui/login", data={"token": TOKENS["acme"]}, follow_redirects=False)
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert TOKENS["acme"] not in cookie + signed_in.headers["location"]
        page = client.get("/ui/")
        assert page.status_code == 200 and TOKENS["acme"] not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in page.text and " style=" not in page.text  # the policy allows neither inline
        out = client.post("/ui/logout", data={"csrf": csrf(client)}, follow_redirects=False)
        assert out.headers["location"] == "/ui/login"
        assert client.get("/ui/live/jobs", follow_redirects=False).headers["location"] == "/ui/login"


def test_a_form_without_the_sessions_csrf_token_changes_nothing(browser: TestClient, cluster: FakeKube) -> None:
    form = {"source_url": SHOP, "source_username": "admin", "source_password": "pw", "customer_id": "forged"}
    for token in ("", "a" * 43):
        refused = browser.post("/ui/clones", data={**form, "csrf": token})
        assert refused.status_code == 403 and "reload the page" in shown(refused.text, "error")
    elsewhere = browser.post("/ui/clones", data={**form, "csrf": csrf(browser)},
                             headers={"Origin": "https://attacker.example"})
    assert elsewhere.status_code == 403 and "not sent from the dashboard" in shown(elsewhere.text, "error")
    signed_in_elsewhere = browser.post("/ui/login", data={"token": TOKENS["globex"]},
                                       headers={"Origin": "https://attacker.example"}, follow_redirects=False)
    assert signed_in_elsewhere.status_code == 403 and "set-cookie" not in signed_in_elsewhere.headers
    assert cluster.of_kind("WordPressClone") == [] and cluster.of_kind("Secret") == []


def test_a_clone_requested_by_form_is_the_same_job_as_by_rest(browser: TestClient, cluster: FakeKube) -> None:
    made = browser.post("/ui/clones", data={"csrf": csrf(browser), "source_url": SHOP, "source_username": "admin",
                                            "source_password": "secret-pw", "customer_id": "acme-shop",
                                            "ttl_minutes": "45", "database": "sqlite",
                                            "snapshot_max_age_minutes": "20", "pool": "warm"})
    assert made.status_code == 200 and "Clone acme-shop requested" in shown(made.text, "notice")
    (clone,) = cluster.stored("WordPressClone", "wpclone.dev/tenant=acme")
    assert clone["spec"]["ttlMinutes"] == 45 and clone["spec"]["source"]["url"] == SHOP
    assert clone["spec"]["database"] == {"engine": "sqlite"} and clone["spec"]["snapshot"] == {"maxAgeMinutes": 20}
    assert clone["spec"]["pool"] == "warm"
    assert 'data-clone="acme-shop"' in made.text and "secret-pw" not in made.text
    # Refused with the REST API's own message; the form comes back filled, but for the password.
    again = browser.post("/ui/clones", data={"csrf": csrf(browser), "source_url": SHOP, "source_username": "admin",
                                             "source_password": "secret-pw", "customer_id": "acme-shop"})
    assert again.status_code == 409 and shown(again.text, "error") == "a clone named acme-shop already exists"
    assert 'value="acme-shop"' in again.text and "secret-pw" not in again.text
    bad = browser.post("/ui/clones", data={"csrf": csrf(browser), "source_url": "ftp://x", "source_username": "a",
                                           "source_password": "p", "customer_id": "b", "ttl_minutes": "soon"})
    assert bad.status_code == 422 and "source_url" in shown(bad.text, "error")
    assert "ttl_minutes" in shown(bad.text, "error")
    long = browser.post("/ui/clones", data={"csrf": csrf(browser), "source_url": SHOP, "source_username": "a",
                                            "source_password": "p", "customer_id": "c", "ttl_minutes": "500"})
    assert long.status_code == 422 and "120" in shown(long.text, "error")
    assert cluster.of_kind("WordPressClone") == ["acme-shop"]


def test_another_tenants_clone_is_neither_shown_nor_reached(browser: TestClient, cluster: FakeKube) -> None:
    start_clone(browser, "globex", "globex-shop")
    cluster.make_ready("globex-shop")
    assert "globex-shop" not in browser.get("/ui/live/jobs").text
    token = csrf(browser)
    for action in ("extend", "delete", "open", "restore"):
        refused = browser.post(f"/ui/clones/globex-shop/{action}", data={"csrf": token, "confirm": "yes"})
        assert refused.status_code == 404 and shown(refused.text, "error") == "no clone globex-shop", action
    assert browser.get("/ui/clones/globex-shop/restore").status_code == 404
    assert cluster.of_kind("WordPressClone") == ["globex-shop"] and cluster.of_kind("CloneRestore") == []


def test_extend_adds_half_an_hour_up_to_the_maximum_and_delete_asks_first(browser: TestClient,
                                                                         cluster: FakeKube) -> None:
    start_clone(browser, "acme", "acme-shop")  # ttl 60 minutes; the maximum is 120
    for expected in (90, 120):
        extended = browser.post("/ui/clones/acme-shop/extend", data={"csrf": csrf(browser)})
        assert "now expires" in shown(extended.text, "notice")
        assert cluster.objects[("WordPressClone", "acme-shop")]["spec"]["ttlMinutes"] == expected
    at_most = browser.post("/ui/clones/acme-shop/extend", data={"csrf": csrf(browser)})
    assert at_most.status_code == 422 and "as long as allowed (120 minutes)" in shown(at_most.text, "error")

    asked = browser.post("/ui/clones/acme-shop/delete", data={"csrf": csrf(browser)})
    assert asked.status_code == 200 and "Delete the clone acme-shop?" in asked.text
    assert cluster.of_kind("WordPressClone") == ["acme-shop"]
    deleted = browser.post("/ui/clones/acme-shop/delete", data={"csrf": csrf(browser), "confirm": "yes"})
    assert "is being deleted" in shown(deleted.text, "notice") and cluster.of_kind("WordPressClone") == []


def test_open_goes_to_a_fresh_login_link_of_a_ready_clone(browser: TestClient, cluster: FakeKube) -> None:
    start_clone(browser, "acme", "acme-shop")
    early = browser.post("/ui/clones/acme-shop/open", data={"csrf": csrf(browser)})
    assert early.status_code == 409 and "not ready" in shown(early.text, "error")
    url = cluster.make_ready("acme-shop")
    opened = browser.post("/ui/clones/acme-shop/open", data={"csrf": csrf(browser)}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"].startswith(f"{url}/wp-login.php?wpclone-login=")
    assert opened.headers["referrer-policy"] == "same-origin"


def test_a_restore_is_previewed_then_confirmed_with_the_previews_logins(browser: TestClient,
                                                                       cluster: FakeKube) -> None:
    start_clone(browser, "acme", "acme-shop")
    cluster.make_ready("acme-shop")
    form = browser.get("/ui/clones/acme-shop/restore")
    assert form.status_code == 200 and f'value="{SHOP}"' in form.text  # production: where it was taken from
    preview = browser.post("/ui/clones/acme-shop/restore", data={
        "csrf": csrf(browser), "target_url": SHOP, "target_username": "shopadmin", "target_password": "prod-pw",
        "database": "on", "uploads": "on"})
    assert "nothing is written yet" in shown(preview.text, "notice"), preview.text
    (dry,) = cluster.stored("CloneRestore", "wpclone.dev/tenant=acme")
    assert dry["spec"]["dryRun"] is True and dry["spec"]["source"]["cloneRef"]["name"] == "acme-shop"
    assert dry["spec"]["include"]["themes"] is False and dry["spec"]["onConflict"] == "Merge"
    job = dry["metadata"]["labels"]["wpclone.dev/job-id"]

    early = browser.post(f"/ui/restores/{job}/confirm", data={"csrf": csrf(browser)})
    assert early.status_code == 409 and "finished preview" in shown(early.text, "error")
    cluster.objects[("CloneRestore", dry["metadata"]["name"])]["status"] = {
        "phase": "Completed", "changes": ["table posts: 1 row changed"], "conflicts": []}
    page = browser.get(f"/ui/restores/{job}")
    assert "table posts: 1 row changed" in page.text and "Restore these changes" in page.text
    confirmed = browser.post(f"/ui/restores/{job}/confirm", data={"csrf": csrf(browser)})
    assert "backed up first" in shown(confirmed.text, "notice")
    (real,) = [r for r in cluster.stored("CloneRestore", "wpclone.dev/tenant=acme") if not r["spec"]["dryRun"]]
    assert real["spec"]["include"] == dry["spec"]["include"] and real["spec"]["onConflict"] == "Merge"
    target_login = cluster.objects[("Secret", real["spec"]["target"]["credentialsSecretRef"]["name"])]
    assert target_login["stringData"] == {"username": "shopadmin", "password": "prod-pw"}
    assert "prod-pw" not in page.text + confirmed.text

    # Another tenant's preview is not theirs to confirm; a wrong production login is the REST refusal.
    with TestClient(browser.app) as globex:
        globex.post("/ui/login", data={"token": TOKENS["globex"]})
        assert globex.post(f"/ui/restores/{job}/confirm", data={"csrf": csrf(globex)}).status_code == 404


def test_a_completed_restore_rolls_back_once(browser: TestClient, cluster: FakeKube) -> None:
    kept, none = "a" * 32, "b" * 32
    restore_record(cluster, "acme", "r1", SHOP, phase="Completed", backupId="b1", completedAt="2026-12-01T10:00:00Z")
    restore_record(cluster, "acme", "r2", SHOP, phase="Completed")  # kept no backup
    for name, job in (("r1", kept), ("r2", none)):
        cluster.objects[("CloneRestore", name)]["metadata"]["labels"]["wpclone.dev/job-id"] = job
    cluster.objects[("Secret", "r1-target-login")] = {"kind": "Secret", "metadata": {"name": "r1-target-login"},
                                                      "stringData": {"username": "shopadmin", "password": "prod-pw"}}
    assert browser.get("/ui/live/jobs").text.count("Roll back</button>") == 1
    refused = browser.post(f"/ui/restores/{none}/rollback", data={"csrf": csrf(browser), "confirm": "yes"})
    assert refused.status_code == 409 and "kept a backup" in shown(refused.text, "error")
    rolled = browser.post(f"/ui/restores/{kept}/rollback", data={"csrf": csrf(browser), "confirm": "yes"})
    assert "back to backup b1" in shown(rolled.text, "notice")
    (rollback,) = [r for r in cluster.stored("CloneRestore", "") if r["spec"].get("rollbackTo")]
    assert rollback["spec"]["target"]["url"] == SHOP
    login = cluster.objects[("Secret", rollback["spec"]["target"]["credentialsSecretRef"]["name"])]
    assert login["stringData"] == {"username": "shopadmin", "password": "prod-pw"}
    cluster.objects[("CloneRestore", rollback["metadata"]["name"])]["status"] = {"phase": "RolledBack"}
    assert "Roll back</button>" not in browser.get("/ui/live/jobs").text  # put back already


def test_what_the_pages_show_is_worked_out_from_the_resources() -> None:
    clone = {"metadata": {"name": "c", "creationTimestamp": "2026-12-01T10:00:00Z",
                          "labels": {"wpclone.dev/job-id": "j"}},
             "spec": {"ttlMinutes": 30, "source": {"url": SHOP}},
             "status": {"phase": "Cloning", "expiresAt": "2026-12-01T10:30:00Z",
                        "progress": {"phase": "files", "rows": 1234, "files": 5, "bytes": 3 * 1024 * 1024}}}
    row = dashboard.clone_row(clone)
    assert (row["state"], row["step"], row["steps"]) == ("running", 2, 4)
    assert row["progress"] == "files: 1,234 rows, 5 files, 3.0 MiB" and row["url"] is None
    assert dashboard.extended_ttl(clone, 120, 30) == 60
    assert dashboard.extended_ttl(clone, 45, 30) == 45 and dashboard.extended_ttl(clone, 30, 30) is None
    now = datetime(2026, 12, 1, 10, 27, 55, tzinfo=UTC)
    assert dashboard.time_left("2026-12-01T10:30:00Z", now) == "2 min 05 s"
    assert dashboard.time_left("2026-12-01T10:00:00Z", now) == "expired"
    restore = {"metadata": {"name": "r", "labels": {"wpclone.dev/job-id": "r"}},
               "spec": {"target": {"url": SHOP}}, "status": {"phase": "Completed", "backupId": "b1"}}
    rollback = {"metadata": {"name": "b", "labels": {"wpclone.dev/job-id": "b"}},
                "spec": {"target": {"url": SHOP}, "rollbackTo": "b1"}, "status": {"phase": "RolledBack"}}
    assert [(row["kind"], row["rolled_back"], row["can_roll_back"])
            for row in dashboard.restore_rows([restore, rollback])] == [
        ("restore", True, False), ("rollback", False, False)]


def test_a_token_over_its_rate_is_refused_in_the_dashboard_too(cluster: FakeKube) -> None:
    with TestClient(create_app(settings(rate_limit_per_second=0.001, rate_limit_burst=2), cluster)) as client:
        client.post("/ui/login", data={"token": TOKENS["acme"]}, follow_redirects=False)  # the burst's first
        assert client.get("/ui/").status_code == 200
        limited = client.get("/ui/")
        assert limited.status_code == 429 and "rate limit exceeded" in shown(limited.text, "error")
        assert client.get("/api/v2/clones", headers=as_("acme")).status_code == 429  # the same bucket
