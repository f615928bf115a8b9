"""The migrator plugin on real WordPress: who may use it, how it is installed, what it refuses, how it reads."""

from __future__ import annotations

import asyncio
import base64
import json

import aiomysql
import httpx
import pytest

from testenv.mariadb import MariaDB
from testenv.wordpress import WordPressSite
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker, leftovers, snapshot, wp_php
from wpclone_engine import frames, outbound, reasons
from wpclone_engine import migrator as migrator_files
from wpclone_engine.transfer import copy_site
from wpclone_engine.wordpress import Migrator, WordPressError, ensure_migrator, install_migrator

pytestmark = pytest.mark.integration

make_site, source_site = transfer_fixtures.make_site, transfer_fixtures.source_site

LOOPBACK = outbound.Policy.parse(["127.0.0.1/32"])  # the test sites, and nothing else
ROUTES = ["session", "session/close", "info", "export/database", "export/files", "import/begin", "import/database",
          "import/files", "import/commit", "import/abort", "import/status", "backup/rollback", "backup/delete"]


def migrator(http: httpx.AsyncClient, site: WordPressSite, role: str = "target") -> Migrator:
    return Migrator(http, site.url, login=site.admin_user, password=site.admin_password, role=role)


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


# --- who may use it ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded_site(make_site: SiteMaker) -> WordPressSite:
    """A site with a subscriber, application passwords allowed over http, and an administrator's one."""
    site = make_site()
    (site.docroot / "wp-content" / "mu-plugins" / "allow-app-passwords.php").write_text(
        "<?php add_filter('wp_is_application_passwords_available', '__return_true');\n")
    wp_php(site, "wp_insert_user(['user_login' => 'reader', 'user_pass' => 'Reader-Pass-1', 'role' => 'subscriber']);")
    return site


@pytest.fixture(scope="module")
def application_password(guarded_site: WordPressSite) -> str:
    return wp_php(guarded_site, "echo WP_Application_Passwords::create_new_application_password("
                                "get_user_by('login', 'admin')->ID, ['name' => 'wpclone'])[0];")


