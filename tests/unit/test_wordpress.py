"""The migrator client: errors that name the site and login but never a secret, retries, the plugin zip."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest

from wpclone_engine.wordpress import Migrator, WordPressError, migrator_zip
from wpclone_operator import cloning

SECRET = "S3cret-Passw0rd"


SESSION = "wpcs_" + "5" * 64


def site(handler, **credentials) -> Migrator:  # type: ignore[no-untyped-def]
    """A migrator whose site opens sessions (answering SESSION) and answers every other route with `handler`."""
    def routed(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/wpclone/v1/session"):
            return answer(200, {"token": SESSION, "idle_seconds": 1800, "max_seconds": 86400})
        return handler(request)
    http = httpx.AsyncClient(transport=httpx.MockTransport(routed))
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


async def test_the_login_is_sent_once_for_a_session_whose_token_every_later_call_carries() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/session"):
            return answer(200, {"token": SESSION})
        return answer(200, {"job": "0123456789ab", "max_request_bytes": 1000})
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    source = Migrator(http, "https://shop.example/", login="admin", password=SECRET, role="source")
    await source.begin_import(database=True, tables=None, files=["uploads"])
    await source.begin_import(database=False, tables=["wp_posts"], files=[])
    await Migrator(http, "https://clone.example", token="t" * 32, role="clone").begin_import(
        database=False, tables=None, files=[])
    assert [request.url.path.removeprefix("/wp-json/wpclone/v1/") for request in seen] == [
        "session", "import/begin", "import/begin", "import/begin"]
    assert seen[0].headers["authorization"].startswith("Basic ") and "x-wpclone-token" not in seen[0].headers
    assert all("authorization" not in request.headers for request in seen[1:])
    assert [request.headers["x-wpclone-token"] for request in seen[1:]] == [SESSION, SESSION, "t" * 32]
    assert json.loads(seen[1].content) == {"database": True, "tables": None, "files": ["uploads"], "dropins": False,
                                           "exclude": []}
    assert not seen[1].url.query


async def test_an_expired_session_is_opened_again_once_and_the_call_repeated() -> None:
    tokens = iter(["wpcs_" + "1" * 64, "wpcs_" + "2" * 64, "wpcs_" + "3" * 64])
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path.rsplit("/", 1)[-1], request.headers.get("x-wpclone-token")))
        if request.url.path.endswith("/session"):
            return answer(200, {"token": next(tokens)})
        if request.headers["x-wpclone-token"].startswith("wpcs_1") or len(seen) > 4:
            return answer(401, {"code": "wpclone_bad_token", "message": "The token is not valid for this site."})
        return answer(200, {"state": "open"})
    source = Migrator(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "https://shop.example",
                      login="admin", password=SECRET, role="source")
    assert await source.import_status("0123456789ab") == {"state": "open"}
    with pytest.raises(WordPressError) as failure:  # a token refused right after a new session is not retried
        await source.import_status("0123456789ab")
    assert seen == [("session", None), ("status", "wpcs_" + "1" * 64), ("session", None),
                    ("status", "wpcs_" + "2" * 64), ("status", "wpcs_" + "2" * 64), ("session", None),
                    ("status", "wpcs_" + "3" * 64)]
    assert failure.value.reason == "LoginFailed" and SECRET not in str(failure.value)


async def test_a_throttled_login_has_a_reason_of_its_own() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer(429, {"code": "wpclone_throttled",
                            "message": "Too many failed logins: try again in 840 seconds."})
    source = Migrator(httpx.AsyncClient(transport=httpx.MockTransport(handler)), "https://shop.example",
                      login="admin", password=SECRET, role="source")
    with pytest.raises(WordPressError) as failure:
        await source.info()
    assert failure.value.reason == "LoginThrottled"
    assert str(failure.value) == "source https://shop.example: Too many failed logins: try again in 840 seconds."


async def test_closing_a_session_says_whether_the_plugin_left_and_never_raises() -> None:
    closes: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        closes.append(json.loads(request.content))
        if len(closes) == 1:
            return answer(200, {"closed": True, "removed": True})
        raise httpx.ConnectError("connection refused")
    source = site(handler)
    await source.open_session()
    assert await source.close_session(remove=True) is True and source.session is None
    await source.open_session()
    assert await source.close_session(remove=False) is False  # unreachable: logged, not raised
    assert await source.close_session(remove=True) is False  # no session: nothing sent
    assert closes == [{"remove": True}, {"remove": False}]


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


async def test_a_new_clone_is_asked_until_it_answers_before_anything_is_read() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, content=b"GIF89a")
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    await cloning.until_answering(http, "http://shop.team-a.svc", delays=(0.0, 0.0, 0.0))
    assert calls == ["http://shop.team-a.svc/wp-includes/images/blank.gif"] * 3  # a static file: no WordPress boot


async def test_a_clone_that_never_answers_fails_as_unreachable_after_the_last_delay() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused")
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with pytest.raises(WordPressError) as failure:
        await cloning.until_answering(http, "http://shop.team-a.svc", delays=(0.0, 0.0))
    assert failure.value.reason == "Unreachable" and len(calls) == 3
    assert str(failure.value) == "clone http://shop.team-a.svc does not answer: ConnectError"


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
