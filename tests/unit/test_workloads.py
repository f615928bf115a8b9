"""The operator's view of its clones' Deployments and pods: from label-filtered watches, once they are synced."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
import pytest

from tests.unit.fake_apiserver import FakeKube
from tests.unit.test_children import make_clone
from wpclone_common import constants
from wpclone_operator import children, copy_jobs, metrics, reconcile, status
from wpclone_operator.reconcile import until_provisioned, watched_workload_condition
from wpclone_operator.settings import Settings
from wpclone_operator.workloads import SELECTOR, Workloads


def workload(kind: str, name: str, namespace: str = "team-a", clone: str = "shop") -> dict[str, Any]:
    labels = {**children.labels(make_clone()), constants.LABEL_CLONE: clone, constants.LABEL_INSTANCE: clone,
              constants.LABEL_COMPONENT: "wordpress"}
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, "labels": labels}}


async def settled() -> None:
    for _ in range(10):  # the watch tasks' turns on the loop
        await asyncio.sleep(0)


def two_clones_watched() -> tuple[FakeKube, Workloads]:
    """An apiserver holding the Deployments of clones shop and blog, and the watches of it."""
    cluster = FakeKube()
    cluster.objects[("Deployment", "shop")] = workload("Deployment", "shop")
    cluster.objects[("Deployment", "blog")] = workload("Deployment", "blog", clone="blog")
    return cluster, Workloads(cluster, [])  # type: ignore[arg-type]  # the fake speaks the same calls


async def test_a_clones_deployment_and_pods_come_from_the_watches_once_synced() -> None:
    cluster, watching = two_clones_watched()
    try:
        assert watching.of(make_clone()) is None  # nothing listed yet: the caller asks the apiserver
        await settled()
        deployment, pods = watching.of(make_clone()) or (None, [])
        assert deployment is not None and deployment["metadata"]["name"] == "shop" and pods == []
        await cluster.create(workload("Pod", "shop-7d9f"))
        await cluster.create(workload("Pod", "blog-5c2a", clone="blog"))
        await settled()
        _, pods = watching.of(make_clone()) or (None, [])
        assert [pod["metadata"]["name"] for pod in pods] == ["shop-7d9f"]
    finally:
        await watching.stop()


def test_the_watches_select_exactly_the_clones_wordpress_workloads() -> None:
    settings = Settings(mysql_admin_dsn="mysql://admin:s3cret@db.internal:3307/", base_domain="clones.test")
    deployment = children.deployment(make_clone(), settings)
    wanted = dict(term.split("=") for term in SELECTOR.split(","))
    assert wanted.items() <= deployment["metadata"]["labels"].items()
    assert wanted.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()



async def test_a_look_at_a_copying_clone_waits_for_its_copys_outcome_and_sees_it_as_it_is_written() -> None:
    cluster = FakeKube()
    outcome = copy_jobs.outcome_config_map(copy_jobs.Owner.of(
        {"kind": "WordPressClone", "metadata": {"name": "shop", "namespace": "team-a", "uid": "u-1"}}, "shop"))
    cluster.objects[("ConfigMap", "shop-copy")] = outcome
    watching = Workloads(cluster, [])  # type: ignore[arg-type]  # the fake speaks the same calls
    try:
        # Not listed yet: nothing is known, the look does not wait.
        began = asyncio.get_running_loop().time()
        assert await watching.until_outcome("team-a", "shop-copy", 30) is False
        assert asyncio.get_running_loop().time() - began < 1
        await settled()
        assert await watching.until_outcome("team-a", "shop-copy", 0.05) is False  # nothing written yet
        waiting = asyncio.create_task(watching.until_outcome("team-a", "shop-copy", 30))
        await settled()
        assert not waiting.done()
        await cluster.merge_patch("v1", "ConfigMap", "team-a", "shop-copy",
                                  {"data": {copy_jobs.OUTCOME_KEY: '{"result": {}}'}})
        assert await asyncio.wait_for(waiting, 1) is True
    finally:
        await watching.stop()


AVAILABLE = {"status": {"availableReplicas": 1, "conditions": [{"type": "Available", "status": "True"}]}}


async def test_a_look_at_a_starting_clone_sees_its_pod_serve_as_soon_as_the_watch_shows_it() -> None:
    cluster, watching = two_clones_watched()
    try:
        await settled()
        # Nothing changes before the look ends: it answers as the pod is.
        soon = time.monotonic() + 0.05
        assert (await watched_workload_condition(make_clone(), watching, soon))["status"] == "False"
        looking = asyncio.create_task(watched_workload_condition(make_clone(), watching, time.monotonic() + 30))
        await settled()
        await cluster.merge_patch("apps/v1", "Deployment", "team-a", "blog", AVAILABLE)  # another clone's
        await cluster.create(workload("Pod", "shop-7d9f"))  # its own, not serving yet
        await settled()
        assert not looking.done()
        await cluster.merge_patch("apps/v1", "Deployment", "team-a", "shop", AVAILABLE)
        serving = await asyncio.wait_for(looking, 1)
        assert (serving["status"], serving["reason"]) == ("True", constants.POD_READY)
    finally:
        await watching.stop()


def provisioning_body(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": kind, "status": state} for kind, state in conditions]}}


async def test_a_new_clones_first_look_waits_for_its_provisioning_but_not_for_a_failed_one_to_be_retried() -> None:
    body = provisioning_body()
    looking = asyncio.create_task(until_provisioned(body, time.monotonic() + 30))  # type: ignore[arg-type]
    await asyncio.sleep(0.3)
    assert not looking.done()
    body["status"] = provisioning_body(("DatabaseReady", "True"), ("ObjectsReady", "True"))["status"]  # as kopf does
    assert await asyncio.wait_for(looking, 1) is True
    stalled = provisioning_body(("DatabaseReady", "False"), ("Stalled", "True"))
    began = time.monotonic()
    assert await until_provisioned(stalled, time.monotonic() + 30) is False  # type: ignore[arg-type]
    assert time.monotonic() - began < 1


def looking_settings() -> Settings:
    return Settings(mysql_admin_dsn="mysql://admin:s3cret@db.internal:3307/", base_domain="clones.test",
                    copy_in="operator", observe_seconds=0.2)


def provisioned_clone_body() -> dict[str, Any]:
    """The clone shop as kopf's body shows it once provisioned (what later looks wrote not shown yet)."""
    provisioned = provisioning_body(("DatabaseReady", "True"), ("ObjectsReady", "True"))["status"]
    return {"metadata": {"name": "shop", "namespace": "team-a", "uid": "1234-abcd", "generation": 2,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"source": {"url": "https://shop.example.com", "credentialsSecretRef": {"name": "login"}}},
            "status": {**provisioned, "phase": constants.PROVISIONING, "expiresAt": "2099-01-01T00:00:00Z"}}


