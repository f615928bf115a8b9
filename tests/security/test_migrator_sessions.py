"""Production left as found, on real WordPress sites: a job sends the admin password once, for a session
whose token carries every later call and opens nothing but the migrator's routes; failed logins are
throttled; other plugins' refusals stand; the plugin leaves the site when the last job ends; backups
live outside the document root."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from testenv.mariadb import MariaDB
from testenv.wordpress import WordPressSite
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker, backup_store, snapshot, wp_php
from wpclone_engine import outbound
from wpclone_engine.transfer import copy_site
from wpclone_engine.wordpress import Migrator, WordPressError, ensure_migrator, site_session

pytestmark = pytest.mark.integration
make_site, source_site = transfer_fixtures.make_site, transfer_fixtures.source_site

LOOPBACK = outbound.Policy.parse(["127.0.0.1/32"])
PLUGIN = Path("wp-content/plugins/wpclone-migrator")

# Records every request to the migrator's REST routes (before any permission check): which route, and
# whether it carried a login or a token (never their values). An import chunk the migrator serves before
# the REST server (wpclone_migrator_early_chunk) is not among them.
REQUEST_LOG = """<?php
add_filter('rest_pre_dispatch', function ($result, $server, $request) {
    if (strpos($request->get_route(), '/wpclone/v1/') === 0) {
        file_put_contents(WP_CONTENT_DIR . '/migrator-requests.log', json_encode([
            'route' => substr($request->get_route(), strlen('/wpclone/v1/')),
            'login' => isset($_SERVER['HTTP_AUTHORIZATION']) || isset($_SERVER['PHP_AUTH_USER']),
            'token' => isset($_SERVER['HTTP_X_WPCLONE_TOKEN'])]) . "\\n", FILE_APPEND);
    }
    return $result;
}, 10, 3);
"""
# What a "REST API for signed-in users only" plugin does.
SIGNED_IN_ONLY = """<?php
add_filter('rest_authentication_errors', function ($result) {
    if (empty($result) && !is_user_logged_in()) {
        return new WP_Error('rest_not_logged_in', 'Only signed-in users may use the REST API here.', ['status' => 401]);
    }
    return $result;
});
add_filter('wp_is_application_passwords_available', '__return_true');
"""
# What a two-factor plugin does to API logins with a password (application passwords pass).
TWO_FACTOR = """<?php
add_filter('authenticate', function ($user) {
    if ($user instanceof WP_User && defined('REST_REQUEST') && !did_action('application_password_did_authenticate')) {
        return new WP_Error('two_factor_required', 'This account uses two-factor authentication.');
    }
    return $user;
}, 50);
add_filter('wp_is_application_passwords_available', '__return_true');
"""


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def with_mu_plugin(site: WordPressSite, name: str, code: str) -> WordPressSite:
    (site.docroot / "wp-content" / "mu-plugins" / name).write_text(code)
    return site


def application_password(site: WordPressSite) -> str:
    return wp_php(site, "echo WP_Application_Passwords::create_new_application_password("
                        "get_user_by('login', 'admin')->ID, ['name' => 'wpclone'])[0];")


def active_plugins(mariadb: MariaDB, site: WordPressSite) -> str:
    return mariadb.sql(f"SELECT option_value FROM `{site.db_name}`.wp_options WHERE option_name = 'active_plugins'")


def session_files(site: WordPressSite) -> list[Path]:
    return sorted((site.docroot / "wp-content" / "wpclone-migrator" / "sessions").glob("*.json"))


async def open_session(http: httpx.AsyncClient, site: WordPressSite) -> str:
    answer = await http.post(f"{site.url}/wp-json/wpclone/v1/session", json={},
                             headers=basic(site.admin_user, site.admin_password))
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


# --- the password crosses once --------------------------------------------------------------------

async def test_a_job_sends_the_admin_password_once_and_its_token_on_every_other_call(
        make_site: SiteMaker) -> None:
    site = with_mu_plugin(make_site(), "log-requests.php", REQUEST_LOG)
    async with (httpx.AsyncClient(timeout=60) as http,
                site_session(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK,
                             role="source", keep_migrator=False) as source):
        await source.info(checksums=True)
        async with source.export_database(None, 1 << 20) as chunks:
            exported = sum([len(chunk) async for chunk in chunks])
    calls = [json.loads(line) for line in (site.docroot / "wp-content" / "migrator-requests.log").read_text().split()]
    assert exported > 0
    assert calls == [{"route": "session", "login": True, "token": False},
                     {"route": "info", "login": False, "token": True},
                     {"route": "export/database", "login": False, "token": True},
                     {"route": "session/close", "login": False, "token": True}]
    stored = [path.read_text() for path in session_files(site)]
    assert stored == []  # the job closed its session; a live one would hold only the token's hash


async def test_a_session_token_opens_the_migrators_routes_and_nothing_else(make_site: SiteMaker) -> None:
    site = make_site()
    async with httpx.AsyncClient(timeout=60) as http:
        token = await open_session(http, site)
        header = {"X-WPClone-Token": token}
        ours = await http.post(f"{site.url}/wp-json/wpclone/v1/info", json={}, headers=header)
        plain = await http.post(f"{site.url}/?rest_route=/wpclone/v1/info", json={}, headers=header)
        core = await http.get(f"{site.url}/wp-json/wp/v2/users/me", headers=header)
        smuggled = await http.get(f"{site.url}/wp-json/wpclone/v1/info?rest_route=/wp/v2/users/me", headers=header)
        admin = await http.get(f"{site.url}/wp-admin/", headers=header)
        stored = session_files(site)[0].read_text()
    assert ours.status_code == 200 and plain.status_code == 200
    assert core.status_code == 401 and core.json()["code"] == "rest_not_logged_in"
    assert smuggled.status_code == 401 and smuggled.json()["code"] == "rest_not_logged_in"
    assert admin.status_code == 302 and "wp-login.php" in admin.headers["location"]
    assert token not in stored and token.removeprefix("wpcs_") not in stored


async def test_a_closed_or_expired_session_is_refused(make_site: SiteMaker) -> None:
    site = make_site()
    async with httpx.AsyncClient(timeout=60) as http:
        closed = await open_session(http, site)
        await http.post(f"{site.url}/wp-json/wpclone/v1/session/close", json={}, headers={"X-WPClone-Token": closed})
        expired = await open_session(http, site)
        [record] = session_files(site)
        idle_since = time.time() - 1801  # past the idle limit of 30 minutes
        os.utime(record, (idle_since, idle_since))
        answers = [await http.post(f"{site.url}/wp-json/wpclone/v1/info", json={}, headers={"X-WPClone-Token": token})
                   for token in (closed, expired)]
    assert [(answer.status_code, answer.json()["code"]) for answer in answers] == [(401, "wpclone_bad_token")] * 2


# --- throttled logins -----------------------------------------------------------------------------

async def test_failed_logins_are_throttled_even_when_the_right_password_follows(make_site: SiteMaker) -> None:
    site = make_site()
    url = f"{site.url}/wp-json/wpclone/v1/session"
    async with httpx.AsyncClient(timeout=60) as http:
        wrong = [(await http.post(url, json={}, headers=basic("admin", f"guess-{n}"))).status_code for n in range(5)]
        right = await http.post(url, json={}, headers=basic("admin", site.admin_password))
        with pytest.raises(WordPressError) as throttled:
            await Migrator(http, site.url, login="admin", password=site.admin_password, role="source").info()
        for record in (site.docroot / "wp-content" / "wpclone-migrator" / "throttle").glob("*.json"):
            kept = json.loads(record.read_text())
            record.write_text(json.dumps({**kept, "since": kept["since"] - 901}))  # the window has passed
        later = await http.post(url, json={}, headers=basic("admin", site.admin_password))
    assert wrong == [401] * 5
    assert right.status_code == 429 and right.json()["code"] == "wpclone_throttled"
    assert throttled.value.reason == "LoginThrottled" and "try again in" in str(throttled.value)
    assert site.admin_password not in str(throttled.value)
    assert later.status_code == 200


# --- other plugins' decisions stand ----------------------------------------------------------------

@pytest.mark.parametrize(("file_name", "plugin", "says"), [
    ("signed-in-only.php", SIGNED_IN_ONLY, "Only signed-in users may use the REST API here."),
    ("two-factor.php", TWO_FACTOR, ""),
], ids=["rest-api-for-signed-in-users-only", "two-factor-refuses-api-passwords"])
async def test_another_plugins_refusal_of_the_admin_password_is_respected(
        make_site: SiteMaker, file_name: str, plugin: str, says: str) -> None:
    site = with_mu_plugin(make_site(), file_name, plugin)
    app_password = application_password(site)
    async with httpx.AsyncClient(timeout=60) as http:
        with pytest.raises(WordPressError) as refused:
            await Migrator(http, site.url, login="admin", password=site.admin_password, role="source").info()
        # An application password signs the user in the way the plugin expects; so does the session's token.
        report = await Migrator(http, site.url, login="admin", password=app_password, role="source").info()
    assert refused.value.reason == "LoginFailed"
    assert says in str(refused.value)
    assert report.table_prefix == "wp_"


# --- the plugin leaves ------------------------------------------------------------------------------

async def test_the_migrator_leaves_the_site_it_was_installed_on_when_the_job_ends(
        mariadb: MariaDB, make_site: SiteMaker) -> None:
    site = make_site(migrator=False)
    async with (httpx.AsyncClient(timeout=60) as http,
                site_session(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK,
                             role="source", keep_migrator=False) as source):
        during = (await source.info()).mode, (site.docroot / PLUGIN).is_dir()
    assert during == ("plugin", True)
    assert not (site.docroot / PLUGIN).exists()
    assert "wpclone-migrator" not in active_plugins(mariadb, site)
    assert not (site.docroot / "wp-content" / "wpclone-migrator").exists()


async def test_with_two_jobs_the_migrator_leaves_after_the_last(mariadb: MariaDB, make_site: SiteMaker) -> None:
    site = make_site(migrator=False)
    async with httpx.AsyncClient(timeout=60) as http:
        first = await ensure_migrator(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK)
        second = await ensure_migrator(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK)
        removed_first = await first.close_session(remove=True)
        second_still_works = (await second.info()).mode
        removed_second = await second.close_session(remove=True)
    assert (removed_first, second_still_works, removed_second) == (False, "plugin", True)
    assert not (site.docroot / PLUGIN).exists() and "wpclone-migrator" not in active_plugins(mariadb, site)


async def test_a_job_that_never_closed_its_session_is_outlived_by_the_cron_event(
        mariadb: MariaDB, make_site: SiteMaker) -> None:
    site = make_site(migrator=False)
    async with httpx.AsyncClient(timeout=60) as http:
        crashed = await ensure_migrator(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK)
        finished = await ensure_migrator(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK)
        assert crashed.session is not None
        await finished.close_session(remove=True)
    scheduled = wp_php(site, "echo (int) wp_next_scheduled('wpclone_migrator_remove_when_idle');")
    for record in session_files(site):  # the crashed job's session has gone idle
        os.utime(record, (time.time() - 1801, time.time() - 1801))
    wp_php(site, "do_action('wpclone_migrator_remove_when_idle');")
    assert int(scheduled) > time.time()
    assert not (site.docroot / PLUGIN).exists() and "wpclone-migrator" not in active_plugins(mariadb, site)


async def test_a_kept_or_must_use_migrator_stays(mariadb: MariaDB, make_site: SiteMaker) -> None:
    plugin, must_use = make_site(migrator=False), make_site()
    async with httpx.AsyncClient(timeout=60) as http:
        for site in (plugin, must_use):
            async with site_session(http, site.url, site.admin_user, site.admin_password, policy=LOOPBACK,
                                    role="source", keep_migrator=site is plugin):
                pass
        report = await Migrator(http, must_use.url, login="admin", password=must_use.admin_password).info()
    assert (plugin.docroot / PLUGIN).is_dir() and "wpclone-migrator" in active_plugins(mariadb, plugin)
    assert report.mode == "mu-plugin"


# --- backups outside the document root -------------------------------------------------------------

async def test_a_backup_is_kept_outside_the_document_root_and_rolled_back_from_there(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    before = snapshot(mariadb, target)
    async with httpx.AsyncClient(timeout=120) as http:
        source = Migrator(http, source_site.url, login="admin", password=source_site.admin_password, role="source")
        production = Migrator(http, target.url, login="admin", password=target.admin_password, role="target")
        result = await copy_site(source, production, backup=True)
        assert result.backup is not None
        # (the backup's record, a list of table and folder names, stays in the migrator's denied folder)
        served = [str(path) for path in target.docroot.rglob(f"*{result.backup}*")
                  if "wpclone-migrator" not in path.parts]
        store = backup_store(target)
        kept = {path.name for path in (store / result.backup).iterdir()}
        uploads_kept = (store / result.backup / "uploads" / "site").is_dir()
        await production.rollback(result.backup)
    assert served == []
    assert kept == {"uploads", "themes", "plugins"} and uploads_kept
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert snapshot(mariadb, target) == before
    assert not (store / result.backup).exists()


async def test_where_the_store_is_refused_a_backup_stays_beside_behind_deny_files(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = with_mu_plugin(make_site(), "0-backups-beside.php", "<?php define('WPCLONE_BACKUP_DIR', false);\n")
    async with httpx.AsyncClient(timeout=120) as http:
        source = Migrator(http, source_site.url, login="admin", password=source_site.admin_password, role="source")
        production = Migrator(http, target.url, login="admin", password=target.admin_password, role="target")
        result = await copy_site(source, production, backup=True)
        assert result.backup is not None
        kept = target.docroot / "wp-content" / "uploads" / f".wpclone-backup-{result.backup}"
        denied = (await http.get(f"{target.url}/wp-content/uploads/.wpclone-backup-{result.backup}/")).status_code
        has_deny_files = all((kept / name).is_file() for name in (".htaccess", "web.config", "index.php"))
        await production.delete_backup(result.backup)
    assert denied == 404 and has_deny_files
    assert not kept.exists()
