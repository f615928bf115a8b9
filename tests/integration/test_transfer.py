"""Copying real WordPress sites over HTTP into real MariaDB: what arrives, what stays, what a failure leaves."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from testenv.mariadb import MariaDB
from testenv.wordpress import ADMIN_PASSWORD, WordPressSite
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import (
    CutExports,
    EmptyClone,
    SiteMaker,
    Timeline,
    content_hashes,
    leftovers,
    log_in,
    restart,
    snapshot,
    wp_php,
)
from wpclone_engine import frames
from wpclone_engine.database_import import DatabaseImport, DatabaseTarget
from wpclone_engine.rewrite import UrlRewrite
from wpclone_engine.site_move import AdminPassword
from wpclone_engine.transfer import DatabaseDestination, Include, Progress, TransferError, copy_site
from wpclone_engine.wordpress import Migrator

pytestmark = pytest.mark.integration

# The fixtures of transfer_fixtures, made visible to pytest in this module.
make_site, source_site, empty_clone = (transfer_fixtures.make_site, transfer_fixtures.source_site,
                                       transfer_fixtures.empty_clone)

CONTENT_TABLES = ("posts", "postmeta", "comments", "commentmeta", "terms", "termmeta", "term_taxonomy",
                  "term_relationships", "users", "usermeta", "links")


def migrator(http: httpx.AsyncClient, site: WordPressSite, role: str) -> Migrator:
    return Migrator(http, site.url, login=site.admin_user, password=site.admin_password, role=role,
                    retry_delays=(0.2, 0.2))


WRONG_TOKEN = "not-the-token-" + "x" * 20


def into_clone(http: httpx.AsyncClient, mariadb: MariaDB, clone: EmptyClone, token: str | None = None,
               ) -> DatabaseDestination:
    """An empty clone as the operator copies into it: its database, and its migrator for its files (with
    `token`, when given, instead of its own)."""
    return DatabaseDestination(
        DatabaseTarget(mariadb.host, mariadb.port, clone.db_user, clone.db_password, clone.db_name, clone.table_prefix),
        clone.url, files=Migrator(http, clone.url, token=token or clone.token, role="clone"))


def rows(mariadb: MariaDB, site: WordPressSite, table: str, where: str = "") -> str:
    return mariadb.sql(f"SELECT * FROM `{site.db_name}`.`wp_{table}` {where} ORDER BY 1, 2")


def moved(text: str, source: WordPressSite, target: WordPressSite) -> str:
    # Both URLs are http://127.0.0.1:<5-digit port>: a plain replace keeps serialized lengths right.
    assert len(source.url) == len(target.url)
    return text.replace(source.url, target.url)


class ChecksumsHeldForFiles(Timeline):
    """A timeline that holds the source's checksums (its info with them) until its files export was asked,
    for at most 30 s: a test site computes them too fast to see what waits on them."""

    def __init__(self, source_port: int) -> None:
        super().__init__()
        self._port = source_port
        self._files_asked = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.port == self._port and request.url.path.endswith("/export/files"):
            self._files_asked.set()
        if (request.url.port == self._port and request.url.path.endswith("/info")
                and json.loads(request.content).get("checksums")):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._files_asked.wait(), 30)
        return await super().handle_async_request(request)


async def test_copy_brings_the_source_to_the_destination_at_the_destination_url(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    wp_php(target, "update_option('blog_public', '0');")
    kept = rows(mariadb, target, "options", "WHERE option_name IN ('siteurl', 'home', 'blog_public')")
    seen: list[Progress] = []
    timeline = ChecksumsHeldForFiles(source_site.port)
    async with httpx.AsyncClient(transport=timeline) as http:
        result = await copy_site(migrator(http, source_site, "source"), migrator(http, target, "target"),
                                 progress=seen.append)
        for table in CONTENT_TABLES:
            assert rows(mariadb, target, table) == moved(rows(mariadb, source_site, table), source_site, target)
        others = "WHERE option_name NOT IN ('siteurl', 'home', 'blog_public')"
        assert rows(mariadb, target, "options", others) == moved(rows(mariadb, source_site, "options", others),
                                                                  source_site, target)
        assert rows(mariadb, target, "options", "WHERE option_name IN ('siteurl', 'home', 'blog_public')") == kept
        page = await http.get(target.url + "/first-steps/")

    assert content_hashes(target.docroot) == content_hashes(source_site.docroot)
    assert not (target.docroot / "wp-content" / "uploads" / "outside").exists()  # a link is never followed
    settings = json.loads(wp_php(target, "echo json_encode(get_option('wpclone_seed_settings'));"))
    assert settings["site"] == {"url": target.url, "links": [f"{target.url}/contact/", f"{target.url}/sample-page/"]}
    assert settings["logo"]["url"].startswith(target.url + "/wp-content/uploads/")
    assert wp_php(target, "echo get_class(get_option('wpclone_seed_settings')['logo']);") == "stdClass"
    assert page.status_code == 200
    assert f"Welcome to Site {source_site.port}" in page.text and f'href="{target.url}/sample-page/"' in page.text
    assert source_site.url not in page.text

    # The files set off while the source computed its checksums; its tables' export waited for them.
    checksummed = timeline.last(f"done {source_site.port} info")
    assert timeline.first(f"asked {source_site.port} export/files") < checksummed
    assert checksummed < timeline.first(f"asked {source_site.port} export/database")
    assert (result.tables, result.unparseable_values, result.old_urls_left) == (12, 0, None)  # into a migrator
    assert result.rows == sum(int(mariadb.sql(f"SELECT COUNT(*) FROM `{source_site.db_name}`.`{table}`"))
                              for table in result.source_checksums)
    assert result.rewritten_values > 10 and result.files > 50 and result.backup is None
    assert {progress.phase for progress in seen} == {"database", "files", "commit"}
    assert seen[-1].rows == result.rows
    assert leftovers(mariadb, target) == []


async def test_a_clone_made_from_an_empty_database_serves_the_site_and_admits_its_new_password(
        mariadb: MariaDB, source_site: WordPressSite, empty_clone: EmptyClone) -> None:
    new_password = secrets.token_urlsafe(16)
    timeline = ChecksumsHeldForFiles(source_site.port)
    async with httpx.AsyncClient(transport=timeline) as http:
        before = await http.get(empty_clone.url + "/")
        destination = into_clone(http, mariadb, empty_clone)
        result = await copy_site(migrator(http, source_site, "source"), destination,
                                 admin_password=AdminPassword("admin", new_password))
        page = await http.get(empty_clone.url + "/first-steps/")

    assert before.status_code == 302 and "install.php" in before.headers["location"]
    # The files went to the clone while its tables were copied (its WordPress booted on stand-in options),
    # their import begun before any table was read, and committed once the tables were in.
    clone, source = empty_clone.url.rsplit(":", 1)[1], source_site.port
    assert timeline.first(f"done {clone} import/begin") < timeline.first(f"asked {source} export/database")
    # ...and set off while the source computed its checksums, which its tables' export waited for.
    checksummed = timeline.last(f"done {source} info")
    assert timeline.first(f"asked {source} export/files") < checksummed
    assert checksummed < timeline.first(f"asked {source} export/database")
    assert timeline.first(f"asked {source} export/files") < timeline.last(f"done {source} export/database")
    assert timeline.first(f"asked {clone} import/files") < timeline.last(f"done {source} export/database")
    assert timeline.last(f"done {source} export/database") < timeline.first(f"asked {clone} import/commit")
    assert page.status_code == 200 and f"Welcome to Site {source_site.port}" in page.text
    assert f'href="{empty_clone.url}/sample-page/"' in page.text
    dashboard = await log_in(empty_clone.url, "admin", new_password)
    assert dashboard.status_code == 200 and "Dashboard" in dashboard.text  # the capabilities key follows the prefix
    refused = await log_in(empty_clone.url, "admin", ADMIN_PASSWORD)
    assert "Dashboard" not in refused.text
    assert content_hashes(empty_clone.docroot) == content_hashes(source_site.docroot)
    tables = mariadb.sql(f"SHOW TABLES FROM `{empty_clone.db_name}`").split()
    assert len(tables) == result.tables == 12 and all(table.startswith("clone_") for table in tables)
    assert result.old_urls_left == 0


async def test_no_cell_of_a_clone_holds_the_sources_url_in_any_form_even_in_corrupt_serialized_data(
        mariadb: MariaDB, make_site: SiteMaker, empty_clone: EmptyClone) -> None:
    source = make_site()
    escaped = source.url.replace("/", "\\/")
    # As a plugin that wrote a broken length would have left it (update_option would serialize it again).
    mariadb.sql(f"INSERT INTO `{source.db_name}`.wp_options (option_name, option_value, autoload) VALUES"
                f" ('wpclone_corrupt', 'a:1:{{i:0;s:999:\"{source.url}/x\";}}', 'no')")
    wp_php(source, f"""
        update_option('wpclone_json', '{{"home":"{escaped}\\/shop"}}');
        update_option('wpclone_relative', '<img src="//{source.url.split("//")[1]}/a.png">');""")
    async with httpx.AsyncClient() as http:
        destination = into_clone(http, mariadb, empty_clone)
        result = await copy_site(migrator(http, source, "source"), destination, include=Include(
            uploads=False, themes=False, plugins=False))

    assert (result.old_urls_left, result.unparseable_values) == (0, 1)
    # Counted apart from the engine: the source's host and port in no cell of any table.
    host = source.url.split("//")[1]
    for table in mariadb.sql(f"SHOW TABLES FROM `{empty_clone.db_name}`").split():
        dump = mariadb.sql(f"SELECT * FROM `{empty_clone.db_name}`.`{table}`")
        assert host not in dump, table
    corrupt = mariadb.sql(f"SELECT option_value FROM `{empty_clone.db_name}`.clone_options"
                          " WHERE option_name = 'wpclone_corrupt'")
    assert corrupt == f'a:1:{{i:0;s:999:"{empty_clone.url}/x";}}'

    # What the count counts, when something does remain: the forms the rewrite replaces, and only those.
    mariadb.sql(f"INSERT INTO `{empty_clone.db_name}`.clone_options (option_name, option_value, autoload) VALUES"
                f" ('left_plain', '{source.url}/a {source.url}/b', 'no'),"
                f" ('left_escaped', '{escaped.replace(chr(92), chr(92) * 2)}', 'no'),"
                f" ('not_the_site', '{source.url}0/x http://{host}.example/', 'no')")
    database = await DatabaseImport.open(destination.database)
    try:
        rewrite = UrlRewrite(source.url, empty_clone.url)
        assert await database.count_occurrences(rewrite.occurrences, rewrite.needle,
                                                [f"{empty_clone.table_prefix}options"]) == 3
    finally:
        database.close()


WHOLE_CONTENT = {"languages/fr_FR.mo": b"translations", "languages/plugins/shop-fr_FR.l10n.php": b"<?php return [];",
                 "fonts/inter.woff2": b"font", "my-agency/settings.json": b"{}", "index.php": b"<?php // Silence"}
LEFT_BEHIND = {"cache/page.html": b"cached", "object-cache.php": b"<?php // redis", "advanced-cache.php": b"<?php",
               ".htaccess": b"Deny from all", "upgrade/core.zip": b"zip", "updraft/backup.zip": b"zip",
               "debug.log": b"log"}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.mark.parametrize(("include", "arrives", "stays_behind", "dropins_left"), [
    (Include(content=True), WHOLE_CONTENT, LEFT_BEHIND, ("advanced-cache.php", "object-cache.php")),
    (Include(content=True, dropins=True, exclude=("content/fonts", "content/my-*")),
     {**{k: v for k, v in WHOLE_CONTENT.items() if k.startswith(("languages", "index"))},
      "object-cache.php": b"<?php // redis", "advanced-cache.php": b"<?php"},
     {k: v for k, v in {**WHOLE_CONTENT, **LEFT_BEHIND}.items()
      if k.startswith(("fonts", "my-agency", "cache", ".htaccess", "upgrade", "updraft", "debug"))}, ()),
], ids=["by-default", "drop-ins-and-exclusions"])
async def test_a_clone_gets_the_whole_of_wp_content_but_caches_backups_config_and_drop_ins_unless_asked(
        mariadb: MariaDB, make_site: SiteMaker, empty_clone: EmptyClone, include: Include,
        arrives: dict[str, bytes], stays_behind: dict[str, bytes], dropins_left: tuple[str, ...]) -> None:
    source = make_site()
    write_files(source.docroot / "wp-content", {**WHOLE_CONTENT, **LEFT_BEHIND})
    async with httpx.AsyncClient() as http:
        destination = into_clone(http, mariadb, empty_clone)
        result = await copy_site(migrator(http, source, "source"), destination, include=include)
        home = await http.get(empty_clone.url + "/")

    content = empty_clone.docroot / "wp-content"
    assert {name: (content / name).read_bytes() for name in arrives if (content / name).is_file()} == arrives
    assert [name for name in stays_behind if (content / name).exists()] == []
    assert result.dropins_left == dropins_left
    assert content_hashes(empty_clone.docroot, "uploads") == content_hashes(source.docroot, "uploads")
    assert content_hashes(empty_clone.docroot, "themes") == content_hashes(source.docroot, "themes")
    assert home.status_code == 200 and not list(content.glob(".wpclone-*"))


def add_a_shop(mariadb: MariaDB, site: WordPressSite, total: int = 10) -> None:
    """Two tables of a shop plugin, items referring to their order by a named foreign key."""
    mariadb.sql(f"""USE `{site.db_name}`;
        CREATE TABLE wp_shop_orders (id INT PRIMARY KEY, total INT) ENGINE=InnoDB;
        CREATE TABLE wp_shop_items (id INT PRIMARY KEY, order_id INT, KEY (order_id),
            CONSTRAINT fk_order FOREIGN KEY (order_id) REFERENCES wp_shop_orders (id) ON DELETE CASCADE) ENGINE=InnoDB;
        INSERT INTO wp_shop_orders VALUES (1, {total}), (2, 20);
        INSERT INTO wp_shop_items VALUES (1, 1), (2, 1), (3, 2);""")


def foreign_keys(mariadb: MariaDB, database: str) -> set[tuple[str, ...]]:
    """(table, constraint, the table it refers to) of each foreign key in `database`."""
    found = mariadb.sql("SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME FROM information_schema."
                        f"REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = '{database}'")
    return {tuple(line.split("\t")) for line in found.splitlines()}


async def test_a_clones_tables_keep_their_foreign_keys_to_one_another(
        mariadb: MariaDB, make_site: SiteMaker, empty_clone: EmptyClone) -> None:
    source = make_site()
    add_a_shop(mariadb, source)
    async with httpx.AsyncClient() as http:
        destination = into_clone(http, mariadb, empty_clone)
        await copy_site(migrator(http, source, "source"), destination,
                        include=Include(uploads=False, themes=False, plugins=False))

    keys = mariadb.sql("SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME FROM"
                       " information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = "
                       f"'{empty_clone.db_name}'")
    assert keys == "clone_shop_items\tfk_order\tclone_shop_orders"
    assert mariadb.sql(f"SELECT id, order_id FROM `{empty_clone.db_name}`.clone_shop_items ORDER BY id") == \
        "1\t1\n2\t1\n3\t2"
    mariadb.sql(f"DELETE FROM `{empty_clone.db_name}`.clone_shop_orders WHERE id = 1")  # the key works
    assert mariadb.sql(f"SELECT id FROM `{empty_clone.db_name}`.clone_shop_items") == "3"
    assert leftovers(mariadb, source) == []


async def test_views_triggers_and_routines_are_made_again_in_a_clone_with_its_login_as_their_definer(
        mariadb: MariaDB, make_site: SiteMaker, empty_clone: EmptyClone) -> None:
    source = make_site()
    # Routines as a plugin makes them, through the site's own login (only their definer may read them).
    site_login = f"'{source.db_user}'@'127.0.0.1'"
    mariadb.sql(f"""USE `{source.db_name}`;
        CREATE TABLE wp_post_count (n INT NOT NULL) ENGINE=InnoDB;
        INSERT INTO wp_post_count VALUES (0);
        CREATE VIEW wp_published AS SELECT ID, post_title FROM wp_posts WHERE post_status = 'publish';
        CREATE VIEW wp_a_titles AS SELECT post_title FROM wp_published;
        CREATE TRIGGER wp_count_posts AFTER INSERT ON wp_posts FOR EACH ROW UPDATE wp_post_count SET n = n + 1;
        DELIMITER //
        CREATE DEFINER = {site_login} PROCEDURE wp_cleanup()
            BEGIN DELETE FROM wp_post_count WHERE n < 0; SELECT 1; END//
        DELIMITER ;
        CREATE DEFINER = {site_login} FUNCTION wp_double(x INT) RETURNS INT DETERMINISTIC RETURN 2 * x;
        CREATE FUNCTION wp_root_only() RETURNS INT DETERMINISTIC RETURN 1;
        CREATE EVENT wp_nightly ON SCHEDULE EVERY 1 DAY DO UPDATE wp_post_count SET n = 0;""")
    async with httpx.AsyncClient() as http:
        destination = into_clone(http, mariadb, empty_clone)
        result = await copy_site(migrator(http, source, "source"), destination,
                                 include=Include(uploads=False, themes=False, plugins=False))

    assert result.not_copied == (  # a clone runs no cron, and no events either
        "event wp_nightly", "function wp_root_only (its definition is not readable by this site's database login)")
    clone, definer = empty_clone.db_name, f"{empty_clone.db_user}@127.0.0.1"
    made = mariadb.sql(f"""SELECT TABLE_NAME, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{clone}'
        UNION ALL SELECT TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{clone}'
        UNION ALL SELECT ROUTINE_NAME, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{clone}'""")
    # Under the clone's prefix (clone_), as its tables are: names, and the tables they name.
    assert sorted(made.splitlines()) == sorted(f"{name}\t{definer}" for name in (
        "clone_a_titles", "clone_published", "clone_count_posts", "clone_cleanup", "clone_double")), made
    assert mariadb.sql(f"SELECT `{clone}`.clone_double(21)") == "42"
    published = mariadb.sql(f"SELECT COUNT(*) FROM `{source.db_name}`.wp_posts WHERE post_status = 'publish'")
    assert mariadb.sql(f"SELECT COUNT(*) FROM `{clone}`.clone_a_titles") == published != "0"
    mariadb.sql(f"INSERT INTO `{clone}`.clone_posts (post_title, post_content, post_excerpt, to_ping, pinged, "
                "post_content_filtered) VALUES ('New', '', '', '', '', '')")
    assert mariadb.sql(f"SELECT n FROM `{clone}`.clone_post_count") == "1"  # the trigger runs in the clone
    assert result.tables == 13  # the views are no tables


