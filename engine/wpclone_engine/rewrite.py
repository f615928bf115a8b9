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
  is copied byte for byte.
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
        end = rb"(?![A-Za-z0-9_\-%]|\.[A-Za-z0-9%]|:[0-9]|\.?" + _NON_ASCII_CONTINUING + rb")"
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
        # Every occurrence contains the host: bytes without it are passed through untouched.
        self.needle = self.old.host.encode()

    def __repr__(self) -> str:
        return f"UrlRewrite({str(self.old)!r} -> {str(self.new)!r})"

    def text(self, data: bytes) -> bytes:
        """Rewrites `data` as plain text, whatever it holds."""
        for pattern, replacement in (self._usual, *self._passes):
            if self.needle not in data:
                break
            data = pattern.sub(replacement, data)
        return data

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
    data = data.strip(_PHP_WHITESPACE)
    if data == b"N;":
        return True
    if len(data) < 4 or data[1:2] != b":" or data[-1:] not in (b";", b"}"):
        return False
    if data[:1] == b"s" and data[-2:-1] != b'"':
        return False
    return _LOOKS_SERIALIZED.match(data) is not None


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
        return data if not pieces else b"".join(pieces)

    def _string(self, text: bytes, depth: int) -> bytes:
        if self.rewrite.needle not in text:
            return text
        if not looks_serialized(text):
            return self.rewrite.text(text)
        rewritten = self.top(text, depth + 1)
        if rewritten is None:
            self.left_unparseable = True
            return self.rewrite.text(text)
        return rewritten

    def _scan(self, data: bytes, at: int, end: int, depth: int) -> list[bytes]:
        """The pieces of the rewritten value (none if nothing changed); raises _Unparseable."""
        pieces: list[bytes] = []
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
                    text = data[first:last]
                    rewritten = self._string(text, depth)
                    if rewritten is not text and rewritten != text:
                        pieces += [data[copied:at], b's:%d:"' % len(rewritten), rewritten]
                        copied = last
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
                left.append(2 * int(array.group(1)))
                at = array.end()
                continue
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
    def _finish(data: bytes, at: int, end: int, pieces: list[bytes], copied: int) -> list[bytes]:
        if at != end:
            raise _Unparseable
        if pieces:
            pieces.append(data[copied:])
        return pieces