@pytest.mark.parametrize("route", ROUTES)
async def test_every_route_refuses_a_request_without_credentials(guarded_site: WordPressSite, route: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{guarded_site.url}/wp-json/wpclone/v1/{route}", json={})
    assert answer.status_code == 401 and answer.json()["code"] == "wpclone_unauthenticated"


@pytest.mark.parametrize(("route", "headers", "status", "code"), [
    ("session", basic("admin", "wrong-password"), 401, "wpclone_login_failed"),
    ("session", basic("nobody", "whatever"), 401, "wpclone_login_failed"),
    ("session", basic("reader", "Reader-Pass-1"), 403, "wpclone_forbidden"),
    ("session", {"Authorization": "Digest username=admin"}, 401, "wpclone_unauthenticated"),
    ("info", {"X-WPClone-Token": "a-token-this-site-does-not-define"}, 401, "wpclone_bad_token"),
    ("info", {"X-WPClone-Token": "wpcs_" + "0" * 64}, 401, "wpclone_bad_token"),
    ("info", {"Authorization": "Bearer a-token-this-site-does-not-define"}, 401, "wpclone_session_required"),
], ids=["wrong-password", "unknown-user", "not-an-administrator", "other-scheme", "token-without-constant",
        "session-never-opened", "bearer"])
async def test_credentials_that_are_not_an_administrators_are_refused(
        guarded_site: WordPressSite, route: str, headers: dict[str, str], status: int, code: str) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{guarded_site.url}/wp-json/wpclone/v1/{route}", json={}, headers=headers)
    assert (answer.status_code, answer.json()["code"]) == (status, code)


async def test_an_application_password_and_the_login_password_both_open_a_session(
        guarded_site: WordPressSite, application_password: str) -> None:
    async with httpx.AsyncClient() as http:
        with_application_password = await http.post(f"{guarded_site.url}/wp-json/wpclone/v1/session", json={},
                                                     headers=basic("admin", application_password))
        # Once application passwords are in use, core refuses Basic with a login password on its own
        # routes; the session route checks that login itself.
        with_login_password = await http.post(f"{guarded_site.url}/wp-json/wpclone/v1/session", json={},
                                              headers=basic("admin", guarded_site.admin_password))
        core_route = await http.get(f"{guarded_site.url}/wp-json/wp/v2/users/me",
                                    headers=basic("admin", guarded_site.admin_password))
        infos = [await http.post(f"{guarded_site.url}/wp-json/wpclone/v1/info", json={},
                                 headers={"X-WPClone-Token": answer.json()["token"]})
                 for answer in (with_application_password, with_login_password)]
    assert with_application_password.status_code == 200 and with_login_password.status_code == 200
    assert core_route.status_code == 401
    assert [info.status_code for info in infos] == [200, 200]


async def test_a_refused_login_names_the_site_and_user_but_never_the_password(guarded_site: WordPressSite) -> None:
    async with httpx.AsyncClient() as http:
        wrong = Migrator(http, guarded_site.url, login="admin", password="S3cret-Not-Shown", role="source")
        with pytest.raises(WordPressError) as failure:
            await wrong.info()
        reader = Migrator(http, guarded_site.url, login="reader", password="Reader-Pass-1", role="source")
        with pytest.raises(WordPressError) as forbidden:
            await reader.info()
    assert failure.value.reason == "LoginFailed"
    assert str(failure.value).startswith(f"source login failed for admin@{guarded_site.url}: 401")
    assert "S3cret" not in str(failure.value)
    assert forbidden.value.reason == "Forbidden" and "Reader-Pass" not in str(forbidden.value)


# --- installing it --------------------------------------------------------------------------------

async def test_the_migrator_is_installed_where_it_is_missing_and_survives_a_copy_into_its_site(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    site = make_site(migrator=False)
    async with httpx.AsyncClient() as http:
        with pytest.raises(WordPressError) as missing:
            await migrator(http, site).info()
        installed = await ensure_migrator(http, site.url, site.admin_user, site.admin_password, role="target",
                                          policy=LOOPBACK)
        first = await installed.info()
        await install_migrator(site.url, site.admin_user, site.admin_password, policy=LOOPBACK)  # replaces the copy
        await copy_site(migrator(http, source_site, "source"), installed)
        after_copy = await installed.info()
        with_collations = await installed.info(collations=True)
    assert missing.value.reason == "MigratorMissing"
    # Asked for, each table's collations (its own and its columns'), as the server has them; else none.
    assert after_copy.tables["wp_posts"].collations == ()
    expected = set(mariadb.sql(
        f"SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{site.db_name}' AND "
        f"TABLE_NAME = 'wp_posts' UNION SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
        f"'{site.db_name}' AND TABLE_NAME = 'wp_posts' AND COLLATION_NAME IS NOT NULL").split())
    assert expected and set(with_collations.tables["wp_posts"].collations) == expected
    assert first.mode == "plugin" and after_copy.mode == "plugin"
    active = mariadb.sql(f"SELECT option_value FROM `{site.db_name}`.wp_options WHERE option_name = 'active_plugins'")
    assert '"wpclone-migrator/wpclone-migrator.php"' in active
    assert (site.docroot / "wp-content" / "plugins" / "wpclone-migrator" / "wpclone-migrator.php").is_file()


async def test_a_kept_migrator_of_another_release_is_replaced_before_a_job_and_a_must_use_one_is_left_as_it_is(
        make_site: SiteMaker, caplog: pytest.LogCaptureFixture) -> None:
    kept, must_use = make_site(migrator=False), make_site()
    installed = kept.docroot / "wp-content" / "plugins" / "wpclone-migrator" / "wpclone-migrator-site.php"
    owners = must_use.docroot / "wp-content" / "mu-plugins" / "wpclone-migrator-site.php"
    async with httpx.AsyncClient() as http:
        await install_migrator(kept.url, kept.admin_user, kept.admin_password, policy=LOOPBACK)
        current = await ensure_migrator(http, must_use.url, must_use.admin_user, must_use.admin_password,
                                        policy=LOOPBACK)
        await current.close_session(remove=True)
        for copy in (installed, owners):  # as an earlier release's copy differs from this one's
            copy.write_text(copy.read_text() + "// an earlier release\n")
        replaced = await ensure_migrator(http, kept.url, kept.admin_user, kept.admin_password, policy=LOOPBACK)
        now_installed = installed.read_text()
        left = await ensure_migrator(http, must_use.url, must_use.admin_user, must_use.admin_password,
                                     policy=LOOPBACK)
        assert (await replaced.info()).mode == "plugin"
        await replaced.close_session(remove=True)
        await left.close_session(remove=True)
    assert now_installed == (migrator_files.PLUGIN_DIR / "wpclone-migrator-site.php").read_text()
    assert current.must_use and current.build == migrator_files.build()  # PHP and Python agree on a release
    assert replaced.build == migrator_files.build() and not replaced.must_use
    assert owners.read_text().endswith("// an earlier release\n")  # a must-use copy is its owner's
    assert left.must_use and left.build not in (None, migrator_files.build())
    assert f"{must_use.url}: its migrator is of another release" in caplog.text


async def test_installing_with_a_wrong_password_fails_clearly(make_site: SiteMaker) -> None:
    site = make_site(migrator=False)
    async with httpx.AsyncClient() as http:
        with pytest.raises(WordPressError) as failure:
            await ensure_migrator(http, site.url, "admin", "Wrong-Pass-42", role="source", policy=LOOPBACK)
    assert failure.value.reason == "LoginFailed"
    assert f"admin@{site.url}" in str(failure.value) and "Wrong-Pass-42" not in str(failure.value)


async def test_a_site_that_forbids_plugin_uploads_refuses_the_install_clearly(make_site: SiteMaker) -> None:
    site = make_site(migrator=False)
    (site.docroot / "wp-content" / "mu-plugins").mkdir(exist_ok=True)
    (site.docroot / "wp-content" / "mu-plugins" / "no-file-mods.php").write_text(
        "<?php define('DISALLOW_FILE_MODS', true);\n")
    async with httpx.AsyncClient() as http:
        with pytest.raises(WordPressError) as failure:
            await ensure_migrator(http, site.url, site.admin_user, site.admin_password, role="source", policy=LOOPBACK)
    assert failure.value.reason == "CannotInstall"
    assert f"source {site.url}: admin cannot upload plugins (not an administrator, or DISALLOW_FILE_MODS)" in \
        str(failure.value)
    assert not (site.docroot / "wp-content" / "plugins" / "wpclone-migrator").exists()


# --- what an import refuses -------------------------------------------------------------------------

def header(job: str, seq: int = 1) -> bytes:
    return frames.encode_json(frames.HEADER, {"job": job, "seq": seq})


def piece(path: str, data: bytes, offset: int = 0, size: int | None = None) -> bytes:
    size = offset + len(data) if size is None else size
    return frames.encode_frame(frames.PIECE, frames.encode_record(
        [path.encode(), str(offset).encode(), str(size).encode(), b"0", b"420", data]))


CREATE = "CREATE TABLE `{name}` (\n  `id` int NOT NULL,\n  `v` text,\n  PRIMARY KEY (`id`)\n)"


def table_frames(name: str, rows: list[list[bytes | None]], announced: int | None = None) -> list[bytes]:
    return [frames.encode_json(frames.TABLE, {"name": name, "create": CREATE.format(name=name),
                                              "columns": ["id", "v"]}),
            frames.encode_frame(frames.ROWS, b"".join(frames.encode_record(row) for row in rows)),
            frames.encode_json(frames.TABLE_END, {"name": name, "rows": len(rows) if announced is None else announced})]


HOSTILE_CHUNKS = {
    "parent-segments": ("files", lambda job: [header(job), piece("uploads/../../wp-config.php", b"x")],
                        "refusing file path"),
    "absolute-path": ("files", lambda job: [header(job), piece("/etc/passwd", b"x")], "refusing file path"),
    "hidden-parent": ("files", lambda job: [header(job), piece("uploads/a/../../../x.php", b"x")],
                      "refusing file path"),
    "migrator-itself": ("files", lambda job: [header(job), piece("plugins/wpclone-migrator/x.php", b"x")],
                        "refusing file path"),
    "folder-not-imported": ("files", lambda job: [header(job), piece("mu-plugins/evil.php", b"x")],
                            "not part of this import"),
    "more-data-than-announced": ("files", lambda job: [header(job), piece("uploads/a.txt", b"0123456789", 0, 4)],
                                 "more than the 4 bytes announced"),
    "frame-longer-than-chunk": ("files", lambda job: [header(job), piece("uploads/a.txt", b"x" * 100)[:40]],
                                "but the request holds 35"),
    "export-frames-in-an-import": ("files", lambda job: [header(job), frames.encode_frame(frames.DATA, b"x")],
                                   "unexpected frame 'D'"),
    "malformed-rows": ("database", lambda job: [
        header(job), *table_frames("wp_evil", [])[:1],
        frames.encode_frame(frames.ROWS, b"\x00\x00\x00\x09ab\x00\x00\x00\x01")],
        "a value is longer than what is left of its frame"),
    "wrong-row-count": ("database", lambda job: [header(job), *table_frames("wp_evil", [[b"1", b"a"]], announced=2)],
                        "announced 2 rows, 1 arrived"),
    "table-of-another-site": ("database", lambda job: [header(job), *table_frames("mysql_user", [])],
                              "refusing table name"),
    "definition-of-another-table": ("database", lambda job: [header(job), frames.encode_json(frames.TABLE, {
        "name": "wp_evil", "create": CREATE.format(name="wp_users"), "columns": ["id", "v"]})],
        "does not begin with"),
    "no-header": ("files", lambda job: [piece("uploads/a.txt", b"x")], "must begin with its H frame"),
}


@pytest.fixture(scope="module")
def target_site(make_site: SiteMaker) -> WordPressSite:
    return make_site()


@pytest.mark.parametrize("case", HOSTILE_CHUNKS, ids=list(HOSTILE_CHUNKS))
async def test_a_hostile_chunk_is_refused_with_a_reason_and_leaves_nothing_behind(
        mariadb: MariaDB, target_site: WordPressSite, case: str) -> None:
    site = target_site
    kind, chunk, reason = HOSTILE_CHUNKS[case]
    before = snapshot(mariadb, site)
    async with httpx.AsyncClient() as http:
        destination = migrator(http, site)
        job = await destination.begin_import(database=True, tables=None, files=["uploads", "plugins"])
        with pytest.raises(WordPressError) as refusal:
            await destination.send_chunk(kind, chunk(job.id))
        if case == "no-header":  # nothing told the site which job to drop
            await destination.abort_import(job.id)
        with pytest.raises(WordPressError, match="the import was dropped: |no import job"):  # why, if known
            await destination.import_status(job.id)
    assert reason in str(refusal.value)
    assert snapshot(mariadb, site) == before and leftovers(mariadb, site) == []
    assert not list((site.docroot / "wp-content").rglob("wp-config.php"))


async def test_a_chunk_sent_twice_is_applied_once(mariadb: MariaDB, target_site: WordPressSite) -> None:
    site = target_site
    async with httpx.AsyncClient() as http:
        destination = migrator(http, site)
        job = await destination.begin_import(database=True, tables=["wp_extra"], files=["uploads"])
        chunk = [header(job.id), *table_frames("wp_extra", [[b"1", b"one"], [b"2", None]])]
        first = await destination.send_chunk("database", chunk)
        again = await destination.send_chunk("database", chunk)
        with pytest.raises(WordPressError, match="expected database chunk 2, got 5"):
            await destination.send_chunk("database", [header(job.id, 5)])
        # file chunks may arrive in any order, and again
        second_half = [header(job.id, 2), piece("uploads/extra.txt", b"world", 6, 11)]
        await destination.send_chunk("files", second_half)
        await destination.send_chunk("files", [header(job.id, 1), piece("uploads/extra.txt", b"hello ", 0, 11)])
        repeated = await destination.send_chunk("files", second_half)
        await destination.commit_import(job.id, chunks={"database": 1, "files": 2}, backup=False)
    assert first["rows"] == 2 and again == {**first, "repeated": True} and repeated["repeated"] is True
    stored = mariadb.sql(f"SELECT id, COALESCE(v, 'NULL') FROM `{site.db_name}`.wp_extra ORDER BY id")
    assert stored == "1\tone\n2\tNULL"
    assert (site.docroot / "wp-content" / "uploads" / "extra.txt").read_bytes() == b"hello world"
    mariadb.sql(f"DROP TABLE `{site.db_name}`.wp_extra")
    (site.docroot / "wp-content" / "uploads" / "extra.txt").unlink()



async def test_database_chunks_sent_side_by_side_are_applied_in_their_order(
        mariadb: MariaDB, target_site: WordPressSite) -> None:
    """The engine sends two database chunks at a time: the second may reach the site first. It is refused
    at once as not yet (waiting for the first could wait on a request queued behind it), the job intact,
    and applied when sent again after the first."""
    site = target_site
    rows = [[str(number).encode(), f"row {number}".encode()] for number in range(1, 7)]
    begin, *_ = table_frames("wp_extra", rows)
    async with httpx.AsyncClient() as http:
        destination = migrator(http, site)
        job = await destination.begin_import(database=True, tables=["wp_extra"], files=["uploads"])
        second = [header(job.id, 2), frames.encode_frame(frames.ROWS, b"".join(map(frames.encode_record, rows[3:]))),
                  frames.encode_json(frames.TABLE_END, {"name": "wp_extra", "rows": 6})]
        with pytest.raises(WordPressError) as early:
            await asyncio.wait_for(destination.send_chunk("database", second), 30)
        first = await destination.send_chunk("database", [
            header(job.id, 1), begin, frames.encode_frame(frames.ROWS, b"".join(map(frames.encode_record, rows[:3])))])
        applied = await destination.send_chunk("database", second)
        again = await destination.send_chunk("database", [header(job.id, 1)])  # its answer was lost, say
        await destination.commit_import(job.id, chunks={"database": 2, "files": 0}, backup=False)
    assert early.value.reason == reasons.CHUNK_EARLY and "came before chunk 1" in str(early.value)
    assert (first["rows"], applied["rows"], again) == (3, 3, {"seq": 1, "repeated": True})
    stored = mariadb.sql(f"SELECT GROUP_CONCAT(v ORDER BY id) FROM `{site.db_name}`.wp_extra")
    assert stored == ",".join(f"row {number}" for number in range(1, 7))
    mariadb.sql(f"DROP TABLE `{site.db_name}`.wp_extra")


async def test_a_database_chunks_rows_go_in_while_the_next_chunk_is_read(
        mariadb: MariaDB, target_site: WordPressSite) -> None:
    """A chunk's turn covers reading it (its tables created, its rows counted, its ends checked); its rows go
    in after, so the next chunk is read and answered while they wait, here on a row another connection holds."""
    site = target_site
    create, rows, end = table_frames("wp_extra", [[b"1", b"one"], [b"2", b"two"]])
    async with httpx.AsyncClient() as http:
        destination = migrator(http, site)
        job = await destination.begin_import(database=True, tables=["wp_extra", "wp_more"], files=["uploads"])
        await destination.send_chunk("database", [header(job.id, 1), create])
        holder = await aiomysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.admin_user,
                                        password=mariadb.admin_password, db=site.db_name)
        try:
            async with holder.cursor() as cursor:
                await cursor.execute("BEGIN")
                await cursor.execute(f"INSERT INTO `wpci_{job.id}_0` (id, v) VALUES (2, 'held')")
                second = asyncio.ensure_future(destination.send_chunk("database", [header(job.id, 2), rows]))
                for _ in range(600):  # until its INSERT runs, and waits on the row held here (for at most 30 s)
                    await cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s",
                                         (f"INSERT INTO `wpci_{job.id}_0`%",))
                    if second.done() or (await cursor.fetchone())[0]:
                        break
                    await asyncio.sleep(0.05)
                third = await asyncio.wait_for(destination.send_chunk(
                    "database", [header(job.id, 3), end, *table_frames("wp_more", [[b"7", b"seven"]])]), 60)
                waiting = not second.done()
                await holder.rollback()
        finally:
            holder.close()
        await second
        await destination.commit_import(job.id, chunks={"database": 3, "files": 0}, backup=False)
    assert waiting and (second.result()["rows"], third["rows"]) == (2, 1)
    assert mariadb.sql(f"SELECT GROUP_CONCAT(v ORDER BY id) FROM `{site.db_name}`.wp_extra") == "one,two"
    assert mariadb.sql(f"SELECT v FROM `{site.db_name}`.wp_more") == "seven"
    mariadb.sql(f"DROP TABLE `{site.db_name}`.wp_extra, `{site.db_name}`.wp_more")


