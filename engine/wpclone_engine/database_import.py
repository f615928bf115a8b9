"""Importing tables straight into a MySQL database, for a clone whose WordPress cannot receive them yet
(with no tables, WordPress redirects every request to install.php before any plugin loads).

The same discipline as the migrator's own import: tables are created under a staging name
(wpci_<job>_<n>), filled, and swapped in with ONE multi-table RENAME TABLE, the live tables moving
aside to wpcb_<job>_<n> until the copy as a whole has succeeded. Values travel as raw bytes
(`SET NAMES binary`), as the migrator exports them.

What the source sent reaches the database in two ways only: values, as escaped literals, and table
definitions, rebuilt from what site_move.table_definition checked. The connection does not let the
server take a query for more than one statement, so neither can carry a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from binascii import hexlify
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomysql
from pymysql.constants import CLIENT

from wpclone_engine import frames, merge
from wpclone_engine.pipeline import Pipeline
from wpclone_engine.site_move import PRESERVED_OPTIONS, DatabaseObject, map_collations, table_definition

_OWN_TABLE = re.compile(r"^wpc[ibr]_[0-9a-f]{12}_[0-9]+$")
_SESSION = (b"SET NAMES binary", b"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', foreign_key_checks = 0, "
            b"unique_checks = 0")
MAX_STATEMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class DatabaseTarget:
    """A clone's database, as the operator provisioned it."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str = ""
    table_prefix: str = "wp_"


# --- SQL (pure) ---------------------------------------------------------------------------------

def name(identifier: str) -> bytes:
    return ("`" + identifier.replace("`", "``") + "`").encode()


def literal(value: bytes | None) -> bytes:
    """A value as a MySQL string literal of raw bytes (the connection speaks `binary`, and its session
    leaves backslash escapes on)."""
    if value is None:
        return b"NULL"
    if _needs_escapes(value, 0, len(value)):
        value = value.replace(b"\\", b"\\\\").replace(b"\0", b"\\0").replace(b"'", b"\\'")
    return b"'" + value + b"'"


def _needs_escapes(data: bytes, start: int, end: int) -> bool:
    """Whether data[start:end] holds a byte that a literal escapes. Inside a quoted literal the server
    reads every byte as itself but the quote and the backslash (MySQL's manual: "strictly speaking, MySQL
    requires only that backslash and the quote character used to quote the string in the query be
    escaped"); NUL is escaped too, so that no statement carries one. Newlines and double quotes, in
    nearly every post and serialized value, are not: a row is then written by one join. (Three searches
    of one byte each, at memchr speed: a regex class over a post's text is several times slower.)"""
    return data.find(b"'", start, end) >= 0 or data.find(b"\\", start, end) >= 0 or data.find(b"\0", start, end) >= 0


def insert_statements(table: str, columns: Sequence[str], payload: bytes,
                      max_bytes: int = MAX_STATEMENT_BYTES) -> Iterator[tuple[bytes, int]]:
    """Multi-row INSERTs of the records in a rows payload, each at most `max_bytes` (unless one row is
    larger); yields each statement with its row count."""
    head = b"INSERT INTO " + name(table) + b" (" + b", ".join(name(column) for column in columns) + b") VALUES "
    tuples: list[bytes] = []
    size = len(head)
    values_at = 4 * len(columns)  # a record's values follow its lengths
    for start, end, lengths in frames.record_spans(payload, len(columns)):
        record = frames.record_values(payload, start, lengths)
        if frames.NULL_LENGTH in lengths or _needs_escapes(payload, start + values_at, end):
            row = b"(" + b",".join(literal(value) for value in record) + b")"
        else:  # the usual row: its values as they are, all quoted by one join
            row = b"('" + b"','".join(record) + b"')"  # type: ignore[arg-type]  # no NULL among them
        if tuples and size + len(row) > max_bytes:
            yield head + b",".join(tuples), len(tuples)
            tuples, size = [], len(head)
        tuples.append(row)
        size += len(row) + 1
    if tuples:
        yield head + b",".join(tuples), len(tuples)


def like_text(text: bytes) -> bytes:
    """`text` as a LIKE pattern that matches it literally (its wildcards and escapes escaped)."""
    return text.replace(b"\\", b"\\\\").replace(b"_", b"\\_").replace(b"%", b"\\%")


