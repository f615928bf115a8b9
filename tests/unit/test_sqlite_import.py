"""A SQLite clone's tables (pure layout, and the import into a file of a temporary folder)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from wpclone_engine import frames, sqlite_export
from wpclone_engine.site_move import table_definition
from wpclone_engine.sqlite_dropin import DATABASE_FILE
from wpclone_engine.sqlite_import import TYPES_TABLE, SqliteImport, SqliteTarget, mysql_string, sqlite_table

OPTIONS = """CREATE TABLE `wp_options` (
  `option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `option_name` varchar(191) NOT NULL DEFAULT '',
  `option_value` longtext NOT NULL,
  PRIMARY KEY (`option_id`),
  UNIQUE KEY `option_name` (`option_name`)
) ENGINE=InnoDB AUTO_INCREMENT=140 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"""


def test_a_wordpress_table_is_laid_out_with_its_mysql_types_recorded() -> None:
    layout = sqlite_table(OPTIONS, "wp_options")
    assert layout.statements == (
        'CREATE TABLE "wp_options" (\n'
        '"option_id" integer PRIMARY KEY AUTOINCREMENT NOT NULL ON CONFLICT REPLACE DEFAULT 0,\n'
        '"option_name" text NOT NULL ON CONFLICT REPLACE DEFAULT \'\' COLLATE NOCASE,\n'
        '"option_value" text NOT NULL ON CONFLICT REPLACE DEFAULT \'\' COLLATE NOCASE)',
        'CREATE UNIQUE INDEX "wp_options__option_name" ON "wp_options" ("option_name")')
    assert layout.types == (("option_id", "bigint(20) unsigned"), ("option_name", "varchar(191)"),
                            ("option_value", "longtext"), ("wp_options__option_name", "UNIQUE"))
    assert (layout.next_id, layout.autoincrement, layout.loosened) == (140, True, ())


def test_what_sqlite_cannot_keep_as_it_was_is_named() -> None:
    create = """CREATE TABLE `wp_shop` (
  `order_id` bigint(20) NOT NULL AUTO_INCREMENT,
  `line` int(11) NOT NULL,
  `state` enum('new','paid') NOT NULL DEFAULT 'new',
  `code` varchar(10) COLLATE utf8mb4_bin NOT NULL,
  `note` varchar(20) DEFAULT 'it\\'s ''here''',
  `total` decimal(10,2) DEFAULT (1 + 1),
  PRIMARY KEY (`order_id`,`line`),
  CONSTRAINT `paid` CHECK (`total` >= 0),
  CONSTRAINT `fk` FOREIGN KEY (`line`) REFERENCES `wp_lines` (`id`)
) ENGINE=InnoDB"""
    layout = sqlite_table(create, "wp_shop")
    assert layout.statements[0] == (
        'CREATE TABLE "wp_shop" (\n'
        '"order_id" integer NOT NULL ON CONFLICT REPLACE DEFAULT 0,\n'
        '"line" integer NOT NULL ON CONFLICT REPLACE DEFAULT 0,\n'
        '"state" text NOT NULL ON CONFLICT REPLACE DEFAULT \'new\' COLLATE NOCASE,\n'
        '"code" text NOT NULL ON CONFLICT REPLACE DEFAULT \'\',\n'  # case-sensitive, as its collation
        '"note" text DEFAULT \'it\'\'s \'\'here\'\'\' COLLATE NOCASE,\n'
        '"total" real,\n'
        'PRIMARY KEY ("order_id", "line"))')
    assert layout.loosened == ("wp_shop.state: enum('new','paid') is kept as text",
                               "wp_shop.total: its DEFAULT is not kept",
                               "wp_shop: a CHECK constraint is not kept",
                               "wp_shop.order_id: AUTO_INCREMENT within a compound primary key is not kept")
    assert ("total", "decimal(10,2)") in layout.types
    sqlite3.connect(":memory:").execute(layout.statements[0])  # SQLite takes it


def test_mysql_string_literals_are_read_with_their_escapes() -> None:
    assert mysql_string("'a\\'b''c\\\\d\\n'") == "a'b'c\\d\n"


def records(*rows: tuple[bytes | None, ...]) -> bytes:
    return b"".join(frames.encode_record(row) for row in rows)


def build(target: SqliteTarget, rows: bytes, *, swap: bool = True) -> SqliteImport:
    async def run() -> SqliteImport:
        database = await SqliteImport.open(target)
        await database.begin_table("wp_options", OPTIONS, ["option_id", "option_name", "option_value"])
        await database.rows(rows)
        await database.end_table("wp_options", len(list(frames.decode_records(rows, 3))))
        if swap:
            await database.swap(replace_all=True)
        return database
    return asyncio.run(run())


def test_an_import_builds_aside_and_swaps_in_values_as_they_were(tmp_path: Path) -> None:
    target = SqliteTarget(tmp_path, "wp_")
    database = build(target, records((b"1", b"siteurl", b"http://clone.test"), (b"7", b"blob", b"\xff\x00'\xfe")))
    asyncio.run(database.finish())
    database.close()
    with sqlite3.connect(target.path) as connection:
        connection.text_factory = bytes
        assert connection.execute("SELECT option_id, typeof(option_id), option_value, typeof(option_value) "
                                  "FROM wp_options ORDER BY 1").fetchall() == [
            (1, b"integer", b"http://clone.test", b"text"), (7, b"integer", b"\xff\x00'\xfe", b"text")]
        # The source's counter is kept (past its deleted rows), and a lookup ignores case, as in MySQL.
        assert connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'wp_options'").fetchone() == (139,)
        assert connection.execute("SELECT count(*) FROM wp_options WHERE option_name = 'SiteURL'").fetchone() == (1,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == (b"delete",)
    assert sorted(path.name for path in tmp_path.iterdir()) == [DATABASE_FILE]


def test_a_reverted_or_aborted_import_leaves_the_live_file_as_it_was(tmp_path: Path) -> None:
    target = SqliteTarget(tmp_path, "wp_")
    first = build(target, records((b"1", b"siteurl", b"http://clone.test"), (b"2", b"blogname", b"Before")))
    asyncio.run(first.finish())
    first.close()
    before = target.path.read_bytes()
    assert asyncio.run(_preserved(target)) == {"siteurl": b"http://clone.test"}  # the clone's own, kept

    second = build(target, records((b"1", b"home", b"http://new.test")))
    assert target.path.read_bytes() != before
    asyncio.run(second.revert())
    asyncio.run(second.abort())
    assert target.path.read_bytes() == before

    third = build(target, records((b"2", b"x", b"y")), swap=False)
    asyncio.run(third.abort())
    assert target.path.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == [DATABASE_FILE]


async def _preserved(target: SqliteTarget) -> dict[str, bytes]:
    database = await SqliteImport.open(target)
    try:
        return await database.preserved_options()
    finally:
        await database.abort()


def test_a_table_of_another_prefix_or_of_the_dropin_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        database = await SqliteImport.open(SqliteTarget(tmp_path, "wp_"))
        try:
            for table in ("other_options", "_mysql_data_types_cache"):
                with pytest.raises(frames.StreamError):
                    await database.begin_table(table, OPTIONS.replace("wp_options", table), ["option_id"])
        finally:
            await database.abort()
    asyncio.run(run())


def test_a_table_goes_out_with_the_definition_it_came_with_until_it_changes(tmp_path: Path) -> None:
    target = SqliteTarget(tmp_path, "wp_")
    database = build(target, records((b"1", b"siteurl", b"http://clone.test"), (b"7", b"x", b"\xff")))
    asyncio.run(database.finish())
    database.close()
    with contextlib.closing(sqlite3.connect(target.path)) as connection:
        connection.text_factory = bytes
        create, columns, key = sqlite_export.definition(connection, "wp_options")
        assert create == OPTIONS  # as it came, kept in the file
        assert (columns, key) == (["option_id", "option_name", "option_value"], ["option_id"])
        # A plugin adds a column on the clone (the drop-in records its MySQL type): the definition is made anew.
        connection.execute('ALTER TABLE "wp_options" ADD COLUMN "note" text')
        connection.execute(f"INSERT INTO {TYPES_TABLE} VALUES ('wp_options', 'note', 'varchar(40)')")
        made, columns, _ = sqlite_export.definition(connection, "wp_options")
    assert columns[-1] == "note" and "`note` varchar(40)" in made
    assert "`option_id` bigint(20) unsigned NOT NULL AUTO_INCREMENT" in made
    assert "UNIQUE KEY `option_name` (`option_name`)" in made and "PRIMARY KEY (`option_id`)" in made
    table_definition(made, "wp_options")  # a definition the importers take


def test_the_export_stream_carries_every_value_as_mysql_takes_it(tmp_path: Path) -> None:
    target = SqliteTarget(tmp_path, "wp_")
    database = build(target, records((b"1", b"siteurl", b"http://clone.test"), (b"7", b"x", b"\xff\x00")))
    asyncio.run(database.finish())
    database.close()
    assert sqlite_export.tables_of(target) == {"wp_options": 2}
    stream = b"".join(sqlite_export.export_frames(target, ["wp_options"], 1))
    found = frames.FrameReader().feed(stream)
    assert [frame.kind for frame in found] == [frames.TABLE, frames.ROWS, frames.ROWS, frames.TABLE_END, frames.END]
    assert [frames.decode_single_record(frame.payload, 3) for frame in found[1:3]] == [
        [b"1", b"siteurl", b"http://clone.test"], [b"7", b"x", b"\xff\x00"]]
    assert found[3].json() == {"name": "wp_options", "rows": 2}


def test_a_sqlite_default_becomes_a_mysql_literal() -> None:
    assert [sqlite_export.mysql_literal(text) for text in ("'it''s \\ here'", "0", "-1.5", "current_timestamp",
                                                           "NULL", "(1 + 1)")] == [
        "'it''s \\\\ here'", "0", "-1.5", "current_timestamp", "NULL", "NULL"]
