"""The API's apiserver client: where each kind lives, what a refusal says, a rotated token read again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from wpclone_common import apiserver
from wpclone_common.apiserver import ApiError, ApiServer, collection_path


def test_core_and_custom_kinds_live_under_their_groups_paths() -> None:
    assert collection_path("v1", "Secret", "jobs") == "/api/v1/namespaces/jobs/secrets"
    assert (collection_path("wpclone.dev/v1alpha1", "CloneRestore", "jobs")
            == "/apis/wpclone.dev/v1alpha1/namespaces/jobs/clonerestores")


@asynccontextmanager
async def answering(status: int, body: bytes, content_type: str = "application/json") -> AsyncIterator[ApiServer]:
    """A server on loopback that answers every request alike, and a client of it."""
    async def answer(_: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server = ApiServer(aiohttp.ClientSession(f"http://127.0.0.1:{port}"))
    try:
        yield server
    finally:
        await server.close()
        await runner.cleanup()


async def test_a_refusal_carries_the_apiservers_reason_and_message() -> None:
    refusal = b'{"kind":"Status","reason":"Invalid","message":"spec.ttlMinutes: must be <= 1440"}'
    async with answering(422, refusal) as server:
        with pytest.raises(ApiError) as refused:
            await server.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "jobs"}})
    assert (refused.value.status, refused.value.reason, refused.value.message) == (
        422, "Invalid", "spec.ttlMinutes: must be <= 1440")


async def test_a_refusal_that_is_no_status_object_still_says_its_code() -> None:
    async with answering(503, b"<html>upstream down</html>", "text/html") as server:
        with pytest.raises(ApiError) as refused:
            await server.list_objects("v1", "Secret", "jobs", "")
    assert (refused.value.status, refused.value.message) == (503, "Service Unavailable")


async def test_missing_objects_are_none_and_deleting_one_is_false() -> None:
    async with answering(404, b'{"kind":"Status","reason":"NotFound","message":"not found"}') as server:
        assert await server.get("v1", "Secret", "jobs", "gone") is None
        assert await server.delete("v1", "Secret", "jobs", "gone") is False


def test_a_rotated_service_account_token_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token, now = tmp_path / "token", [1000.0]
    monkeypatch.setattr(apiserver.time, "monotonic", lambda: now[0])
    bearer = apiserver._Token(path=token)
    token.write_text("first\n")
    assert bearer.header() == {"Authorization": "Bearer first"}
    token.write_text("second\n")
    assert bearer.header() == {"Authorization": "Bearer first"}  # read at most once a minute
    now[0] += apiserver.TOKEN_REREAD_SECONDS + 1
    assert bearer.header() == {"Authorization": "Bearer second"}


@asynccontextmanager
async def busy_for(refusals: int) -> AsyncIterator[tuple[ApiServer, list[bytes]]]:
    """A server on loopback that answers 429 (Retry-After: 0) `refusals` times, then 201; and the bodies it got."""
    bodies: list[bytes] = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        if len(bodies) <= refusals:
            return web.Response(status=429, headers={"Retry-After": "0"}, content_type="application/json",
                                body=b'{"kind":"Status","reason":"TooManyRequests","message":"initializing"}')
        return web.Response(status=201, body=b'{"metadata": {"name": "s"}}', content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server = ApiServer(aiohttp.ClientSession(f"http://127.0.0.1:{runner.addresses[0][1]}"))
    try:
        yield server, bodies
    finally:
        await server.close()
        await runner.cleanup()


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "jobs"}}


async def test_a_busy_apiserver_is_asked_again_after_its_retry_after_with_the_same_request() -> None:
    async with busy_for(2) as (server, bodies):
        assert await server.create(SECRET) == {"metadata": {"name": "s"}}
    assert len(bodies) == 3 and len(set(bodies)) == 1


async def test_an_apiserver_busy_for_too_long_is_a_refusal_with_its_reason() -> None:
    async with busy_for(100) as (server, bodies):
        with pytest.raises(ApiError) as refused:
            await server.create(SECRET)
    assert (refused.value.status, refused.value.reason) == (429, "TooManyRequests")
    assert len(bodies) == apiserver.BUSY_RETRIES + 1


def test_retry_after_is_kept_within_bounds() -> None:
    assert apiserver._retry_after("2") == 2.0 and apiserver._retry_after(None) == 1.0
    assert apiserver._retry_after("0") == 0.1 and apiserver._retry_after("3600") == apiserver.MAX_RETRY_AFTER
    assert apiserver._retry_after("Wed, 21 Oct 2026 07:28:00 GMT") == 1.0