def staging_create(create: str, table: str, staging: str, known_collations: Collection[str] | None = None) -> bytes:
    """The checked definition of `table`, rebuilt under its staging name (with the MySQL 8 collations a
    server without them does not know, `known_collations`, mapped to its nearest ones)."""
    statement = table_definition(create, table).statement(staging)
    return (statement if known_collations is None else map_collations(statement, known_collations)).encode()


def rename_statement(renames: Sequence[tuple[str, str]]) -> bytes:
    """ONE RENAME TABLE for all: atomic on MariaDB >= 10.6 and MySQL 8."""
    return b"RENAME TABLE " + b", ".join(name(old) + b" TO " + name(new) for old, new in renames)


def swap_renames(live: Sequence[str], incoming: dict[str, str], replace_all: bool,
                 aside: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The renames that swap staged tables in: (live -> aside names, staging -> live names)."""
    replaced = list(live) if replace_all else [table for table in live if table in incoming]
    moved_aside = [(table, f"{aside}{index}") for index, table in enumerate(replaced)]
    return moved_aside, [(staging, table) for table, staging in incoming.items()]


def is_own_table(table: str) -> bool:
    return _OWN_TABLE.match(table) is not None


# --- the import ---------------------------------------------------------------------------------

# Column types that can hold a URL (WordPress keeps serialized data in longtext; plugins use blobs too).
_TEXT_TYPES = b", ".join(literal(kind) for kind in (
    b"char", b"varchar", b"tinytext", b"text", b"mediumtext", b"longtext", b"json",
    b"binary", b"varbinary", b"tinyblob", b"blob", b"mediumblob", b"longblob"))


# WordPress's own options table (wp-admin/includes/schema.php): what a WordPress needs to boot.
_OPTIONS_COLUMNS = (b" (option_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
                    b"option_name VARCHAR(191) NOT NULL DEFAULT '', option_value LONGTEXT NOT NULL, "
                    b"autoload VARCHAR(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (option_id), "
                    b"UNIQUE KEY option_name (option_name), KEY autoload (autoload))")


class _OneStatementConnection(aiomysql.Connection):
    """aiomysql always asks the server to run several statements per query (CLIENT.MULTI_STATEMENTS);
    without that capability the server refuses `...; DROP ...` as a syntax error."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client_flag &= ~CLIENT.MULTI_STATEMENTS


async def connect(target: DatabaseTarget) -> aiomysql.Connection:
    """A connection to a clone's database that speaks raw bytes and runs one statement per query."""
    connection = _OneStatementConnection(host=target.host, port=target.port, user=target.user,
                                         password=target.password, db=target.database, charset="utf8mb4",
                                         use_unicode=False, autocommit=True)
    await connection._connect()  # what aiomysql.connect() does, for a connection it cannot make
    try:
        async with connection.cursor() as cursor:
            for statement in _SESSION:
                await cursor.execute(statement)
    except BaseException:
        connection.close()
        raise
    return connection


def baseline_inserts(table: str, rows: Sequence[merge.BaselineRow],
                     max_bytes: int = MAX_STATEMENT_BYTES) -> Iterator[bytes]:
    """Multi-row INSERTs of a table's baseline entries into the baseline table."""
    head = b"INSERT INTO " + name(merge.BASELINE_TABLE) + b" (tbl, row_key, source_hash, clone_hash, label) VALUES "
    tuples: list[bytes] = []
    size = len(head)
    name_literal = literal(table.encode())
    for key, source, clone, label in rows:
        # Keys and fingerprints are binary (a key's lengths hold NUL bytes): written in hex, never escaped.
        row = b"(%s,X'%s',%s,X'%s',%s)" % (name_literal, hexlify(key), b"NULL" if source is None
                                           else b"X'" + hexlify(source) + b"'", hexlify(clone), literal(label))
        if tuples and size + len(row) > max_bytes:
            yield head + b",".join(tuples)
            tuples, size = [], len(head)
        tuples.append(row)
        size += len(row) + 1
    if tuples:
        yield head + b",".join(tuples)


class CloneBaseline:
    """A clone's baseline, read back from its database for a merge restore (merge.py)."""

    def __init__(self, connection: aiomysql.Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, target: DatabaseTarget) -> CloneBaseline:
        return cls(await connect(target))

    async def tables(self) -> set[str] | None:
        """The tables the baseline covers; None when the clone has no baseline."""
        async with self._connection.cursor() as cursor:
            await cursor.execute(b"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                                 b"AND TABLE_NAME = " + literal(merge.BASELINE_TABLE.encode()))
            if (await cursor.fetchone())[0] == 0:
                return None
            await cursor.execute(b"SELECT DISTINCT tbl FROM " + name(merge.BASELINE_TABLE))
            return {row[0].decode() for row in await cursor.fetchall()}

    async def entries(self, table: str) -> dict[bytes, merge.BaselineEntry]:
        async with self._connection.cursor() as cursor:
            await cursor.execute(b"SELECT row_key, source_hash, clone_hash, label FROM " + name(merge.BASELINE_TABLE)
                                 + b" WHERE tbl = " + literal(table.encode()))
            return {row[0]: merge.BaselineEntry(row[1], row[2], row[3]) for row in await cursor.fetchall()}

    def close(self) -> None:
        self._connection.close()


class DatabaseImport:
    """One import into a database: stage, swap in (keeping the old tables aside), then finish or revert."""

    def __init__(self, connection: aiomysql.Connection, target: DatabaseTarget) -> None:
        self._connection = connection
        self._target = target
        self.job = secrets.token_hex(6)
        self._staged: dict[str, str] = {}
        self._foreign_keys: dict[str, Sequence[str]] = {}  # added once every table is in place
        self._order = frames.TableOrder()
        self._swap: tuple[list[tuple[str, str]], list[tuple[str, str]]] | None = None
        self._collations: frozenset[str] = frozenset()  # the server's own, lower case
        # Rows' INSERTs run one at a time in the background while the engine makes the next (rewrites
        # their URLs): the database's work and the engine's overlap instead of taking turns. Any other
        # statement first waits for them (one connection runs one statement at a time, in order).
        self._inserts: Pipeline[bytes] = Pipeline(self._run, 1)
        self._bootstrap: str | None = None  # the options table bootable() made
        self._interrupted = False

    @classmethod
    async def open(cls, target: DatabaseTarget) -> DatabaseImport:
        connection = await connect(target)
        importer = cls(connection, target)
        try:
            importer._collations = frozenset(row[0].decode().lower() for row in await importer._fetch(
                b"SELECT COLLATION_NAME FROM information_schema.COLLATIONS"))
            for table in await importer._tables(""):
                if is_own_table(table):  # left by a copy that died: the operator is this database's only writer
                    await importer._execute(b"DROP TABLE IF EXISTS " + name(table))
        except BaseException:
            connection.close()
            raise
        return importer

    async def preserved_options(self) -> dict[str, bytes]:
        """The live values of the options a destination keeps, if it has an options table yet."""
        options = self._target.table_prefix + "options"
        if options not in await self._tables(options):
            return {}
        wanted = b", ".join(literal(option.encode()) for option in PRESERVED_OPTIONS)
        rows = await self._fetch(b"SELECT option_name, option_value FROM " + name(options)
                                 + b" WHERE option_name IN (" + wanted + b")")
        return {row[0].decode(): row[1] for row in rows}

    async def bootable(self, url: bytes, *, replaced: bool) -> bool:
        """Whether the destination's WordPress boots while its tables are copied: its options table has a
        siteurl (what WordPress asks to know it is installed), or, when there is no options table and the copy
        will replace it (`replaced`), it gets one holding only what a boot needs, its URL (`url`) among them.
        abort() drops that one again."""
        options = self._target.table_prefix + "options"
        if options in await self._tables(options):
            with contextlib.suppress(aiomysql.Error):  # not WordPress's own columns: WordPress would not boot
                return bool(await self._fetch(b"SELECT 1 FROM " + name(options) + b" WHERE option_name = 'siteurl'"))
            return False
        if not replaced:
            return False
        await self._execute(b"CREATE TABLE " + name(options) + _OPTIONS_COLUMNS)
        # A permalink structure: the migrator's routes are under /wp-json/.
        await self._execute(b"INSERT INTO " + name(options) + b" (option_name, option_value) VALUES ('siteurl', "
                            + literal(url) + b"), ('home', " + literal(url) + b"), ('blog_charset', 'UTF-8'), "
                            b"('permalink_structure', '/%postname%/')")
        self._bootstrap = options
        return True

    async def begin_table(self, table: str, create: str, columns: list[str], foreign_keys: Sequence[str] = ()) -> None:
        """`create` without its foreign keys; those (checked by table_definition, referring to this database)
        wait for add_foreign_keys."""
        if not table.startswith(self._target.table_prefix) or table in self._staged:
            raise frames.StreamError(f"refusing table {table}")
        self._order.begin(table, columns)
        staging = f"wpci_{self.job}_{len(self._staged)}"
        statement = staging_create(create, table, staging, self._collations)
        self._staged[table] = staging
        if foreign_keys:
            self._foreign_keys[table] = foreign_keys
        await self._execute(statement)

    async def rows(self, payload: bytes) -> None:
        table = self._order.open_table()
        for statement, count in insert_statements(self._staged[table], self._order.columns, payload):
            await self._inserts.put(statement)
            self._order.rows += count

    async def end_table(self, table: str, rows: int) -> None:
        self._order.end(table, rows)

    async def swap(self, replace_all: bool) -> None:
        """Swaps the staged tables in, in one statement; the live ones wait aside for finish() or revert()."""
        if self._order.table is not None:
            raise frames.StreamError(f"table {self._order.table} was not received completely")
        live = [table for table in await self._tables(self._target.table_prefix) if not is_own_table(table)]
        self._swap = swap_renames(live, self._staged, replace_all, f"wpcb_{self.job}_")
        await self._execute(rename_statement(self._swap[0] + self._swap[1]))

    async def revert(self) -> None:
        """Undoes swap(): what was live is live again; the imported tables are dropped."""
        if self._swap is None:
            return
        aside, swapped_in = self._swap
        trash = [(table, f"wpcr_{self.job}_{index}") for index, (_, table) in enumerate(swapped_in)]
        await self._execute(rename_statement(trash + [(new, old) for old, new in aside]))
        for _, table in trash:
            await self._execute(b"DROP TABLE IF EXISTS " + name(table))
        self._swap = None

    async def begin_baseline(self) -> None:
        """An empty baseline table (a copy tried again records its baseline anew)."""
        if merge.BASELINE_TABLE in await self._tables(merge.BASELINE_TABLE):
            await self._execute(b"DROP TABLE " + name(merge.BASELINE_TABLE))
        await self._execute(merge.BASELINE_CREATE)

    async def add_baseline(self, table: str, rows: Sequence[merge.BaselineRow]) -> None:
        """In the background, as rows are: while the copy goes on."""
        for statement in baseline_inserts(table, rows):
            await self._inserts.put(statement)

    async def raise_counters(self, offset: int) -> int:
        """Moves the auto-increment counter of each table this import swapped in `offset` above the
        source's (merge.raised_counter); returns how many tables it moved."""
        if offset <= 0 or not self._staged:
            return 0
        tables = b", ".join(literal(table.encode()) for table in self._staged)
        rows = await self._fetch(
            b"SELECT t.TABLE_NAME, c.COLUMN_TYPE, CAST(COALESCE(t.AUTO_INCREMENT, 1) AS CHAR) "
            b"FROM information_schema.TABLES t "
            b"JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME "
            b"WHERE t.TABLE_SCHEMA = DATABASE() AND c.EXTRA LIKE '%auto_increment%' "
            b"AND t.TABLE_NAME IN (" + tables + b")")
        moved = 0
        for table, column_type, next_id in rows:
            counter = merge.raised_counter(column_type.decode(), int(next_id), offset)
            if counter is not None:
                await self._execute(b"ALTER TABLE " + name(table.decode()) + b" AUTO_INCREMENT = %d" % counter)
                moved += 1
        return moved

    async def count_occurrences(self, count: Callable[[bytes], int], needle: bytes,
                                tables: Sequence[str] | None = None) -> int:
        """Counts with `count` what the text and binary cells holding `needle` hold, in `tables` (by default
        the ones this import swapped in)."""
        found = 0
        pattern = b"%" + like_text(needle) + b"%"
        for table in self._staged if tables is None else tables:
            columns = [row[0].decode() for row in await self._fetch(
                b"SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = "
                + literal(table.encode()) + b" AND DATA_TYPE IN (" + _TEXT_TYPES + b")")]
            if not columns:
                continue
            holding = b" OR ".join(name(column) + b" LIKE BINARY " + literal(pattern) for column in columns)
            rows = await self._fetch(b"SELECT " + b", ".join(name(column) for column in columns) + b" FROM "
                                     + name(table) + b" WHERE " + holding)
            found += sum(count(cell) for row in rows for cell in row if cell is not None)
        return found

    async def add_foreign_keys(self) -> None:
        """Adds the foreign keys of the tables begun, under their live names."""
        for table, clauses in sorted(self._foreign_keys.items()):
            await self._execute(b"ALTER TABLE " + name(table) + b" " + b", ".join(
                b"ADD " + clause.encode() for clause in clauses))

    async def create_objects(self, objects: Sequence[DatabaseObject]) -> list[str]:
        """Makes views, triggers and routines (`create` as the destination runs it: SiteMove.database_object)
        in the order given, a view that relies on another again once that one is there, each replacing the
        one of the same name a previous copy made. What cannot be made is returned in words, with the
        server's reason: a view of a table the copy does not bring, a routine the server refuses this login
        (binary logging without log_bin_trust_function_creators)."""
        pending, left = list(objects), []
        await self._execute(b"SET SESSION sql_notes = 0")  # DROP ... IF EXISTS of what is not there: no note
        while pending:
            failed: list[tuple[DatabaseObject, str]] = []
            for item in pending:
                try:
                    await self._execute(b"DROP " + item.kind.upper().encode() + b" IF EXISTS " + name(item.name))
                    await self._execute(item.create.encode())
                except aiomysql.Error as error:
                    failed.append((item, str(error.args[-1])[:160]))
            if len(failed) == len(pending):  # no progress this round: what is left stays left
                left = [f"{item.kind} {item.name} (refused: {reason})" for item, reason in failed]
                break
            pending = [item for item, _ in failed]
        await self._execute(b"SET SESSION sql_notes = 1")
        return left

    async def finish(self) -> None:
        """Drops the tables swap() moved aside."""
        for _, table in (self._swap or ([], []))[0]:
            await self._execute(b"DROP TABLE IF EXISTS " + name(table))
        self._swap, self._bootstrap = None, None  # a bootstrap options table was among them

    async def abort(self) -> None:
        """Drops whatever was staged, and the options bootable() made; the live tables were never touched."""
        with contextlib.suppress(Exception):  # an INSERT that failed: its error is already the copy's
            await self._inserts.close()
        if self._interrupted:  # the connection's state is unknown: the server ends its session when it closes
            self._connection.close()
            self._connection, self._interrupted = await connect(self._target), False
        for table in await self._tables(f"wpci_{self.job}_"):
            await self._execute(b"DROP TABLE IF EXISTS " + name(table))
        if self._bootstrap is not None and self._swap is None:  # live again if revert() ran: as it was, none
            await self._execute(b"DROP TABLE IF EXISTS " + name(self._bootstrap))

    def close(self) -> None:
        self._connection.close()

    async def _tables(self, prefix: str) -> list[str]:
        rows = await self._fetch(b"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                                 b" AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME LIKE BINARY "
                                 + literal(like_text(prefix.encode()) + b"%"))
        return sorted(row[0].decode() for row in rows)

    async def _execute(self, statement: bytes) -> None:
        await self._inserts.close()
        await self._run(statement)

    async def _run(self, statement: bytes) -> None:
        with self._interruptible():
            async with self._connection.cursor() as cursor:
                await cursor.execute(statement)

    async def _fetch(self, statement: bytes) -> list[tuple[bytes, ...]]:
        await self._inserts.close()
        with self._interruptible():
            async with self._connection.cursor() as cursor:
                await cursor.execute(statement)
                return list(await cursor.fetchall())

    @contextlib.contextmanager
    def _interruptible(self) -> Iterator[None]:
        """Notes a statement cancelled while it ran (the copy's other half failed): its answer may still be
        on its way, so nothing else can be sent on this connection."""
        try:
            yield
        except asyncio.CancelledError:
            self._interrupted = True
            raise
