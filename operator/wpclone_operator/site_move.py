"""What changes in a site's tables on their way to another site (pure; applied to rows in flight).

- Every value: the source URL becomes the destination URL (rewrite.py).
- Table names and the prefix-bearing keys: `{old}user_roles` in options, `{old}capabilities` and the
  other `{old}`-prefixed user meta keys follow a change of table prefix.
- Options the destination keeps as its own: its `siteurl`, `home` and `blog_public`.
- Optionally one administrator's password, replaced by a hash made here (passwords.py).
- Foreign keys are dropped from table definitions: their constraint names are unique per database,
  so a staged copy cannot carry them next to the live table (WordPress core defines none).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from wpclone_operator import frames
from wpclone_operator.rewrite import Outcome, UrlRewrite

PRESERVED_OPTIONS = ("siteurl", "home", "blog_public")

_FOREIGN_KEY = re.compile(r",\n\s*CONSTRAINT\s+`(?:[^`]|``)+`\s+FOREIGN KEY[^\n]*")

RowChange = Callable[[frames.Record, "RowCounts"], frames.Record]


@dataclass(frozen=True)
class AdminPassword:
    """Set `login`'s password on the destination; `password` is never shown."""

    login: str
    password: str = field(repr=False)


@dataclass
class RowCounts:
    rewritten: int = 0  # values in which the URL was rewritten
    unparseable: int = 0  # values holding the URL left as they were: serialized, but corrupt
    admin_passwords: int = 0  # rows of the administrator whose password was set

    def add(self, other: RowCounts) -> None:
        self.rewritten += other.rewritten
        self.unparseable += other.unparseable
        self.admin_passwords += other.admin_passwords


@dataclass(frozen=True)
class SiteMove:
    rewrite: UrlRewrite
    source_prefix: str
    destination_prefix: str
    # The destination's own values of PRESERVED_OPTIONS (absent ones keep the source's, rewritten).
    preserved_options: Mapping[str, bytes] = field(default_factory=dict)
    admin_login: str | None = None
    admin_hash: str | None = field(default=None, repr=False)

    def table_name(self, source_table: str) -> str:
        if not source_table.startswith(self.source_prefix):
            raise ValueError(f"{source_table} is not a table of the source site (prefix {self.source_prefix})")
        return self.destination_prefix + source_table[len(self.source_prefix):]

    def create_statement(self, create: str, source_table: str) -> str:
        head = f"CREATE TABLE {_name(source_table)} ("
        if not create.startswith(head):
            raise frames.StreamError(f"the definition of {source_table} does not begin with {head!r}")
        return f"CREATE TABLE {_name(self.table_name(source_table))} (" + _FOREIGN_KEY.sub("", create[len(head):])

    def table_rows(self, source_table: str, columns: list[str]) -> TableRows:
        """How the rows of one table change; `columns` in the order of the stream's records."""
        table = self.table_name(source_table)[len(self.destination_prefix):]
        changes: list[RowChange] = []
        if table == "options":
            changes.append(self._options(columns))
        elif table == "usermeta" and self.source_prefix != self.destination_prefix:
            changes.append(self._usermeta(columns))
        elif table == "users" and self.admin_login is not None:
            changes.append(self._users(columns))
        return TableRows(self.rewrite, len(columns), tuple(changes))

    def _options(self, columns: list[str]) -> RowChange:
        name, value = columns.index("option_name"), columns.index("option_value")
        preserved = {key.encode(): self.preserved_options[key] for key in PRESERVED_OPTIONS
                     if key in self.preserved_options}
        old_roles = f"{self.source_prefix}user_roles".encode()
        new_roles = f"{self.destination_prefix}user_roles".encode()

        def change(row: frames.Record, counts: RowCounts) -> frames.Record:
            if row[name] in preserved:
                row[value] = preserved[row[name]]  # type: ignore[index]
            elif row[name] == old_roles:
                row[name] = new_roles
            return row
        return change

    def _usermeta(self, columns: list[str]) -> RowChange:
        key = columns.index("meta_key")
        old, new = self.source_prefix.encode(), self.destination_prefix.encode()

        def change(row: frames.Record, counts: RowCounts) -> frames.Record:
            meta_key = row[key]
            if meta_key is not None and meta_key.startswith(old):
                row[key] = new + meta_key[len(old):]
            return row
        return change

    def _users(self, columns: list[str]) -> RowChange:
        login, password, activation = (columns.index(column) for column in
                                       ("user_login", "user_pass", "user_activation_key"))
        admin = (self.admin_login or "").encode()
        hashed = (self.admin_hash or "").encode()

        def change(row: frames.Record, counts: RowCounts) -> frames.Record:
            if row[login] == admin:
                row[password] = hashed
                row[activation] = b""
                counts.admin_passwords += 1
            return row
        return change


@dataclass(frozen=True)
class TableRows:
    """The changes to the rows of one table."""

    rewrite: UrlRewrite
    width: int
    changes: tuple[RowChange, ...]

    def apply(self, payload: bytes) -> tuple[bytes, RowCounts]:
        """A rows payload as it must arrive; records in which nothing can change are copied as they are."""
        counts = RowCounts()
        needle = self.rewrite.needle
        if not self.changes and needle not in payload:
            return payload, counts
        out: list[bytes] = []
        copied = 0
        for start, end, lengths in frames.record_spans(payload, self.width):
            if not self.changes and payload.find(needle, start, end) < 0:
                continue
            row = frames.record_values(payload, start, lengths)
            for index, value in enumerate(row):
                if value is not None and needle in value:
                    rewritten, outcome = self.rewrite.value(value)
                    row[index] = rewritten
                    counts.rewritten += outcome is Outcome.REWRITTEN
                    counts.unparseable += outcome is Outcome.UNPARSEABLE
            for change in self.changes:
                row = change(row, counts)
            out += [payload[copied:start], frames.encode_record(row)]
            copied = end
        out.append(payload[copied:])
        return b"".join(out), counts


def _name(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"
