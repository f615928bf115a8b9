"""Importing tables into a SQLite clone: a WordPress whose database is one file, read through the SQLite
drop-in (sqlite_dropin), so that no MySQL server is needed.

The tables are written the way the drop-in writes them when WordPress runs a MySQL CREATE TABLE
through it (its column types, NOT NULL ... ON CONFLICT REPLACE, COLLATE NOCASE for text, indexes named
`{table}__{key}`, and each column's and key's MySQL type in `_mysql_data_types_cache`, which it reads
back for DESCRIBE and SHOW COLUMNS), so the clone's WordPress and plugins find what they would have made.

The copy is built in a file of its own beside the live one and put in its place by one rename, under
an exclusive lock of the live file: the clone's WordPress sees no database, or the old one whole, or the
new one whole. The live file is kept aside until finish() (revert() puts it back).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wpclone_engine import frames, reasons
from wpclone_engine.site_move import PRESERVED_OPTIONS, Token, sql_tokens, table_definition
from wpclone_engine.sqlite_dropin import DATABASE_FILE

TYPES_TABLE = "_mysql_data_types_cache"
_TYPES_CREATE = (f"CREATE TABLE IF NOT EXISTS {TYPES_TABLE} (\n\t\t`table` TEXT NOT NULL,\n\t\t`column_or_index` TEXT "
                 "NOT NULL,\n\t\t`mysql_type` TEXT NOT NULL,\n\t\tPRIMARY KEY(`table`, `column_or_index`)\n\t)")
# Each table's MySQL definition as it came (for a restore of the clone: sqlite_export), in a table of ours.
ORIGINALS = "_wpclone_mysql_tables"
_ORIGINALS_CREATE = f"CREATE TABLE IF NOT EXISTS {ORIGINALS} (name TEXT PRIMARY KEY, create_statement BLOB NOT NULL)"
_INTERNAL = re.compile(rf"^(sqlite_|{TYPES_TABLE}$|{ORIGINALS}$)")

# MySQL's column types -> the drop-in's SQLite types (WP_SQLite_Translator::$field_types_translation), and
# the types it has no entry for, which a clone keeps in the nearest one (listed by the copy as loosened).
SQLITE_TYPES = {
    **dict.fromkeys(("bit", "bool", "boolean", "tinyint", "smallint", "mediumint", "int", "integer", "bigint"),
                    "integer"),
    **dict.fromkeys(("float", "double", "decimal", "dec", "numeric", "fixed"), "real"),
    **dict.fromkeys(("date", "datetime", "timestamp", "time", "year", "char", "varchar", "tinytext", "text",
                     "mediumtext", "longtext", "geomcollection", "geometrycollection"), "text"),
    **dict.fromkeys(("varbinary", "tinyblob", "blob", "mediumblob", "longblob"), "blob"),
}
LOOSENED_TYPES = {
    **dict.fromkeys(("enum", "set", "json", "nchar", "nvarchar", "national", "uuid", "inet4", "inet6"), "text"),
    **dict.fromkeys(("real", "double precision"), "real"),
    **dict.fromkeys(("binary", "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                     "multipolygon"), "blob"),
}
_INDEX_TYPES = {"key": "KEY", "index": "KEY", "unique": "UNIQUE", "fulltext": "FULLTEXT", "spatial": "SPATIAL"}
_MYSQL_ESCAPES = {"0": "\0", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "Z": "\x1a"}


@dataclass(frozen=True)
class SqliteTarget:
    """A SQLite clone's database: the folder its file is in (never under the web server's root)."""

    folder: Path
    table_prefix: str = "wp_"

    @property
    def path(self) -> Path:
        return self.folder / DATABASE_FILE


@dataclass(frozen=True)
class SqliteColumn:
    name: str
    affinity: str  # integer, real, text or blob
    mysql_type: str  # as the drop-in records it: `bigint(20) unsigned`, `varchar(191)`, `longtext`


@dataclass(frozen=True)
class SqliteTable:
    """A MySQL table as the drop-in lays it out: the statements that make it, what it records of it in
    TYPES_TABLE, its columns, its next AUTO_INCREMENT value, and what it could not keep as it was."""

    name: str
    statements: tuple[str, ...]
    types: tuple[tuple[str, str], ...]
    columns: tuple[SqliteColumn, ...]
    next_id: int | None = None
    loosened: tuple[str, ...] = ()
    autoincrement: bool = False


# --- the schema (pure) ------------------------------------------------------------------------------

def is_internal(table: str) -> bool:
    """SQLite's own tables, the drop-in's and ours: never a table of the site."""
    return _INTERNAL.match(table) is not None


def quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _unquote(token: Token) -> str:
    return token.text[1:-1].replace("``", "`") if token.kind == "name" else token.text


def mysql_string(literal: str) -> str:
    """The value of a MySQL string literal as SHOW CREATE TABLE writes one."""
    body, out, at = literal[1:-1], [], 0
    while at < len(body):
        char = body[at]
        if char == "\\" and at + 1 < len(body):
            out.append(_MYSQL_ESCAPES.get(body[at + 1], body[at + 1]))
            at += 2
        elif char == "'" and body[at + 1:at + 2] == "'":
            out.append("'")
            at += 2
        else:
            out.append(char)
            at += 1
    return "".join(out)


def sqlite_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class _Column:
    name: str
    mysql_type: str
    affinity: str
    not_null: bool = False
    default: str | None = None  # as SQLite writes it; None: no DEFAULT clause
    auto_increment: bool = False
    primary: bool = False
    case_sensitive: bool = False


def sqlite_table(create: str, table: str) -> SqliteTable:
    """The SQLite layout of `create` (SHOW CREATE TABLE of `table`, checked by table_definition; its
    foreign keys and CHECK constraints left out: the drop-in keeps neither)."""
    definition = table_definition(create, table)
    foreign = {key.text for key in definition.foreign_keys}
    columns: list[_Column] = []
    keys: list[tuple[str, str, list[str]]] = []  # (kind, name, columns)
    primary: list[str] = []
    loosened: list[str] = []
    for text in definition.parts:
        if text in foreign:
            continue
        part = sql_tokens(text)
        if part[0].kind == "name":
            column = _column(part, table, loosened)
            columns.append(column)
            if column.primary:
                primary.append(column.name)
            continue
        words = [token.text.lower() if token.kind == "word" else "" for token in part]
        at = 2 if words[0] == "constraint" and part[1].kind == "name" else int(words[0] == "constraint")
        if words[at] == "check":
            loosened.append(f"{table}: a CHECK constraint is not kept")
            continue
        kind = "PRIMARY" if words[at] == "primary" else _INDEX_TYPES.get(words[at], "KEY")
        named = next((token for token in part[at + 1:] if token.kind == "name"), None)
        opening = next(index for index, token in enumerate(part) if token.text == "(")
        key_columns = _key_columns(part[opening:])
        if kind == "PRIMARY":
            primary += [column for column in key_columns if column not in primary]
        else:
            keys.append((kind, _unquote(named) if named is not None and named.start < part[opening].start
                         else key_columns[0], key_columns))
    by_name = {column.name: column for column in columns}
    for name in primary:
        if name in by_name:
            by_name[name].primary = True
    compound = len(primary) > 1
    definitions = []
    for column in columns:
        if column.auto_increment and compound:
            loosened.append(f"{table}.{column.name}: AUTO_INCREMENT within a compound primary key is not kept")
            column.auto_increment = False
        definitions.append(_column_definition(column, inline_primary=not compound))
    if compound:
        definitions.append("PRIMARY KEY (" + ", ".join(quoted(name) for name in primary) + ")")
    statements = [f"CREATE TABLE {quoted(table)} (\n" + ",\n".join(definitions) + ")"]
    types = [(column.name, column.mysql_type) for column in columns]
    for kind, key, key_columns in keys:
        index = f"{table}__{key}"
        unique = "UNIQUE " if kind == "UNIQUE" else ""
        statements.append(f"CREATE {unique}INDEX {quoted(index)} ON {quoted(table)} ("
                          + ", ".join(quoted(name) for name in key_columns) + ")")
        types.append((index, kind))
    next_id = _table_option(definition.options, "auto_increment")
    return SqliteTable(table, tuple(statements), tuple(types),
                       tuple(SqliteColumn(column.name, column.affinity, column.mysql_type) for column in columns),
                       int(next_id) if next_id and next_id.isdigit() else None, tuple(loosened),
                       any(column.auto_increment for column in columns))


def _column(part: list[Token], table: str, loosened: list[str]) -> _Column:
    name = _unquote(part[0])
    kind = part[1].text.lower()
    at = 2
    if kind == "double" and len(part) > 2 and part[2].text.lower() == "precision":
        kind, at = "double precision", 3
    mysql_type = kind
    if at < len(part) and part[at].text == "(":
        closing = next(index for index in range(at, len(part)) if part[index].text == ")")
        mysql_type += "".join(token.text for token in part[at:closing + 1])
        at = closing + 1
    if at < len(part) and part[at].is_word("unsigned"):
        mysql_type += " " + part[at].text
        at += 1
    affinity = SQLITE_TYPES.get(kind)
    if affinity is None:
        affinity = LOOSENED_TYPES.get(kind, "text")
        loosened.append(f"{table}.{name}: {mysql_type[:60]} is kept as {affinity}")
    column = _Column(name, mysql_type, affinity)
    while at < len(part):
        token = part[at]
        word = token.text.lower() if token.kind == "word" else ""
        following = part[at + 1].text.lower() if at + 1 < len(part) else ""
        if word == "not" and following == "null":
            column.not_null, at = True, at + 2
        elif word == "auto_increment":
            column.auto_increment = column.primary = True
            at += 1
        elif word == "primary" and following == "key":
            column.primary, at = True, at + 2
        elif word == "collate":
            column.case_sensitive = bool(re.search(r"_(bin|cs)$", following))
            at += 2
        elif word == "default":
            at = _default(part, at + 1, column, table, loosened)
        elif word in ("comment", "on", "character", "charset", "generated", "as", "check", "invisible"):
            at = _skip_clause(part, at)
        else:
            at += 1
    if kind in ("binary", "varbinary") or "blob" in kind:
        column.case_sensitive = True
    return column


def _default(part: list[Token], at: int, column: _Column, table: str, loosened: list[str]) -> int:
    """Reads a DEFAULT's value (from `at`) into `column`; returns where the clause ends."""
    token = part[at]
    if token.kind == "string":
        column.default = sqlite_string(mysql_string(token.text))
        return at + 1
    if token.kind == "number" or (token.text == "-" and at + 1 < len(part) and part[at + 1].kind == "number"):
        negative = token.text == "-"
        column.default = ("-" if negative else "") + part[at + negative].text
        return at + 1 + negative
    if token.is_word("null"):
        column.default = "NULL"
        return at + 1
    if token.is_word("current_timestamp", "now", "localtimestamp"):
        column.default = "current_timestamp"
        at += 1
        if at < len(part) and part[at].text == "(":
            at = next(index for index in range(at, len(part)) if part[index].text == ")") + 1
        return at
    loosened.append(f"{table}.{column.name}: its DEFAULT is not kept")
    return _skip_clause(part, at)


