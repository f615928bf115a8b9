"""The dashboard's sign-in: a signed, expiring session cookie that names a token without holding it,
and the CSRF token bound to that session (pure).

The cookie carries the token's key (a SHA-256 of it, as the rate limiter names it), an expiry and an
HMAC over both with the session key. It is checked against the token table on every request, so a
token taken out of the table signs its sessions out at once, in every replica."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from wpclone_api import tenants


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_key(secret: str, table: tuple[tenants.ApiToken, ...]) -> bytes:
    """The key that signs sessions: the configured secret, else one derived from every token (the same
    in every replica; changing any token signs everyone out)."""
    material = secret or "\n".join(sorted(entry.token for entry in table))
    return hmac.new(material.encode(), b"wpclone dashboard sessions", hashlib.sha256).digest()


def issue(token: tenants.ApiToken, key: bytes, expires: int) -> str:
    payload = _encode(json.dumps({"k": token.key, "exp": expires}, separators=(",", ":")).encode())
    return f"{payload}.{_encode(hmac.new(key, payload.encode(), hashlib.sha256).digest())}"


def read(cookie: str, key: bytes, table: tuple[tenants.ApiToken, ...], now: int) -> tenants.ApiToken | None:
    """The token a session cookie names, if its signature holds, it has not expired and the token is
    still in the table; else None."""
    payload, _, signature = cookie.partition(".")
    if len(cookie) > 512 or not signature:
        return None
    expected = _encode(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        claims = json.loads(_decode(payload))
    except ValueError:
        return None
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        return None
    return next((entry for entry in table if hmac.compare_digest(entry.key, str(claims.get("k")))), None)


def csrf_token(cookie: str, key: bytes) -> str:
    """What every form of this session must send back: bound to the session, unknown to other sites."""
    return _encode(hmac.new(key, b"csrf:" + cookie.encode(), hashlib.sha256).digest())


def csrf_holds(cookie: str, key: bytes, presented: str) -> bool:
    return hmac.compare_digest(csrf_token(cookie, key).encode(), presented.encode())
