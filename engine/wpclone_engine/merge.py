"""Merge restores: a clone's baseline, and the row-by-row merge of a clone's changes into production
that keeps production's own changes.

The baseline. When a clone is copied, every row of every table with a key (its primary key, else a
unique key of NOT NULL columns: the key the migrator's export walks) gets a baseline entry: the row's
key and two fingerprints, of the row as the source held it and of the row as it arrived in the clone
(after the URL rewrite). A fingerprint is the md5 of the row as the migrator's export streams it (the
frames' record encoding of its values as raw bytes), which the migrator computes on production in the
very same way (export/fingerprints). Recording both sides is what lets the merge compare each side with
itself: nothing is rewritten back to compare (the URL rewrite is not invertible in general: a clone's
own text may hold its URL), and the source is never read again for the baseline. A table without a key
gets one fingerprint of all its rows (their sum, so order does not matter), and production's change of
it is told by the table checksum recorded when the clone was taken. The baseline lives in the clone's
own database, in the table BASELINE_TABLE, outside WordPress's table prefix: the site never sees it.

The merge (merge_clone). For each row: the clone changed it if its fingerprint differs from the clone's
baseline one; production changed it if its fingerprint differs from the source's baseline one. A row
changed on the clone only is written (inserted, updated or deleted); changed in production only, it is
left as production has it; changed on both sides (and not to the same content) it is a conflict, which
the policy settles: Fail (write nothing at all), PreferClone or PreferProduction. Rows that production
keeps by rule (kept_in_production) are never written. The migrator applies what is written in one
transaction, after checking that production still holds, for every key written, what the plan saw.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from wpclone_engine import frames

BASELINE_TABLE = "wpclone_baseline"
BASELINE_CREATE = (b"CREATE TABLE `wpclone_baseline` (`tbl` VARBINARY(64) NOT NULL, `row_key` MEDIUMBLOB NOT NULL, "
                   b"`source_hash` BINARY(16) NULL, `clone_hash` BINARY(16) NOT NULL, `label` VARBINARY(191) NULL, "
                   b"KEY `tbl` (`tbl`)) ENGINE=InnoDB")
MAX_LABEL_BYTES = 191
# The column that names a row in words (in conflicts and changes), by table (without its prefix).
LABEL_COLUMNS = {"options": "option_name", "usermeta": "meta_key", "postmeta": "meta_key", "termmeta": "meta_key",
                 "commentmeta": "meta_key", "posts": "post_title", "users": "user_login",
                 "comments": "comment_author", "terms": "name"}

# Rows a merge never writes, so production keeps its own: its URLs and visibility (a clone has its own);
# the migrator's state; what WordPress rebuilds by itself (transients, cron's schedule, rewrite rules,
# recovery-mode keys, the auto-updater's lock); and users' login sessions (a clone's logins are not
# production's). Active plugins too, unless the restore includes the plugins.
KEPT_OPTIONS = frozenset({b"siteurl", b"home", b"blog_public", b"cron", b"rewrite_rules", b"recovery_keys",
                          b"auto_updater.lock", b"recovery_mode_email_last_sent"})
KEPT_OPTION_PREFIXES = (b"_transient_", b"_site_transient_", b"wpclone_")
PLUGIN_OPTIONS = frozenset({b"active_plugins", b"recently_activated"})
KEPT_USER_META = frozenset({b"session_tokens"})

# The baseline's entries of wp-content's files (a key: the file's stream path; both fingerprints: the
# md5 of its bytes, copied as they are). No table has an empty name.
FILES = ""

Policy = Literal["Fail", "PreferClone", "PreferProduction"]
_ABSENT = bytes(16)  # what the digest of a plan holds for a key production has no row for
MAX_LISTED = 200  # rows listed in words (changes, conflicts); the counts are always whole


def fingerprint(record: bytes) -> bytes:
    """A row's fingerprint: md5 of its record as the export streams it (the migrator: md5(record, true))."""
    return hashlib.md5(record).digest()


def kept_in_production(table: str, label: bytes | None, *, plugins: bool) -> bool:
    """Whether a row of `table` (named without the prefix) is production's by rule; `label` is its label value."""
    if label is None:
        return False
    if table == "options":
        return (label in KEPT_OPTIONS or label.startswith(KEPT_OPTION_PREFIXES)
                or (not plugins and label in PLUGIN_OPTIONS))
    return table == "usermeta" and label in KEPT_USER_META


