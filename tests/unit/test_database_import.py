"""SQL for a clone's bare database: literals of raw bytes, bounded multi-row INSERTs, one atomic swap."""

from __future__ import annotations

import asyncio
import re

import pymysql
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wpclone_engine import database_import, frames
from wpclone_engine.database_import import (
    DatabaseImport,
    DatabaseTarget,
    insert_statements,
    is_own_table,
    literal,
    rename_statement,
    staging_create,
    swap_renames,
)

_MYSQL_ESCAPES = {b"0": b"\0", b"n": b"\n", b"r": b"\r", b"Z": b"\x1a"}


def unquote(sql: bytes) -> bytes:
    """How MySQL reads a quoted string literal (backslash escapes; our literals never double quotes)."""
    assert sql[:1] == b"'" and sql[-1:] == b"'"
    assert re.fullmatch(rb"(?:[^'\\]|\\.)*", sql[1:-1], re.S), "an unescaped quote would end the literal early"
    return re.sub(rb"\\(.)", lambda match: _MYSQL_ESCAPES.get(match.group(1), match.group(1)), sql[1:-1], flags=re.S)


@given(st.binary(max_size=64))
def test_a_literal_holds_exactly_its_bytes(value: bytes) -> None:
    assert unquote(literal(value)) == value


def test_null_is_null() -> None:
    assert literal(None) == b"NULL"


def test_inserts_stay_under_the_size_limit_and_carry_every_row() -> None:
    rows = [[str(i).encode(), b"x" * 50, None] for i in range(100)]
    payload = b"".join(frames.encode_record(row) for row in rows)
    statements = list(insert_statements("wpci_0123456789ab_0", ["id", "v", "n"], payload, max_bytes=1000))
    assert sum(count for _, count in statements) == 100 and len(statements) > 5
    assert all(len(sql) <= 1000 for sql, _ in statements)
    assert statements[0][0].startswith(b"INSERT INTO `wpci_0123456789ab_0` (`id`, `v`, `n`) VALUES ('0','xxx")
    assert statements[0][0].endswith(b",NULL)")


_VALUE = re.compile(rb"NULL|'(?:[^'\\]|\\.)*'", re.S)


@given(st.lists(st.tuples(st.binary(max_size=40) | st.none(), st.binary(max_size=40)), min_size=1, max_size=20))
def test_every_row_of_an_insert_reads_back_as_its_record(rows: list[tuple[bytes | None, bytes]]) -> None:
    payload = b"".join(frames.encode_record(list(row)) for row in rows)
    read: list[tuple[bytes | None, ...]] = []
    for sql, _ in insert_statements("t", ["a", "b"], payload, max_bytes=200):
        tuples = sql.split(b" VALUES ", 1)[1]
        values = [None if found == b"NULL" else unquote(found) for found in _VALUE.findall(tuples)]
        read += zip(values[::2], values[1::2], strict=True)
    assert read == rows


def test_a_row_without_quotes_or_backslashes_is_written_as_it_is() -> None:
    row = [b"7", b'<p class="a">line\r\n\x1a</p>']
    (sql, _), = insert_statements("t", ["id", "v"], frames.encode_record(row))
    assert sql.endswith(b"VALUES ('7','" + row[1] + b"')")


def test_a_row_larger_than_the_limit_goes_alone() -> None:
    payload = frames.encode_record([b"1", b"y" * 5000]) + frames.encode_record([b"2", b"z"])
    statements = list(insert_statements("t", ["id", "v"], payload, max_bytes=1000))
    assert [count for _, count in statements] == [1, 1]


def test_a_definition_is_staged_under_its_staging_name() -> None:
    create = "CREATE TABLE `clone_posts` (\n  `ID` bigint NOT NULL\n)"
    assert staging_create(create, "clone_posts", "wpci_0123456789ab_3") == (
        b"CREATE TABLE `wpci_0123456789ab_3` (\n  `ID` bigint NOT NULL\n)")
    with pytest.raises(frames.StreamError):
        staging_create(create, "clone_users", "wpci_0123456789ab_3")


