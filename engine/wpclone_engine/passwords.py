"""WordPress password hashes, made without WordPress: a clone's admin password is set in the rows on
their way in, before the import is swapped live, so the plain password never reaches the clone.

The format is phpass's portable hash ("$P$" + cost + 8-byte salt + 22 characters of iterated MD5), the
one every WordPress verifies (WordPress 6.8 and later verify it too and upgrade it to bcrypt on the
first login).
"""

from __future__ import annotations

import hashlib
import secrets

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# WordPress's PasswordHash(8, true) on PHP 5+: 2**(8+5) rounds.
_COST_LOG2 = 13


def wordpress_hash(password: str, salt: bytes | None = None) -> str:
    """The portable phpass hash of `password`; `salt` (8 characters of the hash alphabet) for tests."""
    salt = salt if salt is not None else _encode64(secrets.token_bytes(6))
    if len(salt) != 8 or any(char not in _ITOA64 for char in salt):
        raise ValueError("a phpass salt is 8 characters of ./0-9A-Za-z")
    secret = password.encode()
    digest = hashlib.md5(salt + secret).digest()
    for _ in range(1 << _COST_LOG2):
        digest = hashlib.md5(digest + secret).digest()
    return (b"$P$" + _ITOA64[_COST_LOG2:_COST_LOG2 + 1] + salt + _encode64(digest)).decode()


def _encode64(data: bytes) -> bytes:
    """phpass's base64: 6 bits at a time, least significant first, over groups of 3 bytes."""
    out = bytearray()
    for start in range(0, len(data), 3):
        group = data[start:start + 3]
        value = int.from_bytes(group, "little")
        for index in range(len(group) + 1):
            out.append(_ITOA64[(value >> (6 * index)) & 0x3F])
    return bytes(out)
