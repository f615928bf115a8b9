"""Hostile export streams, fuzzed end to end. Random and bent streams go through the operator's reader,
URL rewrite and importer into a throwaway MariaDB (a clone's path) or towards a target's migrator (a
restore's path), and bent database chunks go through the migrator's own import in PHP. Each is refused
with a reason and leaves the destination as it was, or, well-formed, is imported exactly; none hangs
(hypothesis's deadline, an asyncio timeout, and a watchdog for loops that never await)."""

from __future__ import annotations

import asyncio
import base64
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomysql
import pymysql
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testenv.mariadb import MariaDB, start_mariadb
from tests.security.hostile_input import (
    EXAMPLE_SECONDS,
    STRUCTURAL,
    Bend,
    Frames,
    Table,
    Tally,
    bends,
    export_stream,
    import_chunk,
    php,
    php_definitions,
    report,
    tables,
    watchdog,
)
from wpclone_common import constants
from wpclone_engine import frames
from wpclone_engine.database_import import DatabaseImport, DatabaseTarget
from wpclone_engine.site_move import table_definition
from wpclone_engine.transfer import DatabaseDestination, Include, TransferError, copy_site
from wpclone_engine.wordpress import ImportJob, SiteInfo

DATABASE_ONLY = Include(uploads=False, themes=False, plugins=False)
SOURCE = "http://source.test"
# A copy's answer to a hostile stream: a reason of its own, or the database's refusal of a statement.
REFUSALS = {constants.MALFORMED_STREAM, constants.BAD_TABLE_DEFINITION, constants.BAD_STREAM, "DatabaseError"}
MIGRATOR_REFUSALS = {"malformed_stream", "malformed_rows", "bad_table", "bad_table_definition", "row_count",
                     "database"}
LIVE = {"wp_live": [(1, b"live")]}  # what each destination holds before each example
CLONE_TALLY = Tally("stream into a clone's database (operator)")
RESTORE_TALLY = Tally("stream towards a target (operator)")
MIGRATOR_TALLY = Tally("chunk into a target (migrator, PHP)")
FUZZ = settings(deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def fuzz_report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    report(request, [CLONE_TALLY, RESTORE_TALLY, MIGRATOR_TALLY])


@pytest.fixture(scope="module")
def scratch_mariadb() -> Iterator[MariaDB]:
    # Not under pytest's own temporary folder: any other pytest run on the machine takes the others' way
    # through it away again (chmod 0700), and MyISAM and Aria then cannot create their files.
    with tempfile.TemporaryDirectory(prefix="wpclone-hostile-streams-") as folder:
        server = start_mariadb(Path(folder))
        server.sql("CREATE DATABASE clone; CREATE DATABASE target; CREATE DATABASE definitions; "
                   "CREATE DATABASE rebuilt")
        yield server
        server.stop()


class Database:
    """A database of the scratch server, read and reset over a connection of its own."""

    def __init__(self, server: MariaDB, name: str) -> None:
        self.server, self.name = server, name
        self.connection = pymysql.connect(host=server.host, port=server.port, user=server.admin_user,
                                          password=server.admin_password, database=name, autocommit=True,
                                          use_unicode=False)

    def run(self, statement: str) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())

    def tables(self) -> list[str]:
        return sorted(row[0].decode() for row in self.run("SHOW TABLES"))

    def contents(self) -> dict[str, list[tuple[Any, ...]]]:
        return {table: sorted(self.run(f"SELECT * FROM `{table}`"), key=repr) for table in self.tables()}

    def reset(self) -> None:
        for table in self.tables():
            self.run(f"DROP TABLE `{table}`")
        self.run("CREATE TABLE wp_live (id int PRIMARY KEY, v varbinary(16)) ENGINE=InnoDB")
        self.run("INSERT INTO wp_live VALUES (1, 'live')")

    @property
    def target(self) -> DatabaseTarget:
        return DatabaseTarget(self.server.host, self.server.port, self.server.admin_user, self.server.admin_password,
                              self.name, "wp_")

    @property
    def php_env(self) -> dict[str, str]:
        return {"WPCLONE_DB_HOST": f"{self.server.host}:{self.server.port}", "WPCLONE_DB_USER": self.server.admin_user,
                "WPCLONE_DB_PASSWORD": self.server.admin_password, "WPCLONE_DB_NAME": self.name}


@pytest.fixture(scope="module")
def clone(scratch_mariadb: MariaDB) -> Database:
    return Database(scratch_mariadb, "clone")


@pytest.fixture(scope="module")
def target(scratch_mariadb: MariaDB) -> Database:
    database = Database(scratch_mariadb, "target")
    database.reset()
    return database


