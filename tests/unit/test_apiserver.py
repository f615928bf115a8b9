"""The API's apiserver client: where each kind lives, what a refusal says, a rotated token read again."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from wpclone_common import apiserver
from wpclone_common.apiserver import ApiError, ApiServer, collection_path


def test_core_and_custom_kinds_live_under_their_groups_paths() -> None:
    assert collection_path("v1", "Secret", "jobs") == "/api/v1/namespaces/jobs/secrets"
    assert (collection_path("wpclone.dev/v1alpha1", "CloneRestore", "jobs")
            == "/apis/wpclone.dev/v1alpha1/namespaces/jobs/clonerestores")


def answering(status: int, body: bytes, content_type: str = "application/json") -> ApiServer:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body,
                                                                   headers={"Content-Type": content_type}))
    return ApiServer(httpx.AsyncClient(base_url="https://apiserver", transport=transport))


async def test_a_refusal_carries_the_apiservers_reason_and_message() -> None:
    server = answering(422, b'{"kind":"Status","reason":"Invalid","message":"spec.ttlMinutes: must be <= 1440"}')
    with pytest.raises(ApiError) as refused:
        await server.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "jobs"}})
    assert (refused.value.status, refused.value.reason, refused.value.message) == (
        422, "Invalid", "spec.ttlMinutes: must be <= 1440")


async def test_a_refusal_that_is_no_status_object_still_says_its_code() -> None:
    server = answering(503, b"<html>upstream down</html>", "text/html")
    with pytest.raises(ApiError) as refused:
        await server.list_objects("v1", "Secret", "jobs", "")
    assert (refused.value.status, refused.value.message) == (503, "Service Unavailable")


async def test_missing_objects_are_none_and_deleting_one_is_false() -> None:
    server = answering(404, b'{"kind":"Status","reason":"NotFound","message":"not found"}')
    assert await server.get("v1", "Secret", "jobs", "gone") is None
    assert await server.delete("v1", "Secret", "jobs", "gone") is False


def test_a_rotated_service_account_token_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token, now = tmp_path / "token", [1000.0]
    monkeypatch.setattr(apiserver.time, "monotonic", lambda: now[0])
    auth = apiserver._TokenFile(token)

    def sent() -> str:
        flow = auth.auth_flow(httpx.Request("GET", "https://apiserver/api"))
        return next(flow).headers["Authorization"]

    token.write_text("first\n")
    assert sent() == "Bearer first"
    token.write_text("second\n")
    assert sent() == "Bearer first"  # read at most once a minute
    now[0] += apiserver.TOKEN_REREAD_SECONDS + 1
    assert sent() == "Bearer second"