def _skip_clause(part: list[Token], at: int) -> int:
    """Past one attribute: its words, then a parenthesized expression or a value, if one follows."""
    at += 1
    while at < len(part) and part[at].kind == "word" and part[at].text.lower() in (
            "set", "update", "always", "as", "virtual", "stored", "persistent"):
        at += 1
    if at < len(part) and part[at].text == "(":
        depth = 0
        while at < len(part):
            depth += (part[at].text == "(") - (part[at].text == ")")
            at += 1
            if depth == 0:
                break
    elif at < len(part) and part[at].kind in ("string", "word", "number", "name"):
        at += 1
        if at < len(part) and part[at].text == "(":  # current_timestamp()
            at = next(index for index in range(at, len(part)) if part[index].text == ")") + 1
    return at


def _key_columns(part: list[Token]) -> list[str]:
    """The columns of a key's parenthesized list, without their prefix lengths or orders."""
    names, depth = [], 0
    for token in part:
        depth += (token.text == "(") - (token.text == ")")
        if depth == 1 and token.kind == "name":
            names.append(_unquote(token))
        if depth == 0 and names:
            break
    return names


def _column_definition(column: _Column, *, inline_primary: bool) -> str:
    definition = f"{quoted(column.name)} {column.affinity}"
    if column.auto_increment:
        definition += " PRIMARY KEY AUTOINCREMENT"
    elif column.primary and inline_primary:
        definition += " PRIMARY KEY "
    if column.not_null:
        definition += " NOT NULL ON CONFLICT REPLACE"
    if column.default is not None:
        definition += " DEFAULT " + column.default
    elif column.not_null:
        definition += {"text": " DEFAULT ''", "integer": " DEFAULT 0", "real": " DEFAULT 0"}.get(column.affinity, "")
    if column.affinity == "text" and not column.case_sensitive:
        definition += " COLLATE NOCASE"
    return definition


