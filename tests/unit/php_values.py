"""PHP's serialize() in Python, for tests, and a PHP process that says whether PHP unserializes bytes."""

from __future__ import annotations

import base64
import math
import subprocess
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PhpObject:
    class_name: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Nested:
    """A string that holds a serialized value itself (double serialization, common in plugins)."""

    inner: Any


def dumps(value: Any) -> bytes:
    if value is None:
        return b"N;"
    if isinstance(value, bool):
        return b"b:%d;" % value
    if isinstance(value, int):
        return b"i:%d;" % value
    if isinstance(value, float):
        if math.isnan(value):
            return b"d:NAN;"
        if math.isinf(value):
            return b"d:INF;" if value > 0 else b"d:-INF;"
        return b"d:%s;" % repr(value).encode()
    if isinstance(value, Nested):
        return dumps(dumps(value.inner))
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b's:%d:"%b";' % (len(value), value)
    if isinstance(value, list):
        value = dict(enumerate(value))
    if isinstance(value, dict):
        return b"a:%d:{%b}" % (len(value), _members(value))
    if isinstance(value, PhpObject):
        name = value.class_name.encode()
        return b'O:%d:"%b":%d:{%b}' % (len(name), name, len(value.properties), _members(value.properties))
    raise TypeError(f"cannot serialize {type(value)}")


def _members(items: dict[Any, Any]) -> bytes:
    return b"".join(dumps(key) + dumps(item) for key, item in items.items())


_CHECKER = r"""
while (($line = fgets(STDIN)) !== false) {
    $data = base64_decode(trim($line));
    $value = @unserialize($data, ['allowed_classes' => ['stdClass']]);
    echo ($value === false && $data !== 'b:0;') ? "no\n" : "yes\n";
}
"""


# WordPress's own is_serialized() (strict), from Debian's WordPress: what maybe_unserialize() unserializes.
IS_SERIALIZED = r"""
define('ABSPATH', '/usr/share/wordpress/');
define('WPINC', 'wp-includes');
require ABSPATH . WPINC . '/functions.php';
while (($line = fgets(STDIN)) !== false) {
    echo is_serialized(base64_decode(trim($line))) ? "yes\n" : "no\n";
}
"""


class PhpUnserialize:
    """One long-lived `php` process answering whether unserialize() accepts each value (or, given another
    `checker` program, whatever that program answers yes to)."""

    def __init__(self, checker: str = _CHECKER) -> None:
        self._process = subprocess.Popen(["php", "-r", checker], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, bufsize=0)

    def accepts(self, data: bytes) -> bool:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(base64.b64encode(data) + b"\n")
        return self._process.stdout.readline() == b"yes\n"

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(10)
