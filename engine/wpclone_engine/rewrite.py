"""Moving a site to another URL: the one implementation of the search-and-replace of its address.

Every value of every table goes through `UrlRewrite.value`:

- Plain text (post content, JSON, CSS): each occurrence of the old site URL becomes the new one,
  written plainly (`http://old.test/x`) or JSON-escaped (`http:\\/\\/old.test\\/x`). Both `http:` and
  `https:` occurrences take the new URL's scheme; a scheme-relative `//old.test/x` stays
  scheme-relative.
- A value that WordPress would unserialize (the test of `is_serialized()`) is walked token by token:
  every string inside it, at any depth (arrays, objects of any class — no class is ever loaded —,
  strings that hold serialized data themselves) is rewritten and its `s:N:` prefix set to its new
  length in bytes. Everything else (numbers, floats, keys, property names, references, `C:` payloads)
  is copied byte for byte. For speed, small flat arrays (a postmeta's settings, the rows of a list) are
  read by one regex match each, and a value's strings are rewritten together in one pass of the text
  rewrite.
- A value that looks serialized but does not parse (already corrupt, or truncated), or nests deeper
  than MAX_DEPTH and MAX_STRING_DEPTH (a hostile source's), is rewritten as text: its lengths were
  wrong before and stay wrong (PHP rejects it either way, and WordPress then uses the raw string), but
  no production URL stays in the clone for it to call or link to. Such values are reported
  (`Outcome.UNPARSEABLE`) so a copy can say how many there were.

What counts as an occurrence of the old URL `http://a.test/blog`: the exact host and port (compared
as written, lower case) and path, after `http:`, `https:` or `//`, and followed by something that
cannot continue a host name or path segment (a letter, digit, `-`, `_`, `%` or a non-ASCII character
other than closing punctuation does: `http://a.test.рф` and `http://a.test/blog%20news` are not
`http://a.test/blog`'s, but `«http://a.test»` is). So
`http://a.test.uk`, `http://a.test:8080`, `http://www.a.test` and `http://a.test/blogger` are other
sites and stay as they are. Array keys and
property names are not rewritten (as `wp search-replace` does not), nor URL-encoded forms
(`http%3A%2F%2F`).

Rewriting is idempotent unless the old URL occurs inside the new one (`http://a.test` ->
`http://a.test/clone`): then a second pass would rewrite again.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

# PHP's trim(), as maybe_unserialize() applies it before unserialize().
_PHP_WHITESPACE = b" \t\n\r\0\x0b"
# Values are hostile until parsed: deeper than these, a value is left alone (and counted as unparseable).
# Arrays and objects in arrays and objects, read in one pass: as deep as PHP's own default limit
# (unserialize_max_depth), so whatever a site's PHP reads, the rewrite reads too.
MAX_DEPTH = 4096
# Serialized data in a string of serialized data: each level is read again, so the time a value takes
# grows with this depth times its size. Real sites go two or three deep.
MAX_STRING_DEPTH = 8

# Lengths and counts of at most 10 digits (a value is shorter than 4 GiB), so that converting one never
# meets Python's limit of 4300 digits. Quantifiers are possessive (++): a hostile value must not make a
# pattern backtrack over a long run of digits (quadratic time).
_SCALAR = re.compile(rb"(?:i:[+-]?[0-9]++|b:[01]|d:(?:[+-]?(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?"
                     rb"|-?INF|NAN)|[rR]:[0-9]++|N);")
_INTEGER_KEY = re.compile(rb"i:[+-]?[0-9]++;")
_STRING = re.compile(rb's:([0-9]{1,10}):"')
_ARRAY = re.compile(rb"a:([0-9]{1,10}):\{")
_NAMED = re.compile(rb'[OCE]:([0-9]{1,10}):"')  # an object's, Serializable's or enum's class name follows
_MEMBERS = re.compile(rb'":([0-9]{1,10}):\{')
# An array of at most FLAT_MEMBERS members whose keys are integers or strings of at most FLAT_STRING
# bytes and whose values are scalars or strings is read by the regex engine in one match (C speed,
# several times as fast as token by token): its count is checked by spelling its members out (a pattern
# per count, made when first met, in 10-70 ms), each value a group. The lengths of its strings are
# checked there too by spelling every length up to FLAT_STRING out; an array with a longer value string
# is matched again with every value string taken up to its first `";`, and their lengths checked after
# the match (`_flat_with_any_strings`): one that holds `";` or lies about its length sends its array to
# the token-by-token reading. Both read exactly the same grammar.
FLAT_MEMBERS = 8
FLAT_STRING = 255


def _spelled_length_string(limit: int) -> bytes:
    """A pattern for `s:N:"<N bytes>";` with N from 0 to limit, written without leading zeros."""
    def after(digits: bytes) -> bytes:
        branches = [b':".{%d}";' % int(digits)]
        if digits != b"0":
            branches += [digit + after(digits + digit) for digit in map(b"%d".__mod__, range(10))
                         if int(digits + digit) <= limit]
        return b"(?:" + b"|".join(branches) + b")"
    first_digits = [b"%d" % digit for digit in range(min(limit, 9) + 1)]
    return b"s:(?:" + b"|".join(digit + after(digit) for digit in first_digits) + b")"


_FLAT_STRING = _spelled_length_string(FLAT_STRING)
# Up to its first `";`, never further (possessive: a hostile value cannot make it backtrack; runs of
# other bytes than `"` at C speed, three times as fast as a lazy `.*?";`).
_ANY_STRING = rb's:[0-9]{1,10}:"(?:[^"]*+"(?!;))*+[^"]*+";'
_FLAT_KEY = rb"(?:" + _FLAT_STRING + rb"|" + _INTEGER_KEY.pattern + rb")"


def _flat_members(count: int, any_strings: bool) -> bytes:
    """`count` members, each value a group: its strings spelled out, or (any_strings) taken to their `";`."""
    value = _ANY_STRING if any_strings else _FLAT_STRING
    return (_FLAT_KEY + rb"(" + value + rb"|" + _SCALAR.pattern + rb")") * count


@functools.cache
def _flat_array(count: int, any_strings: bool = False) -> re.Pattern[bytes]:
    """The members and closing brace of a flat array of `count` members; value i is group i."""
    return re.compile(_flat_members(count, any_strings) + rb"\}", re.DOTALL)


@functools.cache
def _flat_row(count: int, any_strings: bool = False) -> re.Pattern[bytes]:
    """A member whose value is a flat array of `count` members (value i is group i)."""
    return re.compile(_FLAT_KEY + rb"a:%d:\{" % count + _flat_members(count, any_strings) + rb"\}", re.DOTALL)


def _flat_with_any_strings(pattern: re.Pattern[bytes], data: bytes, at: int) -> re.Match[bytes] | None:
    """What `pattern` (for any value strings) matches at `at`, if each of its value strings is as long as it says."""
    flat = pattern.match(data, at)
    if flat is None:
        return None
    for value, value_end in flat.regs[1:]:
        if data[value] == 0x73:  # a string
            first = data.index(b':"', value) + 2
            if int(data[value + 2:first - 2]) != value_end - 2 - first:
                return None
    return flat


_LOOKS_SERIALIZED = re.compile(rb"(?:[saOE]:[0-9]+:|[bid]:[0-9.E+-]+;$)", re.DOTALL)


# Non-ASCII text continues a host or path (an IDN label, a UTF-8 slug), except the punctuation that
# closes a URL written in running text: «http://a.test», “…”, 「http://a.test」, http://a.test。
_CLOSING_PUNCTUATION = "»”’…。、，）」』】›–—\u00a0"
_NON_ASCII_CONTINUING = (rb"(?=[\x80-\xff])(?!" + b"|".join(re.escape(mark.encode()) for mark in _CLOSING_PUNCTUATION)
                         + rb")")  # the cheap test first: most URLs are followed by ASCII


# http or https in any case; spelled out, as an inline (?i:) group makes every pass about 1.6 times slower.
_HTTP = rb"[Hh][Tt][Tt][Pp][Ss]?"


class Outcome(enum.Enum):
    UNCHANGED = "unchanged"
    REWRITTEN = "rewritten"
    UNPARSEABLE = "unparseable"


class Rewritten(NamedTuple):
    value: bytes
    outcome: Outcome


class _Unparseable(Exception):
    pass


@dataclass(frozen=True)
class SiteUrl:
    """A site's URL in normal form: scheme, lower-case host[:port], path without a trailing slash."""

    scheme: str
    host: str
    path: str

    @classmethod
    def parse(cls, url: str) -> SiteUrl:
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) site URL: {url!r}")
        return cls(parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"


class UrlRewrite:
    """Replaces one site URL with another in database values."""

    def __init__(self, old_url: str, new_url: str) -> None:
        self.old = SiteUrl.parse(old_url)
        self.new = SiteUrl.parse(new_url)
        old_plain = f"{self.old.host}{self.old.path}".encode()
        new_plain = f"{self.new.host}{self.new.path}".encode()
        old_escaped, new_escaped = (url.replace(b"/", b"\\/") for url in (old_plain, new_plain))
        scheme = self.new.scheme.encode() + b":"
        # ...and not the beginning of a longer host name, port or path segment.
        # (The class first: most URLs go on with `/` or a quote, which it turns away at once.)
        continues = (rb"(?=[A-Za-z0-9_\-%.:\x80-\xff])(?:[A-Za-z0-9_\-%]|\.[A-Za-z0-9%]|:[0-9]|\.?"
                     + _NON_ASCII_CONTINUING + rb")")
        end = rb"(?!" + continues + rb")"
        # Passes of re.sub (C speed), in turn while the old host remains: with a scheme, plain and
        # JSON-escaped; then scheme-relative (not after another scheme's colon, nor inside a word).
        forms = [
            (_HTTP + rb"://", old_plain, scheme + b"//", new_plain),
            (_HTTP + rb":\\/\\/", old_escaped, scheme + b"\\/\\/", new_escaped),
            (rb"(?<![:\w])//", old_plain, b"//", new_plain),
            (rb"(?<![:\w])\\/\\/", old_escaped, b"\\/\\/", new_escaped),
        ]
        self._passes = [(re.compile(before + re.escape(old) + end), _template(after + new))
                        for before, old, after, new in forms]
        # The usual form first, in a pattern that begins with letters the regex engine scans for at C
        # speed (about 1.5 times as fast on URL-dense text); the passes above then find what it left.
        self._usual = (re.compile(rb"https?://" + re.escape(old_plain) + end), _template(scheme + b"//" + new_plain))
        # Faster still (bytes.replace, no match objects): when no occurrence of the old host and path
        # goes on into a longer name, every `http://old` and `https://old` is the site's.
        self._continued = re.compile(re.escape(old_plain) + rb"(?=" + continues + rb")")
        self._usual_literals = [(b"http://" + old_plain, scheme + b"//" + new_plain),
                                (b"https://" + old_plain, scheme + b"//" + new_plain)]
        # Passes in turn rewrite as one pass does only when what one writes cannot be read by the next:
        # the new URL holds no old host, and the text around it reads the same at its edges (it ends
        # in a letter or digit as the old one does, and not in a scheme: `…/https` + `://old.test`).
        self._passes_are_one = (self.old.host.encode() not in new_plain and old_plain[-1:].isalnum()
                                and new_plain[-1:].isalnum() and not new_plain.lower().endswith((b"http", b"https")))
        # Otherwise: every form in one pass, each match replaced by its own form's new URL.
        self._one_pass = re.compile(b"|".join(b"(" + before + re.escape(old) + end + b")"
                                              for before, old, _, _ in forms))
        self._one_pass_replacements = [after + new for _, _, after, new in forms]
        # Every occurrence contains the host: bytes without it are passed through untouched.
        self.needle = self.old.host.encode()

    def __repr__(self) -> str:
        return f"UrlRewrite({str(self.old)!r} -> {str(self.new)!r})"

    def text(self, data: bytes) -> bytes:
        """Rewrites `data` as plain text, whatever it holds."""
        if self.needle not in data:
            return data
        if not self._passes_are_one:
            return self._one_pass.sub(self._replacement_of_form, data)
        if self._continued.search(data) is None:
            for literal, replacement in self._usual_literals:
                data = data.replace(literal, replacement)
        else:
            pattern, replacement = self._usual
            data = pattern.sub(replacement, data)
        for pattern, replacement in self._passes:
            if self.needle not in data:
                break
            data = pattern.sub(replacement, data)
        return data

    def _replacement_of_form(self, found: re.Match[bytes]) -> bytes:
        """The new URL in the form the old one was found in (each form is a group of `_one_pass`)."""
        return self._one_pass_replacements[(found.lastindex or 1) - 1]

    def occurrences(self, data: bytes) -> int:
        """How many times the old URL occurs in `data`, in any form this rewrite replaces."""
        if self.needle not in data:
            return 0
        return sum(len(pattern.findall(data)) for pattern, _ in self._passes)

    @property
    def leaves_old_url_checkable(self) -> bool:
        """Whether what remains of the old URL can be counted: not when the new URL holds it."""
        return self.occurrences(str(self.new).encode()) == 0

    def value(self, data: bytes) -> Rewritten:
        """Rewrites one database value: serialized data by its structure, anything else as text."""
        if self.needle not in data:
            return Rewritten(data, Outcome.UNCHANGED)
        if not looks_serialized(data):
            text = self.text(data)
            return Rewritten(text, Outcome.UNCHANGED if text == data else Outcome.REWRITTEN)
        walk = _SerializedWalk(self)
        walked = walk.top(data, 0)
        if walked is None:
            return Rewritten(self.text(data), Outcome.UNPARSEABLE)
        if walk.left_unparseable:
            return Rewritten(walked, Outcome.UNPARSEABLE)
        return Rewritten(walked, Outcome.UNCHANGED if walked == data else Outcome.REWRITTEN)


def _template(replacement: bytes) -> bytes:
    """`replacement` as a re.sub template that stands for itself."""
    return replacement.replace(b"\\", b"\\\\")


def looks_serialized(data: bytes) -> bool:
    """WordPress's is_serialized() in its strict form: what maybe_unserialize() would unserialize."""
    # The trimmed value's ends, found without a trimmed copy (a value may be megabytes of text).
    first, last = 0, len(data)
    while first < last and data[first] in _PHP_WHITESPACE:
        first += 1
    while last > first and data[last - 1] in _PHP_WHITESPACE:
        last -= 1
    if last - first < 4:
        return data[first:last] == b"N;"
    if data[first + 1] != 0x3A or data[last - 1] not in b";}":  # `:` after the type, `;` or `}` at the end
        return False
    if data[first] == 0x73 and data[last - 2] != 0x22:  # a string's closing `"`
        return False
    return _LOOKS_SERIALIZED.match(data, first, last) is not None


class _Pieces:
    """A serialized value being rewritten: spans copied as they are and strings rewritten (`chunks`),
    and the string values to rewrite as text, all of a value's in one call at C speed (`queued`: the
    place of each in `chunks`, and its span)."""

    __slots__ = ("chunks", "queued")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.queued: list[tuple[int, int, int]] = []

    def queue(self, before: bytes, first: int, last: int) -> None:
        """Copies `before`, then holds places for the string value at `first:last` rewritten as text: its
        head (`s:N:"`) and its bytes, apart, so that a long string is copied once, by the final join."""
        self.chunks.append(before)
        self.queued.append((len(self.chunks), first, last))
        self.chunks += (b"", b"")


# A string value that begins otherwise cannot be serialized data (is_serialized() trims whitespace first).
_MAY_BE_SERIALIZED = frozenset(b"saOEbidN" + _PHP_WHITESPACE)


class _SerializedWalk:
    """Scans a serialized value token by token, rewriting its strings and fixing their lengths; the
    spans between rewritten strings are copied as they are."""

    def __init__(self, rewrite: UrlRewrite) -> None:
        self.rewrite = rewrite
        self.left_unparseable = False

    def top(self, data: bytes, depth: int) -> bytes | None:
        """The rewritten value, or None when it does not parse (then it must stay as it is)."""
        if depth > MAX_STRING_DEPTH:
            return None
        start = len(data) - len(data.lstrip(_PHP_WHITESPACE))
        end = len(data.rstrip(_PHP_WHITESPACE))
        try:
            pieces = self._scan(data, start, end, depth)
        except _Unparseable:
            return None
        if not pieces.chunks:
            return data
        chunks, queued = pieces.chunks, pieces.queued
        texts = self._texts([data[first:last] for _, first, last in queued])
        for (place, _, _), text in zip(queued, texts, strict=True):
            chunks[place] = b's:%d:"' % len(text)
            chunks[place + 1] = text
        return b"".join(chunks)

    def _texts(self, texts: list[bytes]) -> list[bytes]:
        """Each of `texts` rewritten as text: all in one pass when a separator can keep them apart (no
        URL form holds a NUL byte, nor does a NUL continue a host or path)."""
        if len(texts) == 1:  # (often one long string: no scan for the separator, no copy to split)
            return [self.rewrite.text(texts[0])]
        joined = b"\0".join(texts)
        if joined.count(b"\0") != len(texts) - 1:
            return [self.rewrite.text(text) for text in texts]
        return self.rewrite.text(joined).split(b"\0")

    def _value_string(self, data: bytes, head: int, first: int, last: int, depth: int,
                      pieces: _Pieces, copied: int) -> int:
        """Rewrites the string value `data[first:last]` (its head `s:N:"` at `head`), which holds the old
        host: serialized data in it is walked at once, text is queued for `top`. Returns how far `data`
        is now copied into `pieces`."""
        if data[first] in _MAY_BE_SERIALIZED and looks_serialized(text := data[first:last]):
            rewritten = self.top(text, depth + 1)
            if rewritten is not None:
                if rewritten is not text:
                    pieces.chunks += [data[copied:head], b's:%d:"' % len(rewritten), rewritten]
                    return last
                return copied
            self.left_unparseable = True
        pieces.queue(data[copied:head], first, last)
        return last

    def _scan(self, data: bytes, at: int, end: int, depth: int) -> _Pieces:
        """The pieces of the rewritten value (none if nothing changed); raises _Unparseable."""
        pieces = _Pieces()
        copied = 0
        left: list[int] = []  # per open array or object: how many keys and values are still to come
        needle = self.rewrite.needle
        while True:
            while left and left[-1] == 0:  # every member read: the container must close here
                if not data.startswith(b"}", at):
                    raise _Unparseable
                at += 1
                left.pop()
                if not left:
                    return self._finish(data, at, end, pieces, copied)
                left[-1] -= 1
            if len(left) > MAX_DEPTH:
                raise _Unparseable
            is_key = bool(left) and left[-1] % 2 == 0
            token = data[at:at + 1]
            if token == b"s":
                head = _STRING.match(data, at)
                if head is None:
                    raise _Unparseable
                first = head.end()
                last = first + int(head.group(1))
                if not data.startswith(b'";', last):
                    raise _Unparseable
                if not is_key and data.find(needle, first, last) >= 0:  # else it stays as it is
                    copied = self._value_string(data, at, first, last, depth, pieces, copied)
                at = last + 2
            elif is_key:
                key = _INTEGER_KEY.match(data, at)
                if key is None:
                    raise _Unparseable
                at = key.end()
            elif token == b"a":
                array = _ARRAY.match(data, at)
                if array is None:
                    raise _Unparseable
                count = int(array.group(1))
                flat = None
                if 0 < count <= FLAT_MEMBERS and len(left) < MAX_DEPTH:
                    flat = (_flat_array(count).match(data, array.end())
                            or _flat_with_any_strings(_flat_array(count, True), data, array.end()))
                if flat is None:
                    left.append(2 * count)
                    at = array.end()
                    continue
                copied = self._flat_values(data, flat, depth, pieces, copied)
                at = flat.end()
                if left:  # its next siblings are often arrays of the same shape (rows): read them here
                    row = _flat_row(count).match
                    while left[-1] >= 3 and ((flat := row(data, at)) is not None or (
                            flat := _flat_with_any_strings(_flat_row(count, True), data, at)) is not None):
                        copied = self._flat_values(data, flat, depth, pieces, copied)
                        left[-1] -= 2
                        at = flat.end()
            elif token in (b"O", b"C", b"E"):
                at, opened = self._named(data, at, token, left)
                if opened:
                    continue
            else:
                scalar = _SCALAR.match(data, at)
                if scalar is None:
                    raise _Unparseable
                at = scalar.end()
            if not left:
                return self._finish(data, at, end, pieces, copied)
            left[-1] -= 1

    def _flat_values(self, data: bytes, flat: re.Match[bytes], depth: int, pieces: _Pieces, copied: int) -> int:
        """Rewrites the string values that hold the old host among a flat array's (the groups of `flat`),
        as `_scan` does; returns how far `data` is now copied into `pieces`."""
        needle = self.rewrite.needle
        for value, value_end in flat.regs[1:]:
            if data[value] == 0x73 and (found := data.find(needle, value, value_end)) >= 0:  # a string with the host
                first = data.index(b':"', value) + 2
                last = value_end - 2
                if not first <= found < last and data.find(needle, first, last) < 0:
                    continue  # the host is in its head, not in the string
                if data[first] in _MAY_BE_SERIALIZED:
                    copied = self._value_string(data, value, first, last, depth, pieces, copied)
                else:  # text, as _value_string would find
                    pieces.queue(data[copied:value], first, last)
                    copied = last
        return copied

    @staticmethod
    def _named(data: bytes, at: int, token: bytes, left: list[int]) -> tuple[int, bool]:
        """Reads past an object's head (then its members are to come: opened), a Serializable (its
        payload is the class's own format, copied as it is) or an enum."""
        named = _NAMED.match(data, at)
        if named is None:
            raise _Unparseable
        name_end = named.end() + int(named.group(1))
        if token == b"E":
            if data[name_end:name_end + 2] != b'";':
                raise _Unparseable
            return name_end + 2, False
        members = _MEMBERS.match(data, name_end)
        if members is None:
            raise _Unparseable
        count = int(members.group(1))
        if token == b"O":
            left.append(2 * count)
            return members.end(), True
        payload_end = members.end() + count
        if data[payload_end:payload_end + 1] != b"}":
            raise _Unparseable
        return payload_end + 1, False

    @staticmethod
    def _finish(data: bytes, at: int, end: int, pieces: _Pieces, copied: int) -> _Pieces:
        if at != end:
            raise _Unparseable
        if pieces.chunks:
            pieces.chunks.append(data[copied:])
        return pieces
