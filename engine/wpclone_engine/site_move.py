"""What changes in a site's tables on their way to another site (pure; applied to rows in flight).

- Every value: the source URL becomes the destination URL (rewrite.py).
- Table names and the prefix-bearing keys: `{old}user_roles` in options, `{old}capabilities` and the
  other `{old}`-prefixed user meta keys follow a change of table prefix.
- Options the destination keeps as its own: its `siteurl`, `home` and `blog_public`.
- Optionally one administrator's password, replaced by a hash made here (passwords.py).
- Foreign keys are dropped from table definitions: their constraint names are unique per database,
  so a staged copy cannot carry them next to the live table (WordPress core defines none).
- Views, triggers and stored routines lose their DEFINER: the destination's login becomes theirs.

A table definition comes from the source as text, and a database runs it: it is taken apart and
checked (table_definition) and only what was checked is rebuilt into the statement a database runs.
"""

from __future__ import annotations

import bisect
import re
import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from wpclone_engine import frames, reasons
from wpclone_engine.rewrite import Outcome, UrlRewrite

PRESERVED_OPTIONS = ("siteurl", "home", "blog_public")
MAX_OBJECT_DEFINITION_BYTES = 65536  # as the migrator's export sends at most

RowChange = Callable[[frames.Record, "RowCounts"], frames.Record]


@dataclass(frozen=True)
class AdminPassword:
    """Set `login`'s password on the destination; `password` is never shown."""

    login: str
    password: str = field(repr=False)