HOOKS_PLUGIN = r"""<?php
add_action('init', function () {
    if (isset($_SERVER['HTTP_X_TEST_MARK'])) {
        file_put_contents(WP_CONTENT_DIR . '/reached-init.txt', $_SERVER['HTTP_X_TEST_MARK'] . "\n", FILE_APPEND);
    }
});
add_filter('rest_authentication_errors', function ($result) {
    return isset($_SERVER['HTTP_X_TEST_REFUSE'])
        ? new WP_Error('test_refused', 'refused by a plugin', ['status' => 403]) : $result;
});
"""


@pytest.fixture(scope="module")
def site_with_plugin_hooks(make_site: SiteMaker) -> WordPressSite:
    """A site whose plugin notes each request that reached `init`, and refuses REST requests when asked."""
    site = make_site()
    (site.docroot / "wp-content" / "mu-plugins" / "hooks.php").write_text(HOOKS_PLUGIN)
    return site


async def test_an_import_chunk_is_served_before_the_theme_and_init_but_a_plugins_refusal_stands(
        site_with_plugin_hooks: WordPressSite) -> None:
    site = site_with_plugin_hooks
    marks = site.docroot / "wp-content" / "reached-init.txt"
    async with httpx.AsyncClient() as http:
        destination = migrator(http, site)
        job = await destination.begin_import(database=False, tables=None, files=["uploads"])

        async def post(route: str, body: bytes, **headers: str) -> httpx.Response:
            return await http.post(f"{site.url}/wp-json/wpclone/v1/{route}", content=body,
                                   headers={"X-WPClone-Token": destination.session or "", **headers})

        chunk = header(job.id, 1) + piece("uploads/early.txt", b"hello")
        refused = await post("import/files", chunk, **{"X-Test-Mark": "refused", "X-Test-Refuse": "1"})
        served = await post("import/files", chunk, **{"X-Test-Mark": "files"})
        status = await post("import/status", json.dumps({"job": job.id}).encode(),
                            **{"X-Test-Mark": "status", "Content-Type": "application/json"})
        await destination.commit_import(job.id, chunks={"files": 1}, backup=False)
    assert (refused.status_code, refused.json()["code"]) == (403, "test_refused")
    assert served.status_code == 200 and served.json()["pieces"] == 1
    assert status.status_code == 200 and status.json()["file_chunks"] == 1
    # The refused chunk went on to the REST route, through init; the served one never reached it.
    assert marks.read_text().split() == ["refused", "status"]
    assert (site.docroot / "wp-content" / "uploads" / "early.txt").read_bytes() == b"hello"
    (site.docroot / "wp-content" / "uploads" / "early.txt").unlink()