def test_the_swap_is_one_statement_moving_live_tables_aside_first() -> None:
    aside, incoming = swap_renames(["wp_options", "wp_posts", "wp_old_plugin"],
                                   {"wp_options": "wpci_j_0", "wp_posts": "wpci_j_1"}, True, "wpcb_j_")
    assert rename_statement(aside + incoming) == (
        b"RENAME TABLE `wp_options` TO `wpcb_j_0`, `wp_posts` TO `wpcb_j_1`, `wp_old_plugin` TO `wpcb_j_2`, "
        b"`wpci_j_0` TO `wp_options`, `wpci_j_1` TO `wp_posts`")


def test_a_partial_swap_leaves_other_live_tables_in_place() -> None:
    aside, _ = swap_renames(["wp_options", "wp_posts", "wp_old_plugin"], {"wp_posts": "wpci_j_0"}, False, "wpcb_j_")
    assert aside == [("wp_posts", "wpcb_j_0")]


def test_only_the_migrator_names_count_as_its_own_tables() -> None:
    assert is_own_table("wpci_0123456789ab_12") and is_own_table("wpcb_0123456789ab_0")
    assert not is_own_table("wpci_posts") and not is_own_table("wp_posts")


MARIADB_10_COLLATIONS = frozenset({"utf8mb4_unicode_520_ci", "utf8mb4_bin", "utf8mb4_general_ci"})


