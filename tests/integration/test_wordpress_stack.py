"""The local MariaDB and WordPress sites that the clone tests run against behave like real ones."""

from __future__ import annotations

import html
import json
import subprocess
from urllib.parse import urlsplit

import aiomysql
import httpx
import pytest

from testenv.mariadb import MariaDB
from testenv.wordpress import WordPressSite

pytestmark = pytest.mark.integration

NON_ASCII_TITLE = "Café déjà vu — 日本語 ✓"
SITE_COUNT = 2


@pytest.fixture(params=range(SITE_COUNT), ids=lambda index: f"site{index + 1}")
def site(request: pytest.FixtureRequest, wordpress_sites: list[WordPressSite]) -> WordPressSite:
    return wordpress_sites[request.param]


def client_for(site: WordPressSite) -> httpx.Client:
    return httpx.Client(base_url=site.url, follow_redirects=False, timeout=30)


def log_in(client: httpx.Client, site: WordPressSite, password: str) -> httpx.Response:
    client.get("/wp-login.php")  # sets the test cookie that wp-login.php insists on
    return client.post("/wp-login.php", data={
        "log": site.admin_user, "pwd": password, "testcookie": "1", "wp-submit": "Log In",
        "redirect_to": f"{site.url}/wp-admin/",
    })


def unserialize(serialized: str) -> object:
    result = subprocess.run(
        ["php", "-r", "echo json_encode(unserialize(stream_get_contents(STDIN)), JSON_THROW_ON_ERROR);"],
        input=serialized, capture_output=True, text=True, check=True,
    )
    return json.loads(result.stdout)


async def test_admin_account_creates_and_drops_a_database(mariadb: MariaDB) -> None:
    dsn = urlsplit(mariadb.dsn)
    connection = await aiomysql.connect(host=dsn.hostname, port=dsn.port, user=dsn.username,
                                        password=dsn.password, autocommit=True)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("CREATE DATABASE wpclone_probe")
            await cursor.execute("CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY 'probe-pass'")
            await cursor.execute("GRANT ALL PRIVILEGES ON wpclone_probe.* TO 'probe'@'127.0.0.1'")
            await cursor.execute("SHOW DATABASES LIKE 'wpclone_probe'")
            assert await cursor.fetchall() == (("wpclone_probe",),)
            await cursor.execute("DROP USER 'probe'@'127.0.0.1'")
            await cursor.execute("DROP DATABASE wpclone_probe")
            await cursor.execute("SHOW DATABASES LIKE 'wpclone_probe'")
            assert await cursor.fetchall() == ()
    finally:
        connection.close()


def test_sites_are_independent(mariadb: MariaDB, wordpress_sites: list[WordPressSite]) -> None:
    assert len({site.port for site in wordpress_sites}) == SITE_COUNT
    assert len({site.db_name for site in wordpress_sites}) == SITE_COUNT
    assert len({site.docroot for site in wordpress_sites}) == SITE_COUNT
    for site in wordpress_sites:
        home = mariadb.sql(f"SELECT option_value FROM `{site.db_name}`.wp_options WHERE option_name = 'home'")
        assert home == site.url


def test_rest_index_names_the_site(site: WordPressSite) -> None:
    with client_for(site) as client:
        response = client.get("/wp-json/")
    assert response.status_code == 200
    index = response.json()
    assert index["name"] == f"Site {site.port}"
    assert index["home"] == site.url


def test_admin_logs_in_and_sees_the_dashboard(site: WordPressSite) -> None:
    with client_for(site) as client:
        login = log_in(client, site, site.admin_password)
        assert login.status_code == 302, login.text[:500]
        dashboard = client.get("/wp-admin/")
    assert dashboard.status_code == 200
    assert "<title>Dashboard" in dashboard.text


def test_wrong_password_is_refused(site: WordPressSite) -> None:
    with client_for(site) as client:
        login = log_in(client, site, site.admin_password + "-wrong")
        assert login.status_code == 200
        assert 'id="login_error"' in login.text
        dashboard = client.get("/wp-admin/")
    assert dashboard.status_code == 302
    assert "/wp-login.php" in dashboard.headers["location"]


def test_non_ascii_title_is_served_by_rest(site: WordPressSite) -> None:
    with client_for(site) as client:
        response = client.get("/wp-json/wp/v2/posts", params={"per_page": 100})
    assert response.status_code == 200
    titles = [html.unescape(post["title"]["rendered"]) for post in response.json()]
    assert NON_ASCII_TITLE in titles
    assert len(titles) >= 4


def test_media_file_is_served_byte_identical(site: WordPressSite) -> None:
    with client_for(site) as client:
        [media] = client.get("/wp-json/wp/v2/media").json()
        served = client.get(media["source_url"])
    on_disk = (site.docroot / "wp-content" / "uploads" / media["media_details"]["file"]).read_bytes()
    assert media["guid"]["rendered"].startswith(f"{site.url}/wp-content/uploads/")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert on_disk.startswith(b"\x89PNG")
    assert served.content == on_disk


def test_serialized_option_holds_the_site_url(mariadb: MariaDB, site: WordPressSite) -> None:
    raw = mariadb.sql(
        f"SELECT option_value FROM `{site.db_name}`.wp_options WHERE option_name = 'wpclone_seed_settings'"
    )
    assert f'"{site.url}"' in raw
    assert 'O:8:"stdClass"' in raw
    settings = unserialize(raw)
    assert isinstance(settings, dict)
    assert settings["site"]["url"] == site.url
    assert settings["logo"]["url"].startswith(f"{site.url}/wp-content/uploads/")


def test_widget_and_metadata_hold_the_site_url(mariadb: MariaDB, site: WordPressSite) -> None:
    db = f"`{site.db_name}`"
    widgets = unserialize(
        mariadb.sql(f"SELECT option_value FROM {db}.wp_options WHERE option_name = 'widget_text'"))
    profile = unserialize(
        mariadb.sql(f"SELECT meta_value FROM {db}.wp_usermeta WHERE meta_key = 'wpclone_profile'"))
    link = mariadb.sql(f"SELECT meta_value FROM {db}.wp_postmeta WHERE meta_key = 'wpclone_source_link'")
    assert isinstance(widgets, dict) and isinstance(profile, dict)
    assert f'href="{site.url}/contact/"' in widgets["2"]["text"]
    assert profile["homepage"] == f"{site.url}/"
    assert link == f"{site.url}/first-steps/"