INCOMPLETE_IMPORTS = {
    "missing-end": ([piece("uploads/a.txt", b"abc", 0, 6)], {"files": 1}, "a.txt: 3 of its 6 bytes arrived"),
    "missing-middle": ([piece("uploads/a.txt", b"ab", 0, 6), piece("uploads/a.txt", b"ef", 4, 6)], {"files": 1},
                       "a.txt: bytes from 2 never arrived"),
    "overlapping-pieces": ([piece("uploads/a.txt", b"abcd", 0, 6), piece("uploads/a.txt", b"cdef", 2, 6)],
                           {"files": 1}, "a.txt: bytes from 2 arrived twice"),
    "two-sizes": ([piece("uploads/a.txt", b"abc", 0, 6), piece("uploads/a.txt", b"def", 3, 7)], {"files": 1},
                  "announced with two sizes"),
    "lost-chunk": ([piece("uploads/a.txt", b"abc")], {"files": 2}, "2 file chunks were sent, 1 arrived"),
    "lost-table-chunk": ([piece("uploads/a.txt", b"abc")], {"files": 1, "database": 1},
                         "1 database chunks were sent, 0 arrived"),
}


@pytest.mark.parametrize("case", INCOMPLETE_IMPORTS, ids=list(INCOMPLETE_IMPORTS))
async def test_an_import_that_is_not_whole_is_refused_at_commit_and_leaves_nothing_behind(
        mariadb: MariaDB, target_site: WordPressSite, case: str) -> None:
    pieces, chunks, reason = INCOMPLETE_IMPORTS[case]
    before = snapshot(mariadb, target_site)
    async with httpx.AsyncClient() as http:
        destination = migrator(http, target_site)
        job = await destination.begin_import(database=False, tables=None, files=["uploads"])
        await destination.send_chunk("files", [header(job.id, 1), *pieces])
        with pytest.raises(WordPressError) as refusal:
            await destination.commit_import(job.id, chunks={"database": 0, **chunks}, backup=False)
    assert reason in str(refusal.value)
    assert snapshot(mariadb, target_site) == before and leftovers(mariadb, target_site) == []