def _table_option(options: str, option: str) -> str | None:
    found = re.search(rf"\b{option}\s*=\s*([0-9A-Za-z_]+)", options, re.IGNORECASE)
    return found.group(1) if found else None


def insert_statement(table: SqliteTable) -> str:
    """One row's INSERT: text and numbers bound as text (the column's affinity makes numbers of
    numbers, as the drop-in's INSERTs of MySQL literals do), blobs as they are."""
    values = ", ".join("?" if column.affinity == "blob" else "CAST(? AS TEXT)" for column in table.columns)
    return (f"INSERT INTO {quoted(table.name)} (" + ", ".join(quoted(column.name) for column in table.columns)
            + f") VALUES ({values})")


# --- the import -----------------------------------------------------------------------------------

@dataclass
class _Open:
    table: SqliteTable
    insert: str


@dataclass
class SqliteImport:
    """One import into a SQLite clone: build aside, swap in (the live file kept aside), finish or revert."""

    target: SqliteTarget
    _connection: sqlite3.Connection = field(repr=False)
    _staging: Path
    _aside: Path
    _order: frames.TableOrder = field(default_factory=frames.TableOrder)
    _tables: dict[str, SqliteTable] = field(default_factory=dict)
    _open: _Open | None = None
    _swapped: bool = False
    loosened: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, target: SqliteTarget) -> SqliteImport:
        return await asyncio.to_thread(cls._open_now, target)

    @classmethod
    def _open_now(cls, target: SqliteTarget) -> SqliteImport:
        target.folder.mkdir(parents=True, exist_ok=True)
        staging = target.folder / f"{DATABASE_FILE}.incoming"
        aside = target.folder / f"{DATABASE_FILE}.replaced"
        for leftover in (staging, aside):  # of a copy that died: the copy is this file's only other writer
            leftover.unlink(missing_ok=True)
        connection = sqlite3.connect(staging, isolation_level=None, check_same_thread=False)
        try:
            if target.path.exists():  # only some tables may come: the others stay as they are
                with contextlib.closing(sqlite3.connect(target.path)) as live:
                    live.backup(connection)
            # Nothing to recover from: a copy that fails is thrown away whole.
            connection.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
                                     f"PRAGMA encoding = 'UTF-8'; {_TYPES_CREATE}; {_ORIGINALS_CREATE};")
        except BaseException:
            connection.close()
            staging.unlink(missing_ok=True)
            raise
        return cls(target, connection, staging, aside)

    async def preserved_options(self) -> dict[str, bytes]:
        """The live values of the options a destination keeps, if it has an options table yet."""
        options = self.target.table_prefix + "options"
        if options not in self._live_tables():
            return {}
        marks = ", ".join("?" * len(PRESERVED_OPTIONS))
        rows = self._connection.execute(f"SELECT option_name, CAST(option_value AS BLOB) FROM {quoted(options)} "
                                        f"WHERE option_name IN ({marks})", PRESERVED_OPTIONS).fetchall()
        return {str(name): bytes(value) for name, value in rows}

    async def begin_table(self, table: str, create: str, columns: list[str], foreign_keys: Sequence[str] = ()) -> None:
        if not table.startswith(self.target.table_prefix) or table in self._tables or is_internal(table):
            raise frames.StreamError(f"refusing table {table}")
        layout = sqlite_table(create, table)
        if [column.name for column in layout.columns] != columns:
            raise frames.StreamError(f"the columns of {table} differ from its definition's")
        self._order.begin(table, columns)
        self._tables[table] = layout
        self.loosened += layout.loosened
        self.loosened += [f"{table}: a foreign key is not kept ({key[:80]})" for key in foreign_keys]
        self._open = _Open(layout, insert_statement(layout))
        await asyncio.to_thread(self._create, layout, create)

    def _create(self, layout: SqliteTable, create: str) -> None:
        connection = self._connection
        connection.execute("BEGIN")
        self._drop(layout.name)
        for statement in layout.statements:
            connection.execute(statement)
        connection.executemany(f"INSERT INTO {TYPES_TABLE} (`table`, `column_or_index`, `mysql_type`) VALUES "
                               "(?, ?, ?)", [(layout.name, name, kind) for name, kind in layout.types])
        connection.execute(f"INSERT INTO {ORIGINALS} (name, create_statement) VALUES (?, ?)",
                           (layout.name, create.encode()))
        connection.execute("COMMIT")

    def _drop(self, table: str) -> None:
        self._connection.execute(f"DROP TABLE IF EXISTS {quoted(table)}")  # its indexes with it
        self._connection.execute(f"DELETE FROM {TYPES_TABLE} WHERE `table` = ?", (table,))
        self._connection.execute(f"DELETE FROM {ORIGINALS} WHERE name = ?", (table,))
        with contextlib.suppress(sqlite3.OperationalError):  # no table has had an AUTOINCREMENT column yet
            self._connection.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table,))

    async def rows(self, payload: bytes) -> None:
        if self._open is None:
            raise frames.StreamError("rows before their table")
        self._order.open_table()
        records = list(frames.decode_records(payload, len(self._open.table.columns)))
        await asyncio.to_thread(self._insert, self._open.insert, records)
        self._order.rows += len(records)

    def _insert(self, statement: str, records: list[frames.Record]) -> None:
        self._connection.execute("BEGIN")
        self._connection.executemany(statement, records)
        self._connection.execute("COMMIT")

    async def end_table(self, table: str, rows: int) -> None:
        self._order.end(table, rows)
        layout = self._tables[table]
        if layout.autoincrement and layout.next_id is not None:  # the source's counter, past deleted rows
            self._connection.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                                     (layout.next_id - 1, table))
            self._connection.execute("INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS "
                                     "(SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                                     (table, layout.next_id - 1, table))
        self._open = None

    async def swap(self, replace_all: bool) -> None:
        """Puts the copy in place of the live file (kept aside for finish() or revert())."""
        if self._order.table is not None:
            raise frames.StreamError(f"table {self._order.table} was not received completely")
        await asyncio.to_thread(self._swap, replace_all)

    def _swap(self, replace_all: bool) -> None:
        connection = self._connection
        if replace_all:
            for table in self._live_tables():
                if table not in self._tables:
                    self._drop(table)
        connection.close()  # (journal_mode OFF lasts only as long as the connection that set it)
        with open(self._staging, "rb") as built:
            os.fsync(built.fileno())
        with self._live_lock():
            if self.target.path.exists():
                os.link(self.target.path, self._aside)
            os.replace(self._staging, self.target.path)
        self._swapped = True
        self._connection = sqlite3.connect(self.target.path, isolation_level=None, check_same_thread=False)

    @contextlib.contextmanager
    def _live_lock(self):  # type: ignore[no-untyped-def]
        """No writer of the live file while it is replaced (one busy writer's hot journal would otherwise
        be rolled back into the new file): an exclusive lock, waited for as WordPress's requests end."""
        if not self.target.path.exists():
            yield
            return
        with contextlib.closing(sqlite3.connect(self.target.path, timeout=60, isolation_level=None)) as live:
            live.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                live.execute("ROLLBACK")

    def _live_tables(self) -> list[str]:
        return sorted(str(row[0]) for row in self._connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'") if not is_internal(str(row[0])))

    async def raise_counters(self, offset: int) -> int:
        if offset > 0:
            raise frames.StreamError("a SQLite clone takes no merge baseline", reasons.NOT_SUPPORTED)
        return 0

    async def count_occurrences(self, count: Callable[[bytes], int], needle: bytes,
                                tables: Sequence[str] | None = None) -> int:
        """Counts with `count` what the text and blob cells holding `needle` hold, in `tables` (by default
        the ones this import brought)."""
        return await asyncio.to_thread(self._count, count, needle, list(self._tables if tables is None else tables))

    def _count(self, count: Callable[[bytes], int], needle: bytes, tables: list[str]) -> int:
        found = 0
        for table in tables:
            columns = [quoted(str(row[1])) for row in self._connection.execute(f"PRAGMA table_info({quoted(table)})")
                       if str(row[2]).lower() in ("text", "blob")]
            if not columns:
                continue
            holding = " OR ".join(f"instr(CAST({column} AS BLOB), ?) > 0" for column in columns)
            cells = ", ".join(f"CAST({column} AS BLOB)" for column in columns)
            for row in self._connection.execute(f"SELECT {cells} FROM {quoted(table)} WHERE {holding}",
                                                [needle] * len(columns)):
                found += sum(count(bytes(cell)) for cell in row if cell is not None)
        return found

    async def add_foreign_keys(self) -> None:
        """None: the drop-in keeps no foreign keys (begin_table listed them as loosened)."""

    async def revert(self) -> None:
        """Undoes swap(): the file that was live is live again."""
        if not self._swapped:
            return
        self._connection.close()
        with self._live_lock():
            if self._aside.exists():
                os.replace(self._aside, self.target.path)
            else:
                self.target.path.unlink(missing_ok=True)
        self._swapped = False
        self._connection = sqlite3.connect(self._staging, isolation_level=None, check_same_thread=False)

    async def finish(self) -> None:
        """Drops the file swap() put aside."""
        self._aside.unlink(missing_ok=True)

    async def abort(self) -> None:
        """Drops what was built; the live file was never touched (or revert() put it back)."""
        self._connection.close()
        if not self._swapped:
            self._staging.unlink(missing_ok=True)

    def close(self) -> None:
        self._connection.close()