@pytest.fixture(scope="module")
def migrator_env(target: Database, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {**target.php_env, "WPCLONE_CONTENT_DIR": str(tmp_path_factory.mktemp("wp-content"))}


def site(url: str) -> SiteInfo:
    return SiteInfo(home=url, siteurl=url, table_prefix="wp_", tables={}, options={}, mode="plugin",
                    max_request_bytes=1 << 20, backups=[], versions={})


@dataclass
class HostileSource:
    """A source whose export is `stream`, arriving in pieces of `piece` bytes."""

    stream: bytes
    piece: int
    url: str = SOURCE

    async def info(self, **_: object) -> SiteInfo:
        return site(self.url)

    @asynccontextmanager
    async def export_database(self, tables: object, slice_bytes: int, resume: object = None,
                              ) -> AsyncIterator[AsyncIterator[bytes]]:
        yield self._pieces()  # asked to go on after a break, the same stream again

    async def _pieces(self) -> AsyncIterator[bytes]:
        for at in range(0, len(self.stream), self.piece):
            yield self.stream[at:at + self.piece]


@dataclass
class RecordingTarget:
    """A target's migrator that takes every chunk (its own checks are the PHP tests' business)."""

    url: str = "http://target.test"
    build: str | None = None  # a release it does not report: database chunks go one at a time
    chunks: list[bytes] = field(default_factory=list)
    committed: bool = False
    aborted: bool = False

    async def info(self, **_: object) -> SiteInfo:
        return site(self.url)

    async def begin_import(self, **_: object) -> ImportJob:
        return ImportJob("0123456789ab", max_request_bytes=1 << 20)

    async def send_chunk(self, kind: str, body: list[bytes]) -> dict[str, Any]:
        self.chunks.append(b"".join(body))
        return {}

    async def commit_import(self, job: str, **_: object) -> dict[str, Any]:
        self.committed = True
        return {"backup": None}

    async def abort_import(self, job: str | None = None) -> None:
        self.aborted = True


async def copy(source: HostileSource, destination: Any) -> str:
    """"imported", or the reason the copy was refused for."""
    try:
        await asyncio.wait_for(copy_site(source, destination, include=DATABASE_ONLY),  # type: ignore[arg-type]
                               EXAMPLE_SECONDS)
    except TransferError as refusal:
        assert refusal.reason in REFUSALS, refusal
        return refusal.reason
    return "imported"


def tables_frames(sent: list[Table]) -> Frames:
    return [frame for table in sent for frame in table.frames()]


def rows_of(sent: list[Table]) -> dict[str, list[tuple[Any, ...]]]:
    return {table.name: sorted(table.rows, key=repr) for table in sent}


@settings(FUZZ, max_examples=150)
@given(sent=tables(), bend=bends, piece=st.integers(1, 4096))
def test_a_hostile_stream_into_a_clones_database_is_refused_and_leaves_it_as_it_was(
        clone: Database, sent: list[Table], bend: Bend, piece: int) -> None:
    clone.reset()
    stream = bend.apply(tables_frames(sent), export_stream)
    with CLONE_TALLY.example(bend) as outcome, watchdog():
        result = asyncio.run(copy(HostileSource(stream, piece), DatabaseDestination(clone.target, "http://clone.test")))
        outcome(result)
    after = clone.contents()
    if bend == Bend():
        assert (result, after) == ("imported", rows_of(sent))
    elif result == "imported":  # bent into another well-formed stream
        assert not [table for table in after if table.startswith("wpc")], "staging tables were left behind"
    else:
        assert after == LIVE


def received(chunks: list[bytes]) -> dict[str, list[tuple[bytes | None, ...]]]:
    """The rows of each table in the chunks a target received."""
    rows: dict[str, list[tuple[bytes | None, ...]]] = {}
    table: tuple[str, int] = ("", 0)
    for chunk in chunks:
        for frame in frames.FrameReader().feed(chunk):
            if frame.kind == frames.TABLE:
                table = (frame.json()["name"], len(frame.json()["columns"]))
                rows[table[0]] = []
            elif frame.kind == frames.ROWS:
                rows[table[0]] += [tuple(row) for row in frames.decode_records(frame.payload, table[1])]
    return {name: sorted(found, key=repr) for name, found in rows.items()}


@settings(FUZZ, max_examples=300)
@given(sent=tables(), bend=bends, piece=st.integers(1, 4096))
def test_a_hostile_stream_towards_a_target_is_refused_before_anything_is_committed(
        sent: list[Table], bend: Bend, piece: int) -> None:
    destination = RecordingTarget()
    stream = bend.apply(tables_frames(sent), export_stream)
    with RESTORE_TALLY.example(bend) as outcome, watchdog():
        result = asyncio.run(copy(HostileSource(stream, piece), destination))
        outcome(result)
    assert destination.committed == (result == "imported") and destination.aborted == (result != "imported")
    if bend == Bend():
        assert (result, received(destination.chunks)) == ("imported", rows_of(sent))


@settings(FUZZ, max_examples=80)
@given(sent=tables(), bend=bends)
def test_a_hostile_chunk_into_the_migrators_import_is_refused_and_leaves_nothing_behind(
        target: Database, migrator_env: dict[str, str], sent: list[Table], bend: Bend) -> None:
    chunk = bend.apply(tables_frames(sent), import_chunk)
    with MIGRATOR_TALLY.example(bend) as outcome, watchdog():
        answer = php("chunk", chunk, migrator_env)
        outcome(answer.get("error", "imported"))
    assert answer.get("error", "imported") in MIGRATOR_REFUSALS | {"imported"}, answer
    if bend == Bend():
        assert "error" not in answer and all(table["done"] for table in answer["tables"].values())
        assert staged_rows(answer) == rows_of(sent)
    assert target.contents() == LIVE  # staging only, and dropped: the live tables never change


def staged_rows(answer: dict[str, Any]) -> dict[str, list[tuple[bytes | None, ...]]]:
    """The rows the migrator staged, as the PHP harness reports them (values in base64)."""
    return {name: sorted((tuple(None if value is None else base64.b64decode(value) for value in row)
                          for row in table["rows"]), key=repr)
            for name, table in answer["tables"].items()}


async def test_a_second_statement_never_runs_on_the_operators_connection(clone: Database) -> None:
    clone.reset()
    stacked = "CREATE TABLE wp_x (a int); DROP TABLE wp_live"
    plain = await aiomysql.connect(host=clone.server.host, port=clone.server.port, user=clone.server.admin_user,
                                   password=clone.server.admin_password, db="clone", autocommit=True)
    async with plain.cursor() as cursor:  # aiomysql's own connection runs both: why the importer has its own
        await cursor.execute("SELECT 1; SELECT 2")
    plain.close()
    importer = await DatabaseImport.open(clone.target)
    try:
        with pytest.raises(pymysql.err.ProgrammingError, match="1064"):
            await importer._execute(stacked.encode())
    finally:
        importer.close()
    assert clone.contents() == LIVE


@pytest.mark.parametrize("flags", [None, str(1 << 16)], ids=["default", "multi-statements-asked-for"])
def test_a_second_statement_never_runs_on_the_migrators_connection(
        target: Database, migrator_env: dict[str, str], flags: str | None) -> None:
    env = {**migrator_env, **({"WPCLONE_CLIENT_FLAGS": flags} if flags else {})}
    answer = php("query", b"CREATE TABLE wp_x (a int); DROP TABLE wp_live", env)
    assert answer["error"] == "database" and "syntax" in answer["message"], answer
    assert target.contents() == LIVE


# Tables as WordPress and plugins write them (every kind of column, key, constraint, engine and option).
REAL_TABLES = [statement for statement in Path(__file__).with_name("real_tables.sql").read_text().split(";\n")
               if statement.strip()]


def test_definitions_a_server_writes_are_accepted_and_rebuilt_exactly(scratch_mariadb: MariaDB) -> None:
    written, rebuilt = Database(scratch_mariadb, "definitions"), Database(scratch_mariadb, "rebuilt")
    for statement in REAL_TABLES:
        written.run(statement)
    for table in sorted(written.tables(), key=lambda name: name == "wp_child"):  # its parent first
        quoted = "`" + table.replace("`", "``") + "`"
        create = written.run(f"SHOW CREATE TABLE {quoted}")[0][1].decode()
        assert table_definition(create, table).statement(table) == create
        assert php_definitions([create], table, table) == [{"statement": create}]
        rebuilt.run(create)
        assert rebuilt.run(f"SHOW CREATE TABLE {quoted}")[0][1].decode() == create


def test_a_quote_escaped_in_a_comment_is_read_as_the_server_reads_it(clone: Database) -> None:
    clone.reset()
    create = "CREATE TABLE `wp_t0` (\n  `a` int COMMENT 'x\\'); DROP TABLE wp_live; -- '\n) ENGINE=InnoDB"
    clone.run(table_definition(create, "wp_t0").statement("wp_t0"))
    assert clone.tables() == ["wp_live", "wp_t0"]
    [(comment,)] = clone.run("SELECT COLUMN_COMMENT FROM information_schema.COLUMNS WHERE TABLE_NAME = 'wp_t0'")
    assert comment == b"x'); DROP TABLE wp_live; -- "


# The fuzzed tests above draw a structural bend in few of their examples: here each is tried once, on each path.
SAMPLE = [Table("wp_t0", ("id", "v"), ((b"1", b"one"), (b"2", None))), Table("wp_t1", ("k",), ((b"",),), "Aria")]


@pytest.mark.parametrize("bend", sorted(STRUCTURAL))
def test_each_way_of_bending_a_stream_is_refused_on_every_path(
        clone: Database, target: Database, migrator_env: dict[str, str], bend: str) -> None:
    bent = Bend(structural=bend)
    clone.reset()
    stream = bent.apply(tables_frames(SAMPLE), export_stream)
    with watchdog():
        into_clone = asyncio.run(copy(HostileSource(stream, 7), DatabaseDestination(clone.target, "http://c.test")))
        towards_target = asyncio.run(copy(HostileSource(stream, 7), RecordingTarget()))
        answer = php("chunk", bent.apply(tables_frames(SAMPLE), import_chunk), migrator_env)
    assert into_clone != "imported" and clone.contents() == LIVE
    assert towards_target != "imported"
    assert answer.get("error") in MIGRATOR_REFUSALS, answer
    assert target.contents() == LIVE