# --- how it reads -----------------------------------------------------------------------------------

async def test_the_export_walks_every_kind_of_table_a_slice_at_a_time_without_losing_or_repeating_rows(
        mariadb: MariaDB, make_site: SiteMaker) -> None:
    site = make_site()
    db = f"`{site.db_name}`"
    mariadb.sql(
        f"CREATE TABLE {db}.wp_nokey (v VARCHAR(40)) ENGINE=InnoDB;"
        f"INSERT INTO {db}.wp_nokey SELECT CONCAT('same ', seq % 7) FROM mysql.seq_1_to_4500;"
        f"CREATE TABLE {db}.wp_composite (name VARCHAR(20) COLLATE utf8mb4_unicode_ci, n INT, blob_value BLOB,"
        " PRIMARY KEY (name, n));"
        f"INSERT INTO {db}.wp_composite SELECT ELT(1 + seq % 5, 'a', 'B', 'ç', 'Z', 'é'), seq, "
        "UNHEX(CONCAT('00FF', HEX(seq))) FROM mysql.seq_1_to_4500;"
        f"CREATE TABLE {db}.wp_huge (id BIGINT UNSIGNED PRIMARY KEY, v TEXT);"
        f"INSERT INTO {db}.wp_huge SELECT 18446744073709551615 - seq * 3, REPEAT('x', seq % 300) "
        "FROM mysql.seq_1_to_4500;"
        f"CREATE TABLE {db}.wp_unique (code CHAR(8) NOT NULL, UNIQUE KEY (code));"
        f"INSERT INTO {db}.wp_unique SELECT LPAD(seq, 8, '0') FROM mysql.seq_1_to_4500;")
    columns = {"wp_nokey": "v", "wp_composite": "name, n, blob_value", "wp_huge": "id, v", "wp_unique": "code"}
    tables = list(columns)
    received: dict[str, list[list[bytes | None]]] = {table: [] for table in tables}
    slices: dict[str, int] = dict.fromkeys(tables, 0)
    async with httpx.AsyncClient() as http, migrator(http, site).export_database(tables, 16 * 1024) as chunks:
        width = 0
        async for frame in frames.read_frames(chunks):
            if frame.kind == frames.TABLE:
                table, width, key = frame.json()["name"], len(frame.json()["columns"]), frame.json()["key"]
                assert key == {"wp_nokey": [], "wp_composite": ["name", "n"], "wp_huge": ["id"],
                               "wp_unique": ["code"]}[table]
            elif frame.kind == frames.ROWS:
                received[table] += frames.decode_records(frame.payload, width)
                slices[table] += 1
    for table in tables:
        expected = mariadb.sql(f"SELECT HEX(CONCAT_WS('|', {columns[table]})) FROM {db}.{table}").split()
        got = sorted(b"|".join(value or b"" for value in row).hex().upper() for row in received[table])
        assert got == sorted(expected), table
        assert slices[table] > 1, table

    # An export asked to go on: after a key (a composite one, with accents a collation orders and the
    # server compares), then past a finished table; bad places to go on from are refused.
    middle = received["wp_composite"][2000]
    after = {"resume_from": "wp_composite", "resume_after": [base64.b64encode(middle[0] or b"").decode(),
                                                              base64.b64encode(middle[1] or b"").decode()]}
    async def go_on(resume: dict[str, object]) -> dict[str, list[list[bytes | None]]]:
        went_on: dict[str, list[list[bytes | None]]] = {}
        async with httpx.AsyncClient() as http, migrator(http, site).export_database(
                ["wp_composite", "wp_huge"], 16 * 1024, resume) as chunks:
            async for frame in frames.read_frames(chunks):
                if frame.kind == frames.TABLE:
                    table, width = frame.json()["name"], len(frame.json()["columns"])
                    went_on[table] = []
                elif frame.kind == frames.ROWS:
                    went_on[table] += frames.decode_records(frame.payload, width)
                elif frame.kind == frames.TABLE_END:
                    assert frame.json()["rows"] == len(went_on[table])
        return went_on
    assert await go_on(after) == {"wp_composite": received["wp_composite"][2001:], "wp_huge": received["wp_huge"]}
    assert await go_on({"resume_past": "wp_composite"}) == {"wp_huge": received["wp_huge"]}
    for bad in ({"resume_from": "wp_nokey"}, {"resume_from": "wp_huge", "resume_after": after["resume_after"]},
                {"resume_from": "wp_composite", "resume_after": ["not base64!"]}):
        with pytest.raises(WordPressError, match="bad_request|go on"):
            await go_on(bad)


