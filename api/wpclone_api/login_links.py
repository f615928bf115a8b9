"""One-click login links into a clone's wp-admin: signed here, checked by the migrator on the clone
(migrator_plugin/wpclone-migrator-login.php), used once before they expire. A link carries a random
nonce and a signature, never a password; the key is derived from the clone's migrator token, which
only its Secrets and the clone hold."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

PARAM = "wpclone-login"


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def link(clone_url: str, migrator_token: str, user: str, expires: int) -> str:
    """The URL that logs its holder into the clone at `clone_url` as `user`, once, until `expires` (epoch)."""
    key = hmac.new(migrator_token.encode(), b"login-link", hashlib.sha256).digest()
    payload = _encode(json.dumps({"user": user, "exp": expires, "nonce": secrets.token_urlsafe(24)},
                                 separators=(",", ":")).encode())
    signature = _encode(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{clone_url.rstrip('/')}/wp-login.php?{PARAM}={payload}.{signature}"
