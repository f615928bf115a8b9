"""SQLite clones: a real MySQL site copied into a real WordPress that runs on the SQLite drop-in (fetched by
`make deps`), served by PHP, with no MySQL behind it."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from pymysql.converters import conversions

from testenv.mariadb import MariaDB
from testenv.wordpress import WordPressSite
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import (
    CutExports,
    SiteMaker,
    SqliteClone,
    content_hashes,
    log_in,
    sqlite_wordpress,
    wp_php,
)
from wpclone_engine.site_move import AdminPassword
from wpclone_engine.sqlite_dropin import DATABASE_FILE
from wpclone_engine.sqlite_export import SqliteSite
from wpclone_engine.sqlite_import import TYPES_TABLE, SqliteTarget, sqlite_table
from wpclone_engine.transfer import DatabaseDestination, TransferError, copy_site
from wpclone_engine.wordpress import Migrator

pytestmark = pytest.mark.integration

make_site, sqlite_clone = transfer_fixtures.make_site, transfer_fixtures.sqlite_clone

# Types and values a plugin's table may hold, beyond WordPress's own tables: no primary key, binary data
# that is no UTF-8, a decimal, an enum (which the drop-in itself cannot create), a quote in a default.
ODD_TABLE = """CREATE TABLE `{db}`.`wp_odd` (
  `label` varchar(40) NOT NULL DEFAULT 'it''s',
  `data` blob,
  `price` decimal(10,2) NOT NULL DEFAULT 0.00,
  `kind` enum('small','large') DEFAULT 'small',
  `seen` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  KEY `label` (`label`(10))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci;
INSERT INTO `{db}`.`wp_odd` VALUES ('Ünïcödé ✓ 東京', X'00FF80FE0A27', 12.50, 'large', '2024-02-29 12:00:00'),
  ('same', NULL, 0, NULL, '0000-00-00 00:00:00'), ('same', '', 1.10, 'small', '1999-12-31 23:59:59');"""


def migrator(http: httpx.AsyncClient, site: WordPressSite) -> Migrator:
    return Migrator(http, site.url, login=site.admin_user, password=site.admin_password, role="source",
                    retry_delays=(0.2, 0.2))


def destination(http: httpx.AsyncClient, clone: SqliteClone, token: str | None = None) -> DatabaseDestination:
    return DatabaseDestination(SqliteTarget(clone.database, clone.table_prefix), clone.url,
                               files=Migrator(http, clone.url, token=token or clone.token, role="clone"))


def mysql_rows(mariadb: MariaDB, database: str, table: str) -> list[tuple[bytes | None, ...]]:
    connection = pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.admin_user,
                                 password=mariadb.admin_password, database=database,
                                 conv={key: value for key, value in conversions.items() if not isinstance(key, int)})
    with connection, connection.cursor() as cursor:
        cursor.execute("SET NAMES binary")  # every value as the bytes it is (numbers as their text)
        cursor.execute(f"SELECT * FROM `{table}`")
        return [tuple(value.encode() if isinstance(value, str) else value for value in row)
                for row in cursor.fetchall()]


def sqlite_rows(clone: SqliteClone, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(clone.database / DATABASE_FILE) as connection:
        connection.text_factory = bytes
        return connection.execute(f'SELECT * FROM "{table}"').fetchall()


def cell(value: Any) -> tuple[Any, ...]:
    """A value as both databases hold it: numbers as numbers (a decimal is a real in SQLite, 12.50 is 12.5),
    anything else as its bytes."""
    if value is None:
        return ("null",)
    if isinstance(value, int | float):
        return ("number", float(value))
    try:
        return ("number", float(value))
    except ValueError:
        return ("bytes", value)


def row_differences(source: list[tuple[bytes | None, ...]], clone: list[tuple[Any, ...]], old: str, new: str,
                    change: Callable[[tuple[Any, ...]], tuple[Any, ...]] = lambda row: row) -> list[tuple[Any, ...]]:
    """The rows of one side that the other lacks (none when the clone holds the source's rows, moved, and
    `change`d as the copy changes them)."""
    expected = [change(tuple(None if value is None else value.replace(old.encode(), new.encode()) for value in row))
                for row in source]
    found = [change(tuple(as_bytes(value) for value in row)) for row in clone]
    counted = {tuple(cell(value) for value in row) for row in expected}, {tuple(cell(value) for value in row)
                                                                          for row in found}
    if len(expected) != len(found):
        return [("rows", len(expected), len(found))]
    return sorted(counted[0] ^ counted[1], key=repr)[:4]


def as_bytes(value: Any) -> Any:
    return value if value is None or isinstance(value, bytes | int | float) else bytes(value)


def prefix_moved(table: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """How a copy into the clone's prefix (clone_) changes a row of `table` (wp_): the user roles' option
    and the prefixed user meta keys are renamed; the administrator's password is the clone's own."""
    def change(row: tuple[Any, ...]) -> tuple[Any, ...]:
        cells = list(row)
        if table == "wp_options" and cells[1] in (b"wp_user_roles", b"clone_user_roles"):
            cells[1] = b"clone_user_roles"
        elif table == "wp_usermeta" and isinstance(cells[2], bytes) and cells[2].startswith(b"wp_"):
            cells[2] = b"clone_" + cells[2][3:]
        elif table == "wp_users":
            cells[2] = b"(a password)"
        return tuple(cells)
    return change


def database_folder(clone: SqliteClone) -> list[str]:
    return sorted(path.name for path in clone.database.iterdir() if path.name not in (".htaccess", "index.php"))


def content(clone: SqliteClone) -> dict[str, list[tuple[Any, ...]]]:
    """The clone's tables but its options (WordPress writes transients there as it serves)."""
    return {table: sorted(sqlite_rows(clone, f"clone_{table}"), key=repr)
            for table in ("posts", "postmeta", "users", "usermeta", "terms", "comments")}


async def test_a_sqlite_clone_serves_the_whole_site_from_one_file_outside_its_document_root(
        mariadb: MariaDB, make_site: SiteMaker, sqlite_clone: SqliteClone) -> None:
    source = make_site()
    mariadb.sql(ODD_TABLE.format(db=source.db_name))
    new_password = secrets.token_urlsafe(16)
    async with httpx.AsyncClient() as http:
        before = await http.get(sqlite_clone.url + "/")
        result = await copy_site(migrator(http, source), destination(http, sqlite_clone),
                                 admin_password=AdminPassword("admin", new_password))
        # Every row of every table, byte for byte, the URL rewritten (both URLs have the same length), before
        # the clone's WordPress writes to them.
        assert len(source.url) == len(sqlite_clone.url)
        tables = mariadb.sql(f"SHOW TABLES FROM `{source.db_name}`").split()
        assert result.tables == len(tables) == 13 and result.old_urls_left == 0
        for table in tables:
            clone_rows = sqlite_rows(sqlite_clone, "clone_" + table.removeprefix("wp_"))
            assert row_differences(mysql_rows(mariadb, source.db_name, table), clone_rows, source.url, sqlite_clone.url,
                                   prefix_moved(table)) == [], table
        page = await http.get(sqlite_clone.url + "/first-steps/")

    assert before.status_code == 302 and "install.php" in before.headers["location"]
    assert page.status_code == 200 and f"Welcome to Site {source.port}" in page.text
    assert f'href="{sqlite_clone.url}/sample-page/"' in page.text and source.url not in page.text
    dashboard = await log_in(sqlite_clone.url, "admin", new_password)
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text  # capabilities under the new prefix
    assert content_hashes(sqlite_clone.docroot) == content_hashes(source.docroot)
    settings = json.loads(wp_php(sqlite_clone, "echo json_encode(get_option('wpclone_seed_settings'));"))  # type: ignore[arg-type]
    assert settings["site"]["url"] == sqlite_clone.url
    assert wp_php(sqlite_clone, "echo get_option('siteurl');") == sqlite_clone.url  # type: ignore[arg-type]
    assert "clone_odd.kind: enum('small','large') is kept as text" in result.not_copied

    # The file, outside the document root, and nothing of the copy's beside it (the drop-in itself puts an
    # .htaccess and an index.php there); the clone's drop-in loader is its own.
    assert database_folder(sqlite_clone) == [DATABASE_FILE]
    assert not list(sqlite_clone.docroot.rglob("*.sqlite"))
    assert "wpclone" in (sqlite_clone.docroot / "wp-content" / "db.php").read_text()


def _normalized(statement: str | None) -> str:
    return re.sub(r"\s+", " ", (statement or "").replace("IF NOT EXISTS ", "")).strip()


def test_tables_are_laid_out_as_the_dropin_itself_lays_them_out(
        mariadb: MariaDB, make_site: SiteMaker, tmp_path: Path) -> None:
    source = make_site()
    # Without what the drop-in cannot create (an enum) or records wrongly (decimal(10,2) as "decimal(10,").
    mariadb.sql(ODD_TABLE.format(db=source.db_name).replace("`kind` enum('small','large')", "`kind` varchar(5)")
                .replace("decimal(10,2)", "double"))
    creates = {table: mariadb.sql(f"SHOW CREATE TABLE `{source.db_name}`.`{table}`").split("\t", 1)[1]
               .replace("\\n", "\n") for table in mariadb.sql(f"SHOW TABLES FROM `{source.db_name}`").split()}
    # The drop-in's own translation, in a WordPress of its own: each CREATE TABLE through $wpdb.
    docroot, database = tmp_path / "layout", tmp_path / "layout-database"
    sqlite_wordpress(docroot, database, "http://127.0.0.1:9")
    (tmp_path / "creates.json").write_text(json.dumps(list(creates.values())))
    script = (f"define('WP_INSTALLING', true); $_SERVER['HTTP_HOST'] = '127.0.0.1'; require '{docroot}/wp-load.php';"
              f"foreach (json_decode(file_get_contents('{tmp_path}/creates.json')) as $sql) {{"
              " if ($GLOBALS['wpdb']->query($sql) === false) {"
              " fwrite(STDERR, $GLOBALS['wpdb']->last_error); exit(1); } }")
    subprocess.run(["php", "-r", script], check=True)
    theirs = sqlite3.connect(database / DATABASE_FILE)
    ours = sqlite3.connect(":memory:")
    for table, create in creates.items():
        layout = sqlite_table(create, table)
        for statement in layout.statements:
            ours.execute(statement)
        their_types = theirs.execute(f"SELECT column_or_index, mysql_type FROM {TYPES_TABLE} WHERE `table` = ? "
                                     "ORDER BY 1", (table,)).fetchall()
        assert sorted(layout.types) == their_types, table
    listed = "SELECT name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite%' AND name NOT LIKE '\\_%' ESCAPE '\\' "
    theirs_sql = {name: _normalized(sql) for name, sql in theirs.execute(listed)}
    ours_sql = {name: _normalized(sql) for name, sql in ours.execute(listed)}
    assert ours_sql == theirs_sql and len(ours_sql) > 13


async def test_a_sqlite_copy_that_fails_leaves_the_clones_database_as_it_was(
        mariadb: MariaDB, make_site: SiteMaker, sqlite_clone: SqliteClone) -> None:
    source = make_site()
    async with httpx.AsyncClient() as http:
        await copy_site(migrator(http, source), destination(http, sqlite_clone))
        before = content(sqlite_clone)
        wp_php(source, "wp_insert_post(['post_title' => 'After the first copy', 'post_status' => 'publish']);")
        # Cut in the tables; then a file copy refused (a wrong token) after the new tables were swapped in.
        async with httpx.AsyncClient(transport=CutExports(20_000)) as cutting:
            with pytest.raises(TransferError):
                await copy_site(migrator(cutting, source), destination(http, sqlite_clone))
        assert content(sqlite_clone) == before
        with pytest.raises(TransferError) as refused:
            await copy_site(migrator(http, source), destination(http, sqlite_clone, token="not-the-token-" + "x" * 20))
        page = await http.get(sqlite_clone.url + "/first-steps/")
    assert refused.value.reason == "LoginFailed"
    assert content(sqlite_clone) == before and page.status_code == 200
    assert database_folder(sqlite_clone) == [DATABASE_FILE]


async def test_what_is_made_on_a_sqlite_clone_is_restored_into_production_with_its_tables_as_they_were(
        mariadb: MariaDB, make_site: SiteMaker, sqlite_clone: SqliteClone) -> None:
    production = make_site()
    definitions = {table: mariadb.sql(f"SHOW CREATE TABLE `{production.db_name}`.`{table}`")
                   for table in ("wp_posts", "wp_options", "wp_term_relationships")}
    async with httpx.AsyncClient() as http:
        await copy_site(migrator(http, production), destination(http, sqlite_clone))
        # On the clone, through the SQLite drop-in: a post, an option, and a table a plugin makes.
        wp_php(sqlite_clone, """
            wp_insert_post(['post_title' => 'Written on the SQLite clone', 'post_status' => 'publish',
                            'post_content' => '<a href="' . home_url('/about/') . '">about</a>']);
            update_option('made_on_the_clone', ['where' => home_url()]);
            global $wpdb;
            $wpdb->query("CREATE TABLE {$wpdb->prefix}notes (id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
                note varchar(255) NOT NULL DEFAULT '', PRIMARY KEY (id), KEY note (note))");
            $wpdb->insert($wpdb->prefix . 'notes', ['note' => 'Ünïcödé ✓']);""")  # type: ignore[arg-type]
        clone = SqliteSite(http, sqlite_clone.url, token=sqlite_clone.token, role="clone",
                           database=SqliteTarget(sqlite_clone.database, sqlite_clone.table_prefix))
        result = await copy_site(clone, migrator(http, production), backup=True)
        page = await http.get(production.url + "/written-on-the-sqlite-clone/")

    assert result.backup is not None and result.tables == 13  # production's 12, and the clone's new one
    assert page.status_code == 200 and f'href="{production.url}/about/"' in page.text
    assert sqlite_clone.url not in page.text
    assert json.loads(wp_php(production, "echo json_encode(get_option('made_on_the_clone'));")) == {
        "where": production.url}
    assert wp_php(production, "echo get_option('siteurl');") == production.url
    assert mariadb.sql(f"SELECT note FROM `{production.db_name}`.wp_notes") == "Ünïcödé ✓"
    assert "KEY `note` (`note`(191))" in mariadb.sql(f"SHOW CREATE TABLE `{production.db_name}`.wp_notes")
    for table, before in definitions.items():  # the tables it came with: defined as production defined them
        after = mariadb.sql(f"SHOW CREATE TABLE `{production.db_name}`.`{table}`")
        assert re.sub(r" AUTO_INCREMENT=[0-9]+", "", after) == re.sub(r" AUTO_INCREMENT=[0-9]+", "", before)