def failures_counted(reason: str) -> float:
    (counter,) = metrics.FAILURES.collect()
    return sum(sample.value for sample in counter.samples
               if sample.name.endswith("_total") and sample.labels.get("reason") == reason)


def provisioned_count() -> float:
    """How many clones wpclone_provisioning_seconds has counted."""
    (histogram,) = metrics.PROVISIONING_SECONDS.collect()
    return next(sample.value for sample in histogram.samples if sample.name.endswith("_count"))


async def test_a_look_that_begins_before_the_watch_shows_the_last_looks_write_neither_copies_nor_tells_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, watching = two_clones_watched()
    await cluster.merge_patch("apps/v1", "Deployment", "team-a", "shop", AVAILABLE)
    copies = []

    async def copy_content(_: Any, clone: Any, *__: Any) -> list[dict[str, Any]]:
        copies.append(clone.name)
        return [status.condition(constants.CONTENT_CLONED, True, "Copied", "copied", clone.generation, status.now())]
    monkeypatch.setattr(reconcile, "_copy_content", copy_content)
    told: list[str] = []  # the events (no event poster outside the operator)
    monkeypatch.setattr(kopf, "info", lambda _, *, reason, message: told.append(reason))
    timed = provisioned_count()
    body, memo = provisioned_clone_body(), kopf.Memo(workloads=watching)
    try:
        await settled()
        for _ in range(3):  # each look's body is the first's: the watch has not shown a write yet
            patch = kopf.Patch()
            await reconcile.observe_clone(body, patch, looking_settings(), memo)  # type: ignore[arg-type]
            assert patch.status["phase"] == constants.PHASE_READY
            assert status.conditions_hold(patch.status["conditions"], constants.CONTENT_CLONED, constants.READY)
        assert copies == ["shop"]
        assert told == ["Ready"] and provisioned_count() == timed + 1
    finally:
        await watching.stop()


async def test_a_pod_problem_is_told_once_though_the_next_looks_body_does_not_show_it_yet(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, watching = two_clones_watched()
    crashing = workload("Pod", "shop-7d9f")
    crashing["status"] = {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    await cluster.create(crashing)
    warned: list[str] = []
    monkeypatch.setattr(kopf, "warn", lambda _, *, reason, message: warned.append(reason))
    counted = failures_counted(constants.POD_CRASH_LOOPING)
    body, memo = provisioned_clone_body(), kopf.Memo(workloads=watching)
    try:
        await settled()
        for _ in range(3):
            patch = kopf.Patch()
            await reconcile.observe_clone(body, patch, looking_settings(), memo)  # type: ignore[arg-type]
            workload_ready = status.find_condition(patch.status["conditions"], constants.WORKLOAD_READY)
            assert workload_ready is not None and workload_ready["reason"] == constants.POD_CRASH_LOOPING
        assert warned == [constants.POD_CRASH_LOOPING]
        assert failures_counted(constants.POD_CRASH_LOOPING) == counted + 1
    finally:
        await watching.stop()


@pytest.mark.parametrize("by_pod_ip", [True, False])
async def test_a_clones_copy_reaches_its_serving_pod_at_the_pods_ip_not_through_its_service(
        monkeypatch: pytest.MonkeyPatch, by_pod_ip: bool) -> None:
    cluster, watching = two_clones_watched()
    await cluster.merge_patch("apps/v1", "Deployment", "team-a", "shop", AVAILABLE)
    serving = workload("Pod", "shop-7d9f")
    serving["status"] = {"podIP": "10.244.0.7", "conditions": [{"type": "Ready", "status": "True"}]}
    await cluster.create(serving)
    endpoints = []

    async def copy_content(_: Any, clone: Any, __: Any, ___: Any, endpoint: str | None) -> list[dict[str, Any]]:
        endpoints.append(endpoint)
        return [status.condition(constants.CONTENT_CLONED, True, "Copied", "copied", clone.generation, status.now())]
    monkeypatch.setattr(reconcile, "_copy_content", copy_content)
    monkeypatch.setattr(kopf, "info", lambda *_, **__: None)
    settings = looking_settings().model_copy(update={"copy_by_pod_ip": by_pod_ip})
    try:
        await settled()
        await reconcile.observe_clone(provisioned_clone_body(), kopf.Patch(), settings,  # type: ignore[arg-type]
                                      kopf.Memo(workloads=watching))
        assert endpoints == [f"http://10.244.0.7:{children.WORDPRESS_PORT}" if by_pod_ip else None]
    finally:
        await watching.stop()