def key_positions(columns: Sequence[str], key: object) -> tuple[int, ...]:
    """The positions of a table's key columns as a stream's T frame names them; () when it has none (or
    names columns the table does not have: a source is hostile)."""
    if not isinstance(key, list) or not key or len(set(map(str, key))) != len(key):
        return ()
    if not all(isinstance(column, str) and column in columns for column in key):
        return ()
    return tuple(columns.index(column) for column in key)


def label_position(table: str, columns: Sequence[str]) -> int | None:
    column = LABEL_COLUMNS.get(table)
    return columns.index(column) if column in columns else None


# --- the baseline, recorded as a clone is copied ---------------------------------------------------

BaselineRow = tuple[bytes, bytes | None, bytes, bytes | None]  # key, source's fingerprint, clone's, label


@dataclass
class TableBaseline:
    """The baseline entries of one table, from the rows as the source sent them and as the clone got them."""

    name: str  # in production (the source's name)
    width: int
    key: tuple[int, ...]
    label: int | None
    total: int = 0  # a table without a key: the sum of its clone rows' fingerprints

    @classmethod
    def of(cls, name: str, columns: Sequence[str], key: object, unprefixed: str) -> TableBaseline:
        return cls(name, len(columns), key_positions(columns, key), label_position(unprefixed, columns))

    def rows(self, sent: bytes, arrived: bytes) -> list[BaselineRow]:
        """The entries of a rows payload as sent (`sent`) and as rewritten into the clone (`arrived`)."""
        if not self.key:
            for start, end, _ in frames.record_spans(arrived, self.width):
                self.total += int.from_bytes(fingerprint(arrived[start:end]))
            return []
        # No call per value (a row's Python was 2.07x its md5s alone, now 1.57x: bench.bench_baseline), and a
        # payload that arrives as it was sent is walked once.
        md5, key_of, label_at = hashlib.md5, self._key_of(), self.label
        entries: list[BaselineRow] = []
        sent_spans = frames.record_spans(sent, self.width)
        pairs = zip(sent_spans, itertools.repeat(None)) if arrived is sent else \
            zip(sent_spans, frames.record_spans(arrived, self.width), strict=True)
        for (start, end, lengths), arrived_span in pairs:
            record = sent[start:end]
            source = clone = md5(record).digest()
            if arrived_span is not None:
                # Most rows hold no URL and arrive as they were sent: one fingerprint serves both sides.
                as_arrived = arrived[arrived_span[0]:arrived_span[1]]
                clone = source if as_arrived == record else md5(as_arrived).digest()
            label = None if label_at is None else frames.record_value(record, 0, lengths, label_at)
            entries.append((key_of(record, lengths), source, clone, label[:MAX_LABEL_BYTES] if label else label))
        return entries

    def _key_of(self) -> Callable[[bytes, tuple[int, ...]], bytes]:
        """The function that encodes a record's key (as encode_record would its key values)."""
        key = self.key
        if key != (0,):
            return lambda record, lengths: frames.encode_record([frames.record_value(record, 0, lengths, at)
                                                                  for at in key])
        # The first column (most tables' id): its length, then its bytes right after the record's lengths.
        head = 4 * self.width

        def first_column(record: bytes, lengths: tuple[int, ...]) -> bytes:
            length = lengths[0]
            return record[:4] if length == frames.NULL_LENGTH else record[:4] + record[head:head + length]
        return first_column

    def summary(self) -> list[BaselineRow]:
        """A table without a key: its one entry (no key, the sum of its rows' fingerprints)."""
        return [] if self.key else [(b"", None, table_sum(self.total), None)]


def table_sum(total: int) -> bytes:
    return (total % (1 << 128)).to_bytes(16)


# --- the merge's decisions (pure) ------------------------------------------------------------------

@dataclass(frozen=True)
class BaselineEntry:
    source: bytes | None
    clone: bytes
    label: bytes | None