async def test_a_files_export_goes_on_in_a_file_at_a_byte_and_refuses_a_place_it_cannot_go_on_from(
        make_site: SiteMaker) -> None:
    site = make_site()
    folder = site.docroot / "wp-content" / "uploads" / "2024"
    folder.mkdir(parents=True)
    contents = {name: bytes(range(256)) * (size // 256) for name, size in (("a.bin", 40_960), ("b.bin", 81_920),
                                                                          ("c.bin", 4_096))}
    for name, data in contents.items():
        (folder / name).write_bytes(data)

    async def export(resume: dict[str, object] | None) -> list[tuple[bytes, bytes]]:
        got: list[tuple[bytes, bytes]] = []
        async with httpx.AsyncClient() as http, migrator(http, site).export_files(
                ["uploads"], 16 * 1024, resume=resume) as chunks:
            async for frame in frames.read_frames(chunks):
                if frame.kind == frames.FILE:
                    got.append((frames.decode_single_record(frame.payload, 4)[0] or b"", b""))
                elif frame.kind == frames.DATA:
                    got[-1] = (got[-1][0], got[-1][1] + frame.payload)
        return got

    whole = await export(None)  # the site's own uploads too, in the walk's order
    paths = [path for path, _ in whole]
    assert {path: data for path, data in whole if path.startswith(b"uploads/2024/")} == {
        f"uploads/2024/{name}".encode(): data for name, data in contents.items()}
    # In b.bin after 50,000 of its bytes: its header again, its bytes from there, then the files after it.
    b, c = paths.index(b"uploads/2024/b.bin"), paths.index(b"uploads/2024/c.bin")
    assert await export({"resume_file": "uploads/2024/b.bin", "resume_offset": 50_000}) == [
        (b"uploads/2024/b.bin", contents["b.bin"][50_000:]), *whole[b + 1:]]
    assert await export({"resume_file": "uploads/2024/c.bin", "resume_offset": 4_096}) == [
        (b"uploads/2024/c.bin", b""), *whole[c + 1:]]
    for bad, reason in (({"resume_file": "uploads/2024/gone.bin", "resume_offset": 0}, "gone"),
                        ({"resume_file": "uploads/2024/c.bin", "resume_offset": 4_097}, "shorter"),
                        ({"resume_file": "uploads/2024/c.bin", "resume_offset": -1}, "bad_request|resume_offset"),
                        ({"resume_file": "", "resume_offset": 0}, "bad_request|resume_file")):
        with pytest.raises((WordPressError, frames.StreamError), match=reason):  # refused, or failed in the stream
            await export(bad)


async def test_info_reports_tables_checksums_content_and_limits(mariadb: MariaDB, source_site: WordPressSite) -> None:
    async with httpx.AsyncClient() as http:
        info = await migrator(http, source_site, "source").info(checksums=True, content=True)
    assert info.home == source_site.url and info.table_prefix == "wp_" and info.mode == "mu-plugin"
    posts = mariadb.sql(f"CHECKSUM TABLE `{source_site.db_name}`.wp_posts").split("\t")[1]
    assert info.tables["wp_posts"].checksum == posts
    assert info.tables["wp_posts"].rows == int(mariadb.sql(f"SELECT COUNT(*) FROM `{source_site.db_name}`.wp_posts"))
    assert info.content is not None and info.content["uploads"]["files"] >= 1
    assert info.max_request_bytes > 1024 * 1024
    assert info.versions["migrator"] == "0.1.0" and info.versions["wordpress"] == "6.1.9"