def test_mysql_8_collations_a_server_does_not_know_become_its_nearest_and_nothing_else_changes() -> None:
    create = ("CREATE TABLE `wp_posts` (\n  `ID` bigint NOT NULL,\n"
              "  `post_title` text CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci NOT NULL,\n"
              "  `slug` varchar(200) COLLATE utf8mb4_0900_as_cs DEFAULT 'utf8mb4_0900_ai_ci',\n"
              "  `de` text COLLATE utf8mb4_de_pb_0900_ai_ci,\n  PRIMARY KEY (`ID`)\n"
              ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci")
    assert staging_create(create, "wp_posts", "wpci_x_0", MARIADB_10_COLLATIONS).decode() == (
        "CREATE TABLE `wpci_x_0` (\n  `ID` bigint NOT NULL,\n"
        "  `post_title` text CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL,\n"
        "  `slug` varchar(200) COLLATE utf8mb4_bin DEFAULT 'utf8mb4_0900_ai_ci',\n"
        "  `de` text COLLATE utf8mb4_unicode_520_ci,\n  PRIMARY KEY (`ID`)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci")
    knows_them = MARIADB_10_COLLATIONS | {"utf8mb4_0900_ai_ci", "utf8mb4_0900_as_cs", "utf8mb4_de_pb_0900_ai_ci"}
    assert staging_create(create, "wp_posts", "wp_posts", knows_them).decode() == create


class SlowConnection:
    """A clone database's connection whose INSERTs each finish only when the test lets them (or fail):
    which statements ran, in which order, and whether one was sent while another was still running."""

    def __init__(self, failing: bool = False) -> None:
        self.started: list[bytes] = []
        self.finished: list[bytes] = []
        self.release = asyncio.Event()
        self.failing = failing
        self.tables: list[tuple[bytes]] = []

    def cursor(self) -> SlowConnection:
        return self

    async def __aenter__(self) -> SlowConnection:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def execute(self, statement: bytes) -> None:
        assert len(self.started) == len(self.finished), "a statement sent while another was running"
        self.started.append(statement)
        if statement.startswith(b"INSERT"):
            await self.release.wait()
            if self.failing:
                self.finished.append(statement)
                raise pymysql.err.DataError(1406, "Data too long")
        self.finished.append(statement)

    async def fetchall(self) -> list[tuple[bytes]]:
        return self.tables

    def close(self) -> None:
        pass


def verbs(statements: list[bytes]) -> list[str]:
    return [statement.split()[0].decode() for statement in statements]


async def settled() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_rows_are_inserted_while_the_engine_goes_on_and_before_any_other_statement() -> None:
    connection = SlowConnection()
    importer = DatabaseImport(connection, DatabaseTarget("db", 3306, "clone", "secret", "clone"))  # type: ignore[arg-type]
    await importer.begin_table("wp_a", "CREATE TABLE `wp_a` (`id` int)", ["id"])
    await asyncio.wait_for(importer.rows(frames.encode_record([b"1"])), 5)  # returns, its INSERT still running
    await settled()
    assert verbs(connection.started) == ["CREATE", "INSERT"] and verbs(connection.finished) == ["CREATE"]
    await importer.end_table("wp_a", 1)
    creating = asyncio.create_task(importer.begin_table("wp_b", "CREATE TABLE `wp_b` (`id` int)", ["id"]))
    await settled()
    assert verbs(connection.started) == ["CREATE", "INSERT"]  # the next statement waits for the INSERT
    connection.release.set()
    await creating
    assert verbs(connection.finished) == ["CREATE", "INSERT", "CREATE"]


async def test_baseline_entries_are_inserted_in_the_background_after_the_rows_before_them() -> None:
    connection = SlowConnection()
    importer = DatabaseImport(connection, DatabaseTarget("db", 3306, "clone", "secret", "clone"))  # type: ignore[arg-type]
    await importer.begin_table("wp_a", "CREATE TABLE `wp_a` (`id` int)", ["id"])
    await importer.rows(frames.encode_record([b"1"]))
    entry = (frames.encode_record([b"1"]), b"s" * 16, b"c" * 16, None)
    adding = asyncio.create_task(importer.add_baseline("wp_a", [entry]))
    await settled()
    assert not adding.done()  # one statement at a time: it waits for the rows' INSERT
    connection.release.set()
    await settled()
    connection.release.clear()
    await asyncio.wait_for(adding, 5)
    await asyncio.wait_for(importer.add_baseline("wp_a", [entry]), 5)  # returns, its INSERT still running
    await settled()
    assert connection.started[-1].startswith(b"INSERT INTO `wpclone_baseline`")
    assert verbs(connection.finished) == ["CREATE", "INSERT", "INSERT"]
    await importer.end_table("wp_a", 1)
    swapping = asyncio.create_task(importer.swap(replace_all=False))
    await settled()
    assert not swapping.done()  # waits for it
    connection.release.set()
    await swapping
    assert verbs(connection.finished) == ["CREATE", "INSERT", "INSERT", "INSERT", "SELECT", "RENAME"]


async def test_a_failed_insert_is_the_next_statement_s_error_and_the_import_still_aborts() -> None:
    connection = SlowConnection(failing=True)
    importer = DatabaseImport(connection, DatabaseTarget("db", 3306, "clone", "secret", "clone"))  # type: ignore[arg-type]
    await importer.begin_table("wp_a", "CREATE TABLE `wp_a` (`id` int)", ["id"])
    await importer.rows(frames.encode_record([b"1"]))
    connection.release.set()
    await importer.end_table("wp_a", 1)
    with pytest.raises(pymysql.err.DataError):
        await importer.begin_table("wp_b", "CREATE TABLE `wp_b` (`id` int)", ["id"])
    connection.tables = [(f"wpci_{importer.job}_0".encode(),)]
    await importer.abort()
    assert connection.started[-1] == f"DROP TABLE IF EXISTS `wpci_{importer.job}_0`".encode()


async def test_an_import_cancelled_mid_statement_aborts_on_a_new_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection, fresh = SlowConnection(), SlowConnection()
    closed: list[SlowConnection] = []
    monkeypatch.setattr(connection, "close", lambda: closed.append(connection))

    async def connect(target: DatabaseTarget) -> SlowConnection:
        return fresh

    monkeypatch.setattr(database_import, "connect", connect)
    importer = DatabaseImport(connection, DatabaseTarget("db", 3306, "clone", "secret", "clone"))  # type: ignore[arg-type]
    await importer.begin_table("wp_a", "CREATE TABLE `wp_a` (`id` int)", ["id"])
    await importer.rows(frames.encode_record([b"1"]))
    await importer.end_table("wp_a", 1)
    creating = asyncio.create_task(importer.begin_table("wp_b", "CREATE TABLE `wp_b` (`id` int)", ["id"]))
    await settled()
    creating.cancel()  # as when the clone's files failed: the INSERT it waited for is cancelled mid-run
    with pytest.raises(asyncio.CancelledError):
        await creating
    fresh.tables = [(f"wpci_{importer.job}_0".encode(),)]
    await importer.abort()
    assert closed == [connection] and verbs(connection.finished) == ["CREATE"]
    assert fresh.started[-1] == f"DROP TABLE IF EXISTS `wpci_{importer.job}_0`".encode()
