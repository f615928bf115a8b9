"""A SQLite clone as the source of a copy (a restore into production): its tables read from its database
file, as the migrator's export stream carries MySQL tables; its files, options and URL through its
migrator, which reads no SQLite itself.

Each table goes out with a MySQL definition: the one it came from production with (kept in the file by
the import, sqlite_import.ORIGINALS), while it still has those columns and keys; else one made from the
MySQL types the drop-in recorded for it (a table a plugin made on the clone, or changed there). Values
go out as the bytes MySQL takes them as: text and blobs as they are, numbers as their digits.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from wpclone_engine import frames
from wpclone_engine.site_move import mysql_name, table_definition
from wpclone_engine.sqlite_import import ORIGINALS, TYPES_TABLE, SqliteTarget, is_internal, quoted
from wpclone_engine.wordpress import Migrator, SiteInfo, TableInfo

# The MySQL type of a column the drop-in recorded none for, by its SQLite type.
MYSQL_TYPES = {"integer": "bigint(20)", "real": "double", "text": "longtext", "blob": "longblob"}
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"
_TEXT_PREFIX = re.compile(r"^(tinytext|text|mediumtext|longtext|tinyblob|blob|mediumblob|longblob)\b")


def _text(value: Any) -> str:
    """A name or type as the file holds it (the connection reads text as bytes, for the rows' sake)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def mysql_literal(sqlite_default: str) -> str:
    """A SQLite column default (as PRAGMA table_info gives it) as MySQL writes it."""
    text = sqlite_default.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        value = text[1:-1].replace("''", "'")
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    if text.lower() in ("current_timestamp", "null") or re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        return text
    return "NULL"


@dataclass(frozen=True)
class Column:
    name: str
    sqlite_type: str
    not_null: bool
    default: str | None
    primary: int  # its place in the primary key, from 1; 0 when not in it


@dataclass(frozen=True)
class Index:
    name: str  # as MySQL names it (the drop-in's {table}__{key}, without the table)
    unique: bool
    columns: tuple[str, ...]


def _columns(connection: sqlite3.Connection, table: str) -> list[Column]:
    return [Column(_text(name), _text(kind).lower(), bool(not_null), None if default is None else _text(default),
                   int(pk)) for _, name, kind, not_null, default, pk in connection.execute(
                       f"PRAGMA table_info({quoted(table)})")]


def _indexes(connection: sqlite3.Connection, table: str) -> list[Index]:
    found = []
    for _, name, unique, origin, _ in connection.execute(f"PRAGMA index_list({quoted(table)})"):
        if _text(origin) != "c":  # a primary key's or a UNIQUE constraint's automatic index: not a key of its own
            continue
        columns = tuple(_text(row[2]) for row in connection.execute(f"PRAGMA index_info({quoted(_text(name))})"))
        found.append(Index(_text(name).removeprefix(f"{table}__"), bool(unique), columns))
    return sorted(found, key=lambda index: index.name)


def _types(connection: sqlite3.Connection, table: str) -> dict[str, str]:
    with contextlib.suppress(sqlite3.OperationalError):  # a file the drop-in never opened has none
        return {_text(name): _text(kind) for name, kind in connection.execute(
            f"SELECT column_or_index, mysql_type FROM {TYPES_TABLE} WHERE `table` = ?", (table,))}
    return {}


def made_definition(table: str, columns: Sequence[Column], indexes: Sequence[Index], types: dict[str, str]) -> str:
    """A MySQL CREATE TABLE for a table as SQLite holds it, the columns' types as the drop-in recorded them."""
    primary = [column.name for column in sorted(columns, key=lambda column: column.primary) if column.primary]
    parts = []
    for column in columns:
        kind = types.get(column.name) or MYSQL_TYPES.get(column.sqlite_type, "longtext")
        part = f"{mysql_name(column.name)} {kind}"
        if column.not_null:
            part += " NOT NULL"
        counter = primary == [column.name] and column.sqlite_type == "integer" and "int" in kind.lower()
        if column.default is not None and not counter and not _TEXT_PREFIX.match(kind.lower()):
            part += f" DEFAULT {mysql_literal(column.default)}"
        if counter:
            part += " AUTO_INCREMENT"
        parts.append(part)
    if primary:
        parts.append("PRIMARY KEY (" + ",".join(mysql_name(name) for name in primary) + ")")
    by_name = {column.name: column for column in columns}
    for index in indexes:
        keyed = []
        for name in index.columns:
            kind = (types.get(name) or MYSQL_TYPES.get(by_name[name].sqlite_type, "longtext")).lower()
            keyed.append(mysql_name(name) + ("(191)" if _TEXT_PREFIX.match(kind) or kind.startswith("varchar")
                                            and _length(kind) > 191 else ""))
        kind = "UNIQUE KEY" if index.unique else "KEY"
        parts.append(f"{kind} {mysql_name(index.name)} (" + ",".join(keyed) + ")")
    return f"CREATE TABLE {mysql_name(table)} (\n  " + ",\n  ".join(parts) + f"\n) {TABLE_OPTIONS}"


def _length(kind: str) -> int:
    found = re.search(r"\(([0-9]+)\)", kind)
    return int(found.group(1)) if found else 0


def definition(connection: sqlite3.Connection, table: str) -> tuple[str, list[str], list[str]]:
    """(MySQL CREATE TABLE, column names, key columns) of one table of the file."""
    columns = _columns(connection, table)
    names = [column.name for column in columns]
    key = [column.name for column in sorted(columns, key=lambda column: column.primary) if column.primary]
    original = None
    with contextlib.suppress(sqlite3.OperationalError):
        row = connection.execute(f"SELECT create_statement FROM {ORIGINALS} WHERE name = ?", (table,)).fetchone()
        original = None if row is None else bytes(row[0]).decode()
    indexes = _indexes(connection, table)
    if original is not None and _still(original, table, names, indexes):
        return original, names, key
    return made_definition(table, columns, indexes, _types(connection, table)), names, key


def _still(original: str, table: str, names: list[str], indexes: list[Index]) -> bool:
    """Whether the table still has the columns and keys of its original definition (a plugin may have
    added a column or a key on the clone)."""
    parts = table_definition(original, table).parts
    columns = [part[1:part.index("`", 1)] for part in parts if part.startswith("`")]
    keys = {match.group(1) for part in parts if (match := re.match(r"(?:UNIQUE |FULLTEXT |SPATIAL )?KEY `([^`]+)`",
                                                                     part))}
    return columns == names and keys == {index.name for index in indexes}


def cell(value: Any) -> bytes | None:
    """A SQLite value as MySQL takes it."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def tables_of(target: SqliteTarget) -> dict[str, int]:
    """The site's tables in the file (its prefix's, none of the drop-in's or ours) and their row counts."""
    with contextlib.closing(_open(target)) as connection:
        every = [_text(row[0]) for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        names = [name for name in every if not is_internal(name) and name.startswith(target.table_prefix)]
        return {name: int(connection.execute(f"SELECT count(*) FROM {quoted(name)}").fetchone()[0])
                for name in sorted(names)}


def _open(target: SqliteTarget) -> sqlite3.Connection:
    """The file, read only (its WordPress may write meanwhile: a reader sees one state of it)."""
    connection = sqlite3.connect(f"file:{target.path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    connection.text_factory = bytes
    return connection


def export_frames(target: SqliteTarget, tables: Sequence[str], slice_bytes: int) -> Iterator[bytes]:
    """The tables as the migrator's export stream: T, R..., E for each, then Z; read in one transaction."""
    with contextlib.closing(_open(target)) as connection:
        connection.execute("BEGIN")
        rows_sent = 0
        for table in tables:
            create, names, key = definition(connection, table)
            yield frames.encode_json(frames.TABLE, {"name": table, "create": create, "columns": names, "key": key})
            buffer, count = bytearray(), 0
            for row in connection.execute(f"SELECT {', '.join(quoted(name) for name in names)} FROM {quoted(table)}"):
                buffer += frames.encode_record([cell(value) for value in row])
                count += 1
                if len(buffer) >= slice_bytes:
                    yield frames.encode_frame(frames.ROWS, bytes(buffer))
                    buffer = bytearray()
            if buffer:
                yield frames.encode_frame(frames.ROWS, bytes(buffer))
            yield frames.encode_json(frames.TABLE_END, {"name": table, "rows": count})
            rows_sent += count
        connection.execute("COMMIT")
    yield frames.encode_json(frames.END, {"tables": len(tables), "rows": rows_sent, "not_copied": [], "objects": []})


@dataclass
class SqliteSite(Migrator):
    """A SQLite clone: its migrator (token) for its files and settings, its `database` file for its tables."""

    database: SqliteTarget | None = None

    async def info(self, *, checksums: bool = False, content: bool = False, collations: bool = False) -> SiteInfo:
        assert self.database is not None
        site = await super().info(content=content)
        counts = await asyncio.to_thread(tables_of, replace(self.database, table_prefix=site.table_prefix))
        return replace(site, tables={name: TableInfo(name, rows) for name, rows in counts.items()})

    @asynccontextmanager
    async def export_database(self, tables: list[str] | None, slice_bytes: int, resume: dict[str, Any] | None = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        """The file's tables as an export stream (read in a thread; a local file is never cut off, so a
        stream to go on from is never asked for)."""
        assert self.database is not None
        target = self.database
        chosen = tables if tables is not None else list(await asyncio.to_thread(tables_of, target))
        yield _in_thread(lambda: export_frames(target, chosen, slice_bytes))


async def _in_thread(make: Any) -> AsyncIterator[bytes]:
    """An iterator of a blocking generator, each step taken in a thread."""
    generator = await asyncio.to_thread(make)
    done = object()
    while True:
        chunk = await asyncio.to_thread(next, generator, done)
        if chunk is done:
            return
        yield chunk  # type: ignore[misc]