@dataclass
class TableMerge:
    """One keyed table's merge. Fed the clone's rows one by one (clone_row), then asked for the rows the
    clone deleted (deletions); it keeps what is written, what production held for each key written
    (the plan's digest), and the conflicts."""

    name: str
    unprefixed: str
    key_columns: tuple[str, ...]
    baseline: dict[bytes, BaselineEntry]
    production: dict[bytes, bytes]
    policy: Policy
    plugins: bool
    inserts: list[tuple[bytes, str]] = field(default_factory=list)
    updates: list[tuple[bytes, str]] = field(default_factory=list)
    deletes: list[tuple[bytes, str]] = field(default_factory=list)
    conflicts: list[tuple[bytes, str, str]] = field(default_factory=list)  # key, label, what happened
    expected: dict[bytes, bytes | None] = field(default_factory=dict)
    _seen: set[bytes] = field(default_factory=set)

    def clone_row(self, key: bytes, clone: bytes, pushed: bytes, label: bytes | None) -> bool:
        """Whether the clone's row (fingerprints: as the clone holds it, and as it would be written) is written."""
        self._seen.add(key)
        if kept_in_production(self.unprefixed, label, plugins=self.plugins):
            return False
        then, now = self.baseline.get(key), self.production.get(key)
        words = _words(label)
        if then is not None and clone == then.clone:
            return False  # unchanged on the clone
        if now == pushed:
            return False  # production holds it already (a merge that was applied before)
        if then is None:
            if now is None:
                return self._write(self.inserts, key, words, now)
            return self._conflict(key, words, "added on the clone and in production with the same key",
                                  self.updates, now)
        if now == then.source:
            return self._write(self.updates, key, words, now)
        if now is None:
            return self._conflict(key, words, "changed on the clone, deleted in production", self.inserts, now)
        return self._conflict(key, words, "changed on the clone and in production", self.updates, now)

    def deletions(self) -> list[bytes]:
        """The keys of rows the clone deleted that are deleted in production (call once, after every row)."""
        for key, then in self.baseline.items():
            if key in self._seen or kept_in_production(self.unprefixed, then.label, plugins=self.plugins):
                continue
            now = self.production.get(key)
            if now is None:
                continue  # deleted in production too
            if now == then.source:
                self._write(self.deletes, key, _words(then.label), now)
            else:
                self._conflict(key, _words(then.label), "deleted on the clone, changed in production", self.deletes,
                               now)
        return [key for key, _ in self.deletes]

    def digest(self) -> str:
        """What production held for each key written (the migrator computes the same within its transaction)."""
        digest = hashlib.md5()
        for key in sorted(self.expected):
            digest.update(len(key).to_bytes(4) + key + (self.expected[key] or _ABSENT))
        return digest.hexdigest()

    @property
    def written(self) -> int:
        return len(self.inserts) + len(self.updates) + len(self.deletes)

    def _write(self, into: list[tuple[bytes, str]], key: bytes, words: str, now: bytes | None) -> bool:
        into.append((key, words))
        self.expected[key] = now
        return True

    def _conflict(self, key: bytes, words: str, what: str, into: list[tuple[bytes, str]], now: bytes | None) -> bool:
        self.conflicts.append((key, words, what))
        return self.policy == "PreferClone" and self._write(into, key, words, now)

    def describe(self, key: bytes) -> str:
        values = frames.decode_single_record(key, len(self.key_columns))
        return ",".join(f"{column}={_text(value, 40)}" for column, value in zip(self.key_columns, values, strict=True))


def _words(label: bytes | None) -> str:
    return "" if label is None else _text(label, 60)


