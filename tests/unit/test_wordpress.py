"""The migrator client: errors that name the site and login but never a secret, retries, the plugin zip."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from wpclone_operator.wordpress import Migrator, WordPressError, migrator_zip

SECRET = "S3cret-Passw0rd"


def site(handler, **credentials) -> Migrator:  # type: ignore[no-untyped-def]
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Migrator(http, "https://shop.example/", **(credentials or {"login": "admin", "password": SECRET}),
                    role="source", retry_delays=(0.0, 0.0))


def answer(status: int, body: dict[str, object]) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(("status", "body", "reason", "message"), [
    (401, {"code": "wpclone_login_failed", "message": "The login or password is not valid."}, "LoginFailed",
     "source login failed for admin@https://shop.example: 401 The login or password is not valid."),
    (403, {"code": "wpclone_forbidden", "message": "not an administrator"}, "Forbidden",
     "source login admin@https://shop.example may not migrate: 403 not an administrator"),
    (404, {"code": "rest_no_route", "message": "No route"}, "MigratorMissing",
     "the wpclone migrator is not active on source https://shop.example"),
    (500, {"code": "wpclone_database", "message": "disk full"}, "MigratorError",
     "source https://shop.example: info failed: 500 wpclone_database disk full"),
], ids=["401", "403", "no-route", "500"])
async def test_refusals_name_the_site_and_login_and_never_the_password(
        status: int, body: dict[str, object], reason: str, message: str) -> None:
    with pytest.raises(WordPressError) as failure:
        await site(lambda request: answer(status, body)).info()
    assert (failure.value.reason, str(failure.value)) == (reason, message)
    assert SECRET not in str(failure.value)


async def test_requests_carry_basic_auth_or_the_token_and_their_parameters_in_the_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(200, {"job": "0123456789ab", "max_request_bytes": 1000})
    await site(handler).begin_import(database=True, tables=None, files=["uploads"])
    await site(handler, token="t" * 32).begin_import(database=False, tables=["wp_posts"], files=[])
    assert seen[0].url == "https://shop.example/wp-json/wpclone/v1/import/begin" and not seen[0].url.query
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert json.loads(seen[0].content) == {"database": True, "tables": None, "files": ["uploads"]}
    assert seen[1].headers["authorization"] == "Bearer " + "t" * 32


async def test_a_chunk_whose_reply_was_lost_is_sent_again_unchanged() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        if len(bodies) < 3:
            raise httpx.ReadError("connection reset")
        return answer(200, {"seq": 1})
    assert await site(handler).send_chunk("files", [b"H...", b"P..."]) == {"seq": 1}
    assert bodies == [b"H...P..."] * 3


async def test_a_chunk_refused_by_the_site_is_not_sent_again() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return answer(400, {"code": "wpclone_bad_path", "message": "refusing file path"})
    with pytest.raises(WordPressError, match="refusing file path"):
        await site(handler).send_chunk("files", [b"H"])
    assert len(calls) == 1


async def test_an_unreachable_site_is_reported_as_such() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")
    with pytest.raises(WordPressError) as failure:
        await site(handler).info()
    assert failure.value.reason == "Unreachable" and "https://shop.example" in str(failure.value)


def test_a_migrator_needs_credentials() -> None:
    with pytest.raises(ValueError):
        Migrator(httpx.AsyncClient(), "https://shop.example", login="admin")


def test_the_plugin_zip_holds_the_plugin_folder() -> None:
    names = zipfile.ZipFile(io.BytesIO(migrator_zip())).namelist()
    assert "wpclone-migrator/wpclone-migrator.php" in names
    assert all(name.startswith("wpclone-migrator/") and name.endswith(".php") and name.count("/") == 1
               for name in names)


def test_no_zip_is_built_from_a_folder_without_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        migrator_zip(tmp_path)