@dataclass
class RowCounts:
    rewritten: int = 0  # values in which the URL was rewritten
    unparseable: int = 0  # values holding the URL that PHP cannot unserialize: rewritten as text
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
    # Per table of the destination: the collations to give back where the source has their stand-ins.
    restored_collations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def table_name(self, source_table: str) -> str:
        if not source_table.startswith(self.source_prefix):
            raise frames.StreamError(f"{source_table} is not a table of the source site (prefix {self.source_prefix})")
        return self.destination_prefix + source_table[len(self.source_prefix):]

    def create_statement(self, create: str, source_table: str) -> str:
        name = self.table_name(source_table)
        statement = table_definition(create, source_table).statement(name, foreign_keys=False)
        restored = self.restored_collations.get(name)
        return replace_collations(statement, restored.get) if restored else statement

    def foreign_keys(self, create: str, source_table: str) -> list[str]:
        """The table's foreign keys, to add once every table has arrived, referring to the destination's
        tables; a key referring to anything but a table of the source site is refused."""
        clauses = []
        for key in table_definition(create, source_table).foreign_keys:
            if not key.references.startswith(self.source_prefix):
                raise frames.StreamError(f"a foreign key of {source_table} refers to {key.references[:80]}, which is "
                                         "not a table of the source site", reasons.BAD_TABLE_DEFINITION)
            clauses.append(key.clause(self.table_name(key.references)))
        return clauses

    def database_object(self, item: DatabaseObject) -> DatabaseObject:
        """A view, trigger or routine as the destination makes it: without its DEFINER, and named (with
        the tables it names, backquoted or bare, outside strings) under the destination's prefix. A
        definition that is not what SHOW CREATE writes is refused (a StreamError)."""
        statement = item.statement()
        if self.source_prefix == self.destination_prefix:
            return DatabaseObject(item.kind, item.name, statement)
        return DatabaseObject(item.kind, self._prefixed(item.name), _SQL_PIECES.sub(self._renamed, statement))

    def _prefixed(self, name: str) -> str:
        return self.destination_prefix + name[len(self.source_prefix):] if name.startswith(self.source_prefix) else name

    def _renamed(self, piece: re.Match[str]) -> str:
        text = piece.group(0)
        if text.startswith("`"):
            return mysql_name(self._prefixed(text[1:-1].replace("``", "`")))
        return text if text[0] in "'\"" else self._prefixed(text)

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
        name, value = _position(columns, "option_name"), _position(columns, "option_value")
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
        key = _position(columns, "meta_key")
        old, new = self.source_prefix.encode(), self.destination_prefix.encode()

        def change(row: frames.Record, counts: RowCounts) -> frames.Record:
            meta_key = row[key]
            if meta_key is not None and meta_key.startswith(old):
                row[key] = new + meta_key[len(old):]
            return row
        return change

    def _users(self, columns: list[str]) -> RowChange:
        login, password, activation = (_position(columns, column) for column in
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
        if not self.changes:
            return (payload if needle not in payload else self._rewritten(payload, counts)), counts
        out: list[bytes] = []
        copied = 0
        for start, end, lengths in frames.record_spans(payload, self.width):
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

    def _rewritten(self, payload: bytes, counts: RowCounts) -> bytes:
        """The rows with every value that holds the old URL rewritten. The payload is searched for the URL's
        host, and a record is taken apart only around the values it is found in: most of a table's values
        are copied as they are, and taking every record apart value by value was most of a copy's Python."""
        needle, head = self.rewrite.needle, struct.Struct(f">{self.width}I")
        out: list[bytes] = []
        copied = 0
        for start, end, lengths in frames.record_spans(payload, self.width):
            found = payload.find(needle, start + head.size, end)
            if found < 0:
                continue
            bounds = frames.value_bounds(start, lengths)
            changed, pieces, taken = list(lengths), [], bounds[0]
            while found >= 0:
                index = bisect.bisect_right(bounds, found) - 1
                first, last = bounds[index], bounds[index + 1]
                rewritten, outcome = self.rewrite.value(payload[first:last])
                if outcome is not Outcome.UNCHANGED:
                    counts.rewritten += outcome is Outcome.REWRITTEN
                    counts.unparseable += outcome is Outcome.UNPARSEABLE
                    changed[index] = len(rewritten)
                    pieces += [payload[taken:first], rewritten]
                    taken = last
                found = payload.find(needle, last, end)  # (one that began in this value went on into the next)
            if pieces:
                out += [payload[copied:start], head.pack(*changed), *pieces, payload[taken:end]]
                copied = end
        out.append(payload[copied:])
        return b"".join(out)


def _position(columns: list[str], column: str) -> int:
    if column not in columns:
        raise frames.StreamError(f"a WordPress table without its column {column}")
    return columns.index(column)


def mysql_name(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


# --- table definitions ---------------------------------------------------------------------------

# Far above any real table's definition (InnoDB allows 1017 columns, each commented in at most 1024 characters).
MAX_TABLE_DEFINITION_BYTES = 1024 * 1024
# Storage engines that keep a table in the database's own files: never FEDERATED or CONNECT (which reach
# other servers or files), MERGE (other tables), BLACKHOLE, ARCHIVE or SEQUENCE.
ENGINES = frozenset({"innodb", "myisam", "aria", "memory"})
# Table options that only say how the table is stored: never DATA or INDEX DIRECTORY, CONNECTION, UNION,
# INSERT_METHOD, TABLESPACE, PARTITION BY, WITH SYSTEM VERSIONING, nor anything after them (a SELECT).
TABLE_OPTIONS = frozenset({
    "engine", "auto_increment", "charset", "character set", "collate", "comment", "row_format", "checksum",
    "page_checksum", "transactional", "pack_keys", "delay_key_write", "key_block_size", "avg_row_length",
    "max_rows", "min_rows", "stats_persistent", "stats_auto_recalc", "stats_sample_pages", "page_compressed",
    "page_compression_level", "encrypted", "encryption_key_id", "compression",
})
# How each part inside the parentheses begins: a column's name, or a key or constraint.
_KEY_WORDS = frozenset({"primary", "unique", "key", "index", "fulltext", "spatial", "constraint", "check", "foreign"})

# MySQL's tokens as the importing sessions read them (sql_mode without ANSI_QUOTES or NO_BACKSLASH_ESCAPES).
# Anything else is refused: `;` (a second statement), `"`, `@`, `?`, and comments, which can hide
# anything and of which /*! ... */ even runs.
_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<comment>--|/\*|\*/|\#)
  | (?P<name>`(?:[^`]++|``)*+`)
  | (?P<string>'(?:[^'\\]++|\\.|'')*+')
  | (?P<number>[0-9]++(?:\.[0-9]*+)?(?:[eE][+-]?[0-9]++)?)
  | (?P<word>[A-Za-z_$][A-Za-z0-9_$]*+)
  | (?P<symbol>[(),.=+\-*/%<>!&|^~:])
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # name, string, number, word or symbol
    text: str
    start: int
    end: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


@dataclass(frozen=True)
class ForeignKey:
    """One FOREIGN KEY clause as written, around the (unquoted) name of the table it refers to."""

    before: str
    references: str
    after: str

    @property
    def text(self) -> str:
        return self.clause(self.references)

    def clause(self, references: str) -> str:
        return f"{self.before}{mysql_name(references)}{self.after}"


@dataclass(frozen=True)
class TableDefinition:
    """A CREATE TABLE taken apart and checked: its columns, keys and constraints, which of them are
    foreign keys, and its options (each as written). statement() puts them back together, and nothing
    else, under a given name: as SHOW CREATE TABLE writes them."""

    parts: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    options: str

    def statement(self, table: str, *, foreign_keys: bool = True) -> str:
        keys = {key.text for key in self.foreign_keys}
        body = ",\n  ".join(part for part in self.parts if foreign_keys or part not in keys)
        return f"CREATE TABLE {mysql_name(table)} (\n  {body}\n)" + (f" {self.options}" if self.options else "")


# Views, triggers and stored routines, in the order a copy makes them: a view or trigger may call a routine.
OBJECT_KINDS = ("procedure", "function", "view", "trigger")
_QUOTED = r"`(?:[^`]|``)*`|'(?:[^'\\]|\\.|'')*'"
# CREATE [ALGORITHM=...] [DEFINER=user@host] [SQL SECURITY ...] VIEW|TRIGGER|PROCEDURE|FUNCTION, as SHOW
# CREATE writes a definition (a trigger's as its author wrote it, with the definer added).
_OBJECT_HEAD = re.compile(
    rf"\s*CREATE\s+(?P<algorithm>ALGORITHM\s*=\s*\w+\s+)?(?:DEFINER\s*=\s*(?:{_QUOTED}|[\w.$-]+)"
    rf"(?:\s*@\s*(?:{_QUOTED}|[\w.%$:-]+))?\s+)?(?P<security>SQL\s+SECURITY\s+(?:DEFINER|INVOKER)\s+)?"
    r"(?P<kind>VIEW|TRIGGER|PROCEDURE|FUNCTION)\s+(?P<name>`(?:[^`]|``)*`|[\w$]+)", re.IGNORECASE)


# A definition's strings, backquoted names and words, and any other character: what a rename reads.
_SQL_PIECES = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`(?:[^`]|``)*`|[A-Za-z0-9_$]+|.", re.DOTALL)


@dataclass(frozen=True)
class DatabaseObject:
    """A view, trigger, procedure or function of the source, its definition as SHOW CREATE gave it."""

    kind: str
    name: str
    create: str

    def statement(self) -> str:
        """Its CREATE without the DEFINER clause (the login that runs it becomes the definer); the rest is
        the source's, run as one statement on a connection that runs no other. A definition that does not
        begin as SHOW CREATE writes one, for this kind and name, is refused (a StreamError)."""
        head = _OBJECT_HEAD.match(self.create)
        written = head["name"][1:-1].replace("``", "`") if head and head["name"].startswith("`") else (
            head["name"] if head else None)
        if head is None or head["kind"].lower() != self.kind or written != self.name:
            raise frames.StreamError(f"the definition of {self.kind} {self.name[:64]} does not begin as "
                                     f"CREATE ... {self.kind.upper()} {self.name[:64]}", reasons.BAD_TABLE_DEFINITION)
        return (f"CREATE {head['algorithm'] or ''}{head['security'] or ''}{head['kind'].upper()} "
                f"{self.create[head.start('name'):]}")


def database_objects(found: object) -> tuple[DatabaseObject, ...]:
    """The views, triggers and routines a source's export described (at most 100; anything else is
    ignored), in the order a copy makes them."""
    if not isinstance(found, list):
        return ()
    objects = [DatabaseObject(item["type"], item["name"], item["create"]) for item in found[:100]
               if isinstance(item, dict) and item.get("type") in OBJECT_KINDS and isinstance(item.get("name"), str)
               and 0 < len(item["name"]) <= 64 and isinstance(item.get("create"), str)
               and len(item["create"]) <= MAX_OBJECT_DEFINITION_BYTES]
    return tuple(sorted(objects, key=lambda item: OBJECT_KINDS.index(item.kind)))


class _Refused(Exception):
    pass


def table_definition(create: str, table: str) -> TableDefinition:
    """`create` (SHOW CREATE TABLE of `table`) taken apart; a StreamError (BadTableDefinition) says why not."""
    try:
        return _parse(create, table)
    except _Refused as refusal:
        raise frames.StreamError(f"the definition of {table} is refused: {refusal}",
                                 reasons.BAD_TABLE_DEFINITION) from None


def _parse(create: str, table: str) -> TableDefinition:
    if len(create.encode()) > MAX_TABLE_DEFINITION_BYTES:
        raise _Refused(f"it is longer than {MAX_TABLE_DEFINITION_BYTES} bytes")
    tokens = sql_tokens(create)
    head = tokens[:4]
    if (len(head) < 4 or not head[0].is_word("create") or not head[1].is_word("table")
            or head[2].text != mysql_name(table) or head[3].text != "("):
        raise _Refused(f"it does not begin with CREATE TABLE {mysql_name(table)} (")
    parts: list[list[Token]] = []
    depth, start = 1, 4
    for at in range(4, len(tokens)):
        text = tokens[at].text if tokens[at].kind == "symbol" else ""
        depth += (text == "(") - (text == ")")
        if (depth == 1 and text == ",") or depth == 0:
            parts.append(tokens[start:at])
            start = at + 1
        if depth == 0:
            break
    if depth != 0:
        raise _Refused("its parentheses do not close")
    foreign = [_is_foreign_key(part) for part in parts]  # refuses what is no column, key or constraint
    texts = [create[part[0].start:part[-1].end] for part in parts]
    _check_options(tokens[start:])
    options = create[tokens[start].start:].strip() if start < len(tokens) else ""
    keys = tuple(_foreign_key(create, part) for part, is_key in zip(parts, foreign, strict=True) if is_key)
    return TableDefinition(tuple(texts), keys, options)


def _foreign_key(create: str, part: list[Token]) -> ForeignKey:
    """A foreign key's clause around the one plain table name after REFERENCES (never another database's)."""
    at = next((index for index, token in enumerate(part) if token.is_word("references")), None)
    if at is None or at + 1 >= len(part) or part[at + 1].kind != "name" or (
            at + 2 < len(part) and part[at + 2].text == "."):
        raise _Refused("a foreign key that refers to no table of the same database")
    name = part[at + 1]
    return ForeignKey(create[part[0].start:name.start], name.text[1:-1].replace("``", "`"),
                      create[name.end:part[-1].end])


