"""The chart's API tokens Secret: tenant tokens, and admin tokens from another key when asked."""

from __future__ import annotations

from tests.unit.test_chart import REQUIRED, env, find, render


def test_admin_tokens_come_from_another_key_of_the_tokens_secret_only_when_named() -> None:
    plain = render(*REQUIRED)
    assert "WPCLONE_API_ADMIN_TOKENS_FILE" not in env(plain, "wpclone-api")
    docs = render(*REQUIRED, "--set", "api.tokens.adminKey=admins")
    (api,) = find(docs, "Deployment", "wpclone-api")
    tokens = next(v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == "tokens")
    assert tokens["secret"] == {"secretName": "api-tokens", "items": [{"key": "tokens", "path": "tokens"},
                                                                      {"key": "admins", "path": "admin-tokens"}]}
    assert env(docs, "wpclone-api")["WPCLONE_API_ADMIN_TOKENS_FILE"] == "/var/run/secrets/wpclone-api/admin-tokens"