async def test_a_mysql_8_table_lands_in_a_mariadb_that_lacks_its_collations(
        mariadb: MariaDB, empty_clone: EmptyClone) -> None:
    create = ("CREATE TABLE `wp_notes` (\n  `id` int NOT NULL,\n  `note` text COLLATE utf8mb4_0900_ai_ci,\n"
              "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci")
    known = mariadb.sql("SELECT COLLATION_NAME FROM information_schema.COLLATIONS").split()
    # Debian's MariaDB 10.11 lacks it (11.4 and later know it, and keep it).
    expected = "utf8mb4_0900_ai_ci" if "utf8mb4_0900_ai_ci" in known else "utf8mb4_unicode_520_ci"
    database = await DatabaseImport.open(DatabaseTarget(mariadb.host, mariadb.port, empty_clone.db_user,
                                                        empty_clone.db_password, empty_clone.db_name, "wp_"))
    try:
        await database.begin_table("wp_notes", create, ["id", "note"])
        await database.end_table("wp_notes", 0)
        await database.swap(replace_all=False)
        await database.finish()
    finally:
        database.close()
    assert mariadb.sql(f"SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA ="
                       f" '{empty_clone.db_name}' AND TABLE_NAME = 'wp_notes'") == expected


async def test_every_byte_reaches_a_clones_database_as_it_was_sent(mariadb: MariaDB, empty_clone: EmptyClone) -> None:
    create = ("CREATE TABLE `wp_values` (\n  `id` int NOT NULL,\n  `blob` longblob,\n  `text` longtext,\n"
              "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    rows = [[b"1", bytes(range(256)) * 3, "it's \\ \"quoted\"\r\n\x1a — ünïcode".encode()],
            [b"2", b"", b'<p class="plain">no quote, no backslash\n</p>'],
            [b"3", None, b"\0'\\"]]
    database = await DatabaseImport.open(DatabaseTarget(mariadb.host, mariadb.port, empty_clone.db_user,
                                                        empty_clone.db_password, empty_clone.db_name, "wp_"))
    try:
        await database.begin_table("wp_values", create, ["id", "blob", "text"])
        await database.rows(b"".join(frames.encode_record(row) for row in rows))
        await database.end_table("wp_values", len(rows))
        await database.swap(replace_all=False)
        await database.finish()
    finally:
        database.close()
    stored = mariadb.sql(f"SELECT id, COALESCE(HEX(`blob`), 'NULL'), HEX(`text`) FROM `{empty_clone.db_name}`.wp_values"
                         " ORDER BY id")
    assert stored.splitlines() == ["\t".join([row[0].decode(), "NULL" if row[1] is None else row[1].hex().upper(),
                                              row[2].hex().upper()]) for row in rows]