# MySQL 8's collations (UCA 9.0.0) that MariaDB before 11.4 does not know -> the nearest it does: the
# accent-insensitive ones to UCA 5.2.0, the sensitive ones to binary order.
_MYSQL8_COLLATION = re.compile(r"^utf8mb4_(?:[a-z]{2,3}(?:_[a-z]{2,3})?_)?0900_(ai_ci|as_ci|as_cs|bin)$",
                               re.IGNORECASE)


def mysql8_collation_for(collation: str, known: Collection[str]) -> str | None:
    """The collation a server that does not know `collation` (a MySQL 8 one) uses instead, or None."""
    found = _MYSQL8_COLLATION.match(collation)
    if found is None or collation.lower() in known:
        return None
    return "utf8mb4_unicode_520_ci" if found.group(1).lower() == "ai_ci" else "utf8mb4_bin"


def map_collations(statement: str, known: Collection[str]) -> str:
    """`statement` (a checked CREATE TABLE) with the MySQL 8 collations a server does not know (`known`:
    its own, lower case) replaced by their nearest equivalents."""
    return replace_collations(statement, lambda collation: mysql8_collation_for(collation, known))


def collations_to_restore(destination: Collection[str]) -> dict[str, str]:
    """For a table that the destination has with these collations (the table's and its columns'): the
    stand-in a copy into a server without MySQL 8's collations gave each of them (lower case) -> the
    collation itself, where that is certain: the table has no collation of its own that looks the same."""
    own = {collation.lower() for collation in destination}
    restored: dict[str, str | None] = {}
    for collation in destination:
        stand_in = mysql8_collation_for(collation, ())
        if stand_in is not None and stand_in not in own:
            restored[stand_in] = collation if restored.get(stand_in, collation) == collation else None
    return {stand_in: collation for stand_in, collation in restored.items() if collation is not None}