def _text(value: bytes | None, limit: int) -> str:
    if value is None:
        return "NULL"
    text = value.decode(errors="replace")
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class MergeReport:
    """What a merge writes (or would), in words and counts."""

    changes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    conflict_count: int = 0
    written: int = 0

    def table(self, merge: TableMerge, noun: str = "table") -> None:
        if merge.written:
            self.changes.append(f"{noun} {merge.name}: insert {len(merge.inserts)}, update {len(merge.updates)}, "
                                f"delete {len(merge.deletes)}")
            self.written += merge.written
        for action, rows in (("insert", merge.inserts), ("update", merge.updates), ("delete", merge.deletes)):
            for key, words in rows:
                self._row(f"{action} {merge.name} {merge.describe(key)}" + (f" ({words})" if words else ""))
        for key, words, what in merge.conflicts:
            self.conflict(f"{merge.name} {merge.describe(key)}" + (f" ({words})" if words else "") + f": {what}")

    def whole_table(self, name: str, action: str, rows: int) -> None:
        self.changes.append(f"table {name}: {action} ({rows} rows)")
        self.written += rows

    def conflict(self, text: str) -> None:
        self.conflict_count += 1
        if len(self.conflicts) < MAX_LISTED:
            self.conflicts.append(text)
        elif len(self.conflicts) == MAX_LISTED:
            self.conflicts.append("… and more (the counts are in the message)")

    def _row(self, text: str) -> None:
        if len(self.rows) < MAX_LISTED:
            self.rows.append(text)

    def lines(self) -> list[str]:
        hidden = self.written - len(self.rows)
        return self.changes + self.rows + ([f"… and {hidden} more rows"] if hidden > 0 and self.rows else [])


# --- the clone's auto-increment counters -----------------------------------------------------------

_INTEGER_MAX = {"tinyint": 127, "smallint": 32767, "mediumint": 8388607, "int": 2147483647, "integer": 2147483647,
                "bigint": 9223372036854775807}
_INTEGER = re.compile(r"^(tinyint|smallint|mediumint|int|integer|bigint)\b", re.IGNORECASE)


def raised_counter(column_type: str, next_id: int, offset: int) -> int | None:
    """Where a clone's table numbers its own rows: `offset` above the source's next id, so that rows made
    on the clone and rows made in production meanwhile never share an id; None when the column's type
    has no room for that and as many rows again (it keeps the source's counter)."""
    found = _INTEGER.match(column_type.strip())
    if found is None or offset <= 0:
        return None
    maximum = _INTEGER_MAX[found.group(1).lower()]
    if "unsigned" in column_type.lower():
        maximum = 2 * maximum + 1
    wanted = max(next_id, 1) + offset
    return wanted if wanted + offset <= maximum else None


# --- reading the streams ---------------------------------------------------------------------------

async def read_fingerprints(chunks: AsyncIterator[bytes]) -> dict[str, tuple[tuple[str, ...], dict[bytes, bytes]]]:
    """Production's fingerprints stream: per table its key's columns and {key: fingerprint}."""
    tables: dict[str, tuple[tuple[str, ...], dict[bytes, bytes]]] = {}
    current: dict[bytes, bytes] | None = None
    async for frame in frames.read_frames(chunks):
        if frame.kind == frames.TABLE:
            meta = frame.json()
            key = meta.get("key")
            columns = tuple(key) if isinstance(key, list) and all(isinstance(c, str) for c in key) else ()
            current = {}
            tables[meta["name"]] = (columns, current)
        elif frame.kind == frames.ROWS and current is not None:
            for start, _, lengths in frames.record_spans(frame.payload, 2):
                key, print_ = frames.record_values(frame.payload, start, lengths)
                if key is None or print_ is None or len(print_) != 16:
                    raise frames.StreamError("a fingerprint record needs a key and a 16-byte fingerprint")
                current[key] = print_
        elif frame.kind == frames.TABLE_END:
            frame.json()
            current = None
        elif frame.kind != frames.END:
            raise frames.StreamError(f"unexpected frame {frame.kind!r} in a fingerprints stream")
    return tables


async def read_file_fingerprints(chunks: AsyncIterator[bytes]) -> dict[bytes, bytes]:
    """A file fingerprints stream: {key (the record of the file's stream path): md5}."""
    files: dict[bytes, bytes] = {}
    async for frame in frames.read_frames(chunks):
        if frame.kind == frames.ROWS:
            for start, _, lengths in frames.record_spans(frame.payload, 2):
                path, digest = frames.record_values(frame.payload, start, lengths)
                if not path or digest is None or len(digest) != 16 or len(path) > frames.MAX_PATH_BYTES:
                    raise frames.StreamError("a file fingerprint needs a stream path and a 16-byte md5")
                files[frames.encode_record([path])] = digest
        elif frame.kind != frames.END:
            raise frames.StreamError(f"unexpected frame {frame.kind!r} in a file fingerprints stream")
    return files