async def test_a_backup_taken_by_a_copy_rolls_the_destination_back(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    before = snapshot(mariadb, target)
    async with httpx.AsyncClient() as http:
        destination = migrator(http, target, "target")
        result = await copy_site(migrator(http, source_site, "source"), destination, backup=True)
        backups = (await destination.info()).backups
        assert snapshot(mariadb, target) != before
        await destination.rollback(result.backup or "")
        after = await destination.info()

    assert [backup["id"] for backup in backups] == [result.backup]
    assert snapshot(mariadb, target) == before
    assert after.backups == [] and leftovers(mariadb, target) == []


async def test_a_copy_into_a_site_brings_its_foreign_keys_and_a_rollback_puts_the_sites_own_back(
        mariadb: MariaDB, make_site: SiteMaker) -> None:
    """A restore: the site's replaced tables keep their keys in the backup; the tables put in their place
    arrive with the source's keys (named by the server), referring to each other under their live names."""
    source, target = make_site(), make_site()
    add_a_shop(mariadb, source)
    add_a_shop(mariadb, target, total=99)
    before = foreign_keys(mariadb, target.db_name)
    async with httpx.AsyncClient() as http:
        destination = migrator(http, target, "target")
        result = await copy_site(migrator(http, source, "source"), destination, backup=True,
                                 include=Include(uploads=False, themes=False, plugins=False))
        restored = foreign_keys(mariadb, target.db_name)
        assert ("wp_shop_items", "wp_shop_items_ibfk_1", "wp_shop_orders") in restored, restored
        (kept,) = restored - {("wp_shop_items", "wp_shop_items_ibfk_1", "wp_shop_orders")}
        assert kept[0].startswith("wpcb_") and kept[1] == "fk_order" and kept[2].startswith("wpcb_"), restored
        assert mariadb.sql(f"SELECT total FROM `{target.db_name}`.wp_shop_orders WHERE id = 1") == "10"
        mariadb.sql(f"DELETE FROM `{target.db_name}`.wp_shop_orders WHERE id = 1")  # the key works on the site
        assert mariadb.sql(f"SELECT id FROM `{target.db_name}`.wp_shop_items") == "3"
        await destination.rollback(result.backup or "")

    assert foreign_keys(mariadb, target.db_name) == before == {("wp_shop_items", "fk_order", "wp_shop_orders")}
    assert mariadb.sql(f"SELECT total FROM `{target.db_name}`.wp_shop_orders WHERE id = 1") == "99"
    assert leftovers(mariadb, target) == []


async def test_a_copy_of_some_tables_and_the_uploads_leaves_the_rest_of_the_destination_alone(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    before = snapshot(mariadb, target)
    include = Include(tables=("wp_posts", "wp_postmeta"), uploads=True, themes=False, plugins=False)
    async with httpx.AsyncClient() as http:
        result = await copy_site(migrator(http, source_site, "source"), migrator(http, target, "target"),
                                 include=include)

    after = snapshot(mariadb, target)
    changed = {name for name in before.tables if before.tables[name] != after.tables.get(name)}
    assert changed == {"wp_posts", "wp_postmeta"} and result.tables == 2
    assert rows(mariadb, target, "posts") == moved(rows(mariadb, source_site, "posts"), source_site, target)
    assert content_hashes(target.docroot) == content_hashes(source_site.docroot)
    assert {path: digest for path, digest in after.files.items() if not path.startswith("uploads")} == {
        path: digest for path, digest in before.files.items() if not path.startswith("uploads")}


# --- failures leave the destination exactly as it was ------------------------------------------------

Interruption = Callable[[httpx.AsyncClient, WordPressSite, WordPressSite], Awaitable[None]]


async def _database_stream_cut(http: httpx.AsyncClient, source: WordPressSite, target: WordPressSite) -> None:
    async with httpx.AsyncClient(transport=CutExports(20_000)) as cutting:
        await copy_site(migrator(cutting, source, "source"), migrator(http, target, "target"))


async def _files_stream_cut(http: httpx.AsyncClient, source: WordPressSite, target: WordPressSite) -> None:
    # Every export cut: the first and its EXPORT_RESUMES goings-on carry less than the site's files.
    async with httpx.AsyncClient(transport=CutExports(100_000)) as cutting:
        await copy_site(migrator(cutting, source, "source"), migrator(http, target, "target"),
                        include=Include(database=False))


async def _destination_killed(http: httpx.AsyncClient, source: WordPressSite, target: WordPressSite) -> None:
    def kill_once_files_flow(progress: Progress) -> None:
        if progress.phase == "files" and target.server.alive():
            target.stop()
    try:
        await copy_site(migrator(http, source, "source"), migrator(http, target, "target"),
                        progress=kill_once_files_flow)
    finally:
        restart(target)


async def _commit_fails(http: httpx.AsyncClient, source: WordPressSite, target: WordPressSite) -> None:
    """The RENAME fails after the folders were swapped: the swap must be undone."""
    class _Sabotaged(Migrator):
        async def commit_import(self, job: str, *, chunks: dict[str, int], backup: bool) -> dict[str, object]:
            wp_php(target, f"global $wpdb; $wpdb->query('DROP TABLE wpci_{job}_3');")
            return await super().commit_import(job, chunks=chunks, backup=backup)
    await copy_site(migrator(http, source, "source"),
                    _Sabotaged(http, target.url, login=target.admin_user, password=target.admin_password,
                               role="target"))


@pytest.mark.parametrize("interrupt", [_database_stream_cut, _files_stream_cut, _destination_killed, _commit_fails],
                         ids=["database-stream-cut", "files-stream-cut", "destination-killed", "commit-fails"])
async def test_an_interrupted_copy_leaves_the_destination_exactly_as_it_was(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker, interrupt: Interruption) -> None:
    target = make_site()
    before = snapshot(mariadb, target)
    async with httpx.AsyncClient() as http:
        with pytest.raises(TransferError) as failure:
            await interrupt(http, source_site, target)
        assert snapshot(mariadb, target).tables == before.tables  # live tables untouched...
        await migrator(http, target, "target").abort_import()  # ...and a killed site's staging is swept
    assert snapshot(mariadb, target) == before
    assert leftovers(mariadb, target) == []
    assert ADMIN_PASSWORD not in str(failure.value)


async def test_a_cut_stream_is_reported_as_such(source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    async with httpx.AsyncClient() as http:
        with pytest.raises(TransferError, match="stream ended .* connection lost or exporter killed") as failure:
            await _database_stream_cut(http, source_site, target)
    assert failure.value.reason == "BadStream"


async def test_a_database_export_that_breaks_off_goes_on_where_it_stopped(
        mariadb: MariaDB, make_site: SiteMaker) -> None:
    source, target = make_site(), make_site()
    # wp_posts about 2 MiB: the stream breaks off in its second slice, after its first was taken whole.
    mariadb.sql(f"""USE `{source.db_name}`; INSERT INTO wp_posts (post_author, post_date, post_date_gmt,
        post_content, post_title, post_excerpt, post_status, post_name, to_ping, pinged, post_modified,
        post_modified_gmt, post_content_filtered, post_type, guid) SELECT 1, NOW(), UTC_TIMESTAMP(),
        CONCAT('<p>Bulk ', seq, ' at <a href="{source.url}/bulk-', seq, '/">its page</a></p>', REPEAT('x', 600)),
        CONCAT('Bulk ', seq), '', 'publish', CONCAT('bulk-', seq), '', '', NOW(), UTC_TIMESTAMP(), '', 'post', ''
        FROM seq_1_to_3000;""")
    cutting = CutExports(1_500_000, times=1)
    async with httpx.AsyncClient(transport=cutting) as through_cut, httpx.AsyncClient() as http:
        source_rows = sum(table.rows for table in (await migrator(http, source, "source").info()).tables.values())
        result = await copy_site(migrator(through_cut, source, "source"), migrator(http, target, "target"),
                                 include=Include(uploads=False, themes=False, plugins=False))
    first, again = cutting.database_exports
    assert "resume_from" not in first and again["resume_from"] == "wp_posts"
    assert int(base64.b64decode(again["resume_after"][0])) > 1000  # after the first slice's last post
    for table in CONTENT_TABLES:
        assert rows(mariadb, target, table) == moved(rows(mariadb, source, table), source, target)
    assert result.rows == source_rows  # each row counted once


async def test_a_files_export_that_breaks_off_goes_on_in_the_file_it_was_in(make_site: SiteMaker) -> None:
    source, target = make_site(), make_site()
    # The first upload the walk meets, 3 MiB: the stream breaks off in its middle.
    (source.docroot / "wp-content" / "uploads" / "2000").mkdir(parents=True)
    (source.docroot / "wp-content" / "uploads" / "2000" / "big.bin").write_bytes(secrets.token_bytes(3 * 2**20))
    cutting = CutExports(1_500_000, times=1)
    async with httpx.AsyncClient(transport=cutting) as through_cut, httpx.AsyncClient() as http:
        result = await copy_site(migrator(through_cut, source, "source"), migrator(http, target, "target"),
                                 include=Include(database=False))
    first, again = cutting.files_exports
    assert "resume_file" not in first
    assert again["resume_file"] == "uploads/2000/big.bin" and 1_000_000 < again["resume_offset"] < 1_500_000
    for root in ("uploads", "themes", "plugins"):
        assert content_hashes(target.docroot, root) == content_hashes(source.docroot, root), root
    assert result.files == sum(len(content_hashes(source.docroot, root)) for root in ("uploads", "themes", "plugins"))


async def test_a_clone_whose_file_copy_fails_gets_its_old_database_back(
        mariadb: MariaDB, source_site: WordPressSite, empty_clone: EmptyClone) -> None:
    # What the clone held before the copy (a revert that dropped everything would lose it).
    options = f"`{empty_clone.db_name}`.`{empty_clone.table_prefix}options`"
    mariadb.sql(f"CREATE TABLE {options} (option_id BIGINT UNSIGNED PRIMARY KEY, option_name VARCHAR(191), "
                f"option_value LONGTEXT); INSERT INTO {options} VALUES (1, 'blogname', 'Before the copy')")
    before = mariadb.sql(f"CHECKSUM TABLE {options} EXTENDED")
    async with httpx.AsyncClient() as http:
        destination = into_clone(http, mariadb, empty_clone, WRONG_TOKEN)
        with pytest.raises(TransferError) as failure:
            await copy_site(migrator(http, source_site, "source"), destination)
    assert failure.value.reason == "LoginFailed" and "token@" in str(failure.value)
    assert mariadb.sql(f"SHOW TABLES FROM `{empty_clone.db_name}`") == f"{empty_clone.table_prefix}options"
    assert mariadb.sql(f"CHECKSUM TABLE {options} EXTENDED") == before
    assert mariadb.sql(f"SELECT option_value FROM {options}") == "Before the copy"


async def test_a_clone_whose_files_are_refused_while_its_tables_are_copied_is_left_without_tables(
        mariadb: MariaDB, source_site: WordPressSite, empty_clone: EmptyClone) -> None:
    async with httpx.AsyncClient() as http:
        destination = into_clone(http, mariadb, empty_clone, WRONG_TOKEN)
        with pytest.raises(TransferError) as failure:
            await copy_site(migrator(http, source_site, "source"), destination)
        page = await http.get(empty_clone.url + "/")
    # Refused by the clone's WordPress booted on the stand-in options, which are gone again with the rest.
    assert failure.value.reason == "LoginFailed" and "token@" in str(failure.value)
    assert mariadb.sql(f"SHOW TABLES FROM `{empty_clone.db_name}`") == ""
    assert page.status_code == 302 and "install.php" in page.headers["location"]


async def test_an_unknown_admin_is_refused_before_anything_is_swapped_in(
        mariadb: MariaDB, source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    before = snapshot(mariadb, target)
    async with httpx.AsyncClient() as http:
        with pytest.raises(TransferError, match="no user 'nobody'"):
            await copy_site(migrator(http, source_site, "source"), migrator(http, target, "target"),
                            admin_password=AdminPassword("nobody", "secret-password"))
    assert snapshot(mariadb, target) == before and leftovers(mariadb, target) == []


# --- big tables: chunked, bounded memory ---------------------------------------------------------

def _peak_rss_kib(site: WordPressSite) -> int:
    """The highest peak RSS (VmHWM) among the processes serving `site`."""
    import os

    peaks = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != site.server.process.pid:
                continue
            status = open(f"/proc/{pid}/status").read()  # noqa: SIM115
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        peaks += [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")]
    return max(peaks)


async def test_a_table_larger_than_memory_bounds_streams_through_in_chunks(
        mariadb: MariaDB, make_site: SiteMaker) -> None:
    import tracemalloc

    source, target = make_site(), make_site()
    # 90 000 rows, ~140 MiB: far more than any bound below.
    mariadb.sql(f"INSERT INTO `{source.db_name}`.wp_postmeta (post_id, meta_key, meta_value) "
                f"SELECT 1, CONCAT('bulk_', seq), CONCAT('{source.url}/x ', REPEAT(MD5(seq), 50)) "
                "FROM mysql.seq_1_to_90000")
    restart(source)  # fresh workers: their peak RSS is this test's, above what serving a request takes
    restart(target)
    async with httpx.AsyncClient() as http:
        for site in (source, target):
            await migrator(http, site, "site").info()
    baseline = {site.url: _peak_rss_kib(site) for site in (source, target)}
    tracemalloc.start()
    try:
        async with httpx.AsyncClient() as http:
            result = await copy_site(migrator(http, source, "source"), migrator(http, target, "target"),
                                     include=Include(tables=("wp_postmeta",), uploads=False, themes=False,
                                                     plugins=False))
        python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    table_bytes = int(mariadb.sql(f"SELECT SUM(LENGTH(meta_value)) FROM `{target.db_name}`.wp_postmeta"))
    assert table_bytes > 135 * 2**20
    assert result.rows > 90_000 and result.rewritten_values >= 90_000
    assert mariadb.sql(f"SELECT COUNT(*) FROM `{target.db_name}`.wp_postmeta WHERE meta_value LIKE "
                       f"'{target.url}/x %'") == "90000"
    # Bounded: the engine and each PHP process held far less than the table they moved (a fixed MiB
    # ceiling would be a figure of this machine, not a property of the engine).
    assert python_peak < table_bytes / 2, f"the engine held {python_peak / 2**20:.0f} MiB"
    for site in (source, target):
        grew = (_peak_rss_kib(site) - baseline[site.url]) * 1024
        assert grew < table_bytes / 2, f"{site.url}'s PHP grew by {grew / 2**20:.0f} MiB"


async def test_progress_arrives_with_growing_counts(source_site: WordPressSite, make_site: SiteMaker) -> None:
    target = make_site()
    seen: list[Progress] = []

    async def record(progress: Progress) -> None:
        seen.append(progress)
    async with httpx.AsyncClient() as http:
        result = await copy_site(migrator(http, source_site, "source"), migrator(http, target, "target"),
                                 progress=record)
    for count in ("bytes", "rows", "files"):
        values = [getattr(progress, count) for progress in seen]
        assert values == sorted(values), f"{count} went back: {values}"
        # (files may arrive in one chunk of this small site: counted when its chunk is sent)
        assert len(set(values)) >= (2 if count == "files" else 3), f"{count} was reported only as {sorted(set(values))}"
    assert any(progress.table == "wp_posts" for progress in seen)
    # It ends at the true totals: what the copy reports, and what the source holds.
    assert (seen[-1].rows, seen[-1].files, seen[-1].bytes) == (result.rows, result.files, result.bytes)
    assert result.files == sum(len(content_hashes(source_site.docroot, root)) for root in ("uploads", "themes",
                                                                                           "plugins")) > 50
