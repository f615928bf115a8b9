"""One-click login links (pure): what the link carries and how it is signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, urlsplit

from wpclone_api import login_links


def decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_a_link_names_the_user_an_expiry_and_a_nonce_signed_with_a_key_of_the_migrator_token() -> None:
    url = login_links.link("https://shop.clones.example.com/", "migrator-token-123", "admin", 1_900_000_000)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "shop.clones.example.com", "/wp-login.php")
    payload, signature = parse_qs(parts.query)["wpclone-login"][0].split(".")
    data = json.loads(decode(payload))
    assert (data["user"], data["exp"]) == ("admin", 1_900_000_000) and len(data["nonce"]) >= 16
    key = hmac.new(b"migrator-token-123", b"login-link", hashlib.sha256).digest()
    assert decode(signature) == hmac.new(key, payload.encode(), hashlib.sha256).digest()
    assert "migrator-token-123" not in url


def test_every_link_is_another() -> None:
    assert login_links.link("https://a", "t" * 20, "admin", 1) != login_links.link("https://a", "t" * 20, "admin", 1)
