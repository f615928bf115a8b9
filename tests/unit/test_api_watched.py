"""The API on its watch of the namespace: answers from what the watch shows, and v1 calls that wait on it
without a thread each."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.unit.fake_apiserver import FakeKube
from tests.unit.test_api_routes import as_, clone_body, settings
from wpclone_api.app import create_app
from wpclone_api.watch_cache import Namespace

WAITING_CALLS = 200


@pytest.fixture
def cluster() -> FakeKube:
    return FakeKube()


@pytest_asyncio.fixture(loop_scope="function")  # the tests' own loop: the watch runs while they wait
async def watched(cluster: FakeKube) -> AsyncIterator[tuple[httpx.AsyncClient, Namespace]]:
    """The app in this test's event loop (no server, no thread), its watch on; the poll is an hour, so
    only a change the watch shows can wake a waiting v1 call."""
    app = create_app(settings(watch_cache=True, poll_seconds=3600, max_clones_per_tenant=1000,
                              max_running_jobs_per_tenant=1000), cluster)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        namespace: Namespace = app.state.namespace
        await until(lambda: namespace.clones.named("none") is None and namespace.clones.labelled("a", "b") == [])
        yield client, namespace


async def until(condition: Any) -> None:
    """Lets the watch task run until `condition()` holds (bounded: a broken watch fails the test)."""
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


async def test_a_retried_clone_request_learns_its_job_from_the_watch_before_anything_is_written(
        watched: tuple[httpx.AsyncClient, Namespace], cluster: FakeKube) -> None:
    client, namespace = watched
    first = await client.post("/api/v2/clone", json=clone_body("shop"), headers=as_("acme"))
    await until(lambda: namespace.clones.named("shop") is not None)
    cluster.calls.clear()
    again = await client.post("/api/v2/clone", json=clone_body("shop"), headers=as_("acme"))
    assert again.status_code == 409 and again.json()["job_id"] == first.json()["job_id"]
    assert cluster.calls == []  # no Secret written and deleted again, no apiserver call at all


async def test_job_status_and_quotas_read_the_watch_not_the_apiserver(
        watched: tuple[httpx.AsyncClient, Namespace], cluster: FakeKube) -> None:
    client, namespace = watched
    job_id = (await client.post("/api/v2/clone", json=clone_body("shop"), headers=as_("acme"))).json()["job_id"]
    await until(lambda: namespace.clones.named("shop") is not None)
    cluster.calls.clear()
    assert (await client.get(f"/api/v2/job-status/{job_id}", headers=as_("acme"))).json()["status"] == "pending"
    assert (await client.post("/api/v2/clone", json=clone_body("shop-2"), headers=as_("acme"))).status_code == 202
    assert cluster.calls == [("create", "Secret"), ("create", "WordPressClone")]  # the writes, nothing read


async def test_waiting_v1_calls_hold_no_thread_and_end_when_the_watch_shows_their_clones_ready(
        watched: tuple[httpx.AsyncClient, Namespace], cluster: FakeKube) -> None:
    client, _ = watched
    threads = threading.active_count()
    names = [f"shop-{index}" for index in range(WAITING_CALLS)]
    calls = [asyncio.create_task(client.post("/clone", json=clone_body(name), headers=as_("acme")))
             for name in names]
    await until(lambda: len(cluster.of_kind("WordPressClone")) == WAITING_CALLS)
    await asyncio.sleep(0.05)  # every call has now passed its first look at its job, and waits
    assert not any(call.done() for call in calls)
    assert threading.active_count() == threads
    for name in names:
        cluster.make_ready(name)
    answers = await asyncio.gather(*calls)
    assert [(answer.status_code, answer.json()["status"], answer.json()["clone_id"]) for answer in answers] == [
        (200, "completed", name) for name in names]