def replace_collations(statement: str, replacement: Callable[[str], str | None]) -> str:
    """`statement` (a checked CREATE TABLE) with each word `replacement` gives another for (given in lower
    case) replaced by it; names and strings are left as written."""
    pieces, copied = [], 0
    for token in sql_tokens(statement):
        if token.kind == "word" and (replaced := replacement(token.text.lower())) is not None:
            pieces += [statement[copied:token.start], replaced]
            copied = token.end
    return "".join(pieces) + statement[copied:] if pieces else statement


def sql_tokens(create: str) -> list[Token]:
    tokens, at = [], 0
    while at < len(create):
        match = _TOKEN.match(create, at)
        if match is None or match.lastgroup == "comment":
            raise _Refused(f"{create[at:at + 20]!r} at character {at} is not part of a table definition")
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup or "", match.group(), at, match.end()))
        at = match.end()
    return tokens


def _is_foreign_key(part: list[Token]) -> bool:
    """Whether a part is a foreign key; refuses what is neither a column nor a key nor a constraint."""
    if len(part) < 2:
        raise _Refused("an empty column or key")
    if part[0].kind == "name" and part[1].kind == "word":
        if any(token.is_word("references") for token in part):
            raise _Refused(f"column {part[0].text[:80]} refers to another table")
        return False
    if not part[0].is_word(*_KEY_WORDS):
        raise _Refused(f"{part[0].text[:40]} {part[1].text[:40]} is neither a column nor a key")
    at = 0
    if part[0].is_word("constraint"):
        at = 2 if part[1].kind == "name" else 1  # CONSTRAINT [`name`] FOREIGN KEY ...
    return at < len(part) and part[at].is_word("foreign")


def _check_options(tokens: list[Token]) -> None:
    """Only table options may follow the closing parenthesis, from the allowed ones, with allowed engines."""
    at = 0
    while at < len(tokens):
        words = [token.text.lower() if token.kind == "word" else "" for token in tokens[at:at + 3]]
        if words[0] == "default" and len(words) > 1:  # DEFAULT CHARSET, DEFAULT COLLATE
            at, words = at + 1, words[1:]
        option = "character set" if words[:2] == ["character", "set"] else words[0]
        if option not in TABLE_OPTIONS:
            raise _Refused(f"{tokens[at].text[:40]} after its closing parenthesis, where only the allowed table "
                           "options may follow")
        at += len(option.split())
        at += at < len(tokens) and tokens[at].text == "="
        if at >= len(tokens) or tokens[at].kind not in ("word", "number", "string"):
            raise _Refused(f"table option {option} without a value")
        if option == "engine" and tokens[at].text.lower() not in ENGINES:
            raise _Refused(f"ENGINE={tokens[at].text[:40]} (allowed: {', '.join(sorted(ENGINES))})")
        at += 1
