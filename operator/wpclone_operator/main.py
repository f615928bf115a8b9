"""The operator's kopf handlers: startup settings and one call each into plain modules."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from wpclone_common import constants, times
from wpclone_operator import metrics, notify, pools, reconcile, reconcile_restore, snapshots, work_slots, workloads
from wpclone_operator.settings import Settings

CLONES = (constants.GROUP, constants.VERSION, constants.CLONE_PLURAL)
RESTORES = (constants.GROUP, constants.VERSION, constants.RESTORE_PLURAL)
SNAPSHOTS = (constants.GROUP, constants.VERSION, constants.SNAPSHOT_PLURAL)
POOLS = (constants.GROUP, constants.VERSION, constants.POOL_PLURAL)


SNAPSHOT_CHECK_SECONDS = 5.0  # cheap until a snapshot is due: a look at its expiresAt
POOL_CHECK_SECONDS = 2.0  # a pool refills this soon after a slot is taken or turns Ready
FIRST_LOOK_SECONDS = 2.0  # a new clone's first look: by then it is usually provisioned

# Read at import so that a misconfigured operator stops at once with a clear message.
SETTINGS = Settings()  # type: ignore[call-arg]  # fields come from the environment


@kopf.index(*CLONES)
def clone_phases(namespace: str | None, name: str, status: kopf.Status, spec: kopf.Spec,
                 **_: Any) -> dict[tuple[str | None, str], str | None] | None:
    if not spec.get("source"):  # a pool's blank slot is no clone anyone asked for (wpclone_pool_slots)
        return None
    return {(namespace, name): status.get("phase")}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    memo.work_slots = work_slots.WorkSlots(SETTINGS.concurrency)
    # What asyncio.to_thread runs on: the handlers' calls to the apiserver's synchronous client.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(SETTINGS.threads, thread_name_prefix="calls"))
    memo.workloads = workloads.Workloads.connect(SETTINGS.namespaces)
    # Per-object memos are shallow copies of this one: they share this dict with the collector.
    memo.indexes = {}
    if SETTINGS.metrics_port:
        metrics.serve(SETTINGS.metrics_port, lambda: memo.indexes.get("clone_phases", {}))
    # Progress and diff-base in annotations: the status belongs to the users' view only.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.ANNOTATIONS_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.ANNOTATIONS_PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = constants.FINALIZER
    # Watching only some namespaces, the operator has no cluster-wide permission (the Helm chart's namespaced
    # mode): kopf must not list namespaces or watch CRDs, or it retries for a minute and logs errors first.
    settings.scanning.disabled = bool(SETTINGS.namespaces)
    settings.posting.level = logging.WARNING
    # One worker per object by default: at a start among 1,000 clones, all 1,000 handle their resume at
    # once and the process keeps that peak (bench.bench_scale). Objects beyond this wait their turn.
    settings.queueing.worker_limit = SETTINGS.worker_limit
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    # A clone being deleted waits for its timers to stop before its finalizer goes; kopf looks again
    # only every 60 s by default, which would hold a deleted clone (and its namespace) that long.
    settings.background.cancellation_polling = 2


@kopf.on.cleanup()
async def stop_watching(memo: kopf.Memo, **_: Any) -> None:
    await memo.workloads.stop()


@kopf.on.create(*CLONES, id="provision")
@kopf.on.update(*CLONES, id="reprovision", field="spec")
@kopf.on.resume(*CLONES, id="resume")
async def provision_clone(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    async with memo.work_slots.held(work_slots.STARTING):
        await reconcile.provision_clone(body, patch, SETTINGS, retry, memo)


def _observed(status: kopf.Status, **_: Any) -> bool:
    """An Expired clone has no timer: nothing is due for it. A Failed one keeps its timer for its TTL."""
    return status.get("phase") != constants.EXPIRED


# Sharp: a look that waits (reconcile.observe_clone) is followed by the next one as soon as its interval is
# over, not one more interval later. The first look comes soon: once the clone is provisioned (about a
# second), it waits for the pod to serve and starts the copy as it does.
@kopf.timer(*CLONES, id="observe", interval=SETTINGS.observe_seconds,
            initial_delay=min(SETTINGS.observe_seconds, FIRST_LOOK_SECONDS), sharp=True, when=_observed)
async def observe_clone(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    clone_phases = kwargs["clone_phases"]
    memo.indexes["clone_phases"] = clone_phases  # the live index, for the metrics collector
    await reconcile.observe_clone(body, patch, SETTINGS, memo)


@kopf.on.delete(*CLONES, id="cleanup")
async def clean_up_clone(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await notify.expired_before_deletion(body, SETTINGS, memo)
    await reconcile.clean_up_clone(body, SETTINGS, memo)


@kopf.timer(*CLONES, id="notify", interval=1.0,
            when=lambda spec, status, **_: notify.pending(constants.CLONE_KIND, spec, status))
async def notify_clone(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    await notify.on_timer(constants.CLONE_KIND, body, patch, SETTINGS)


@kopf.timer(*RESTORES, id="notify-restore", interval=1.0,
            when=lambda spec, status, **_: notify.pending(constants.RESTORE_KIND, spec, status))
async def notify_restore(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    await notify.on_timer(constants.RESTORE_KIND, body, patch, SETTINGS)


@kopf.on.create(*RESTORES, id="restore", timeout=SETTINGS.copy_retry_seconds)
@kopf.on.resume(*RESTORES, id="resume-restore", timeout=SETTINGS.copy_retry_seconds)
async def restore(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    await reconcile_restore.run_restore(body, patch, SETTINGS, retry, memo.work_slots)


@kopf.timer(*RESTORES, id="restore-job", interval=SETTINGS.observe_seconds, initial_delay=SETTINGS.observe_seconds,
            when=lambda status, **_: SETTINGS.copy_in == "job" and status.get("phase") in (constants.CHECKING,
                                                                                        constants.RESTORING))
async def follow_restore_job(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    await reconcile_restore.advance_job(body, patch, SETTINGS, memo.get("workloads"))


@kopf.timer(*SNAPSHOTS, id="expire-snapshot", interval=SNAPSHOT_CHECK_SECONDS,
            when=lambda status, **_: bool(status.get("expiresAt")))
async def expire_snapshot(body: kopf.Body, **_: Any) -> None:
    if await asyncio.to_thread(snapshots.expire, dict(body), times.now()):
        kopf.info(body, reason="Expired", message="the snapshot's retention ended")


@kopf.timer(*POOLS, id="pool", interval=POOL_CHECK_SECONDS)
async def keep_pool(body: kopf.Body, patch: kopf.Patch, namespace: str | None, name: str, **_: Any) -> None:
    decided = await asyncio.to_thread(pools.reconcile, dict(body), times.now())
    patch.status.update(decided.status)
    metrics.POOL_SLOTS.labels(namespace, name, "ready").set(decided.status["ready"])
    metrics.POOL_SLOTS.labels(namespace, name, "starting").set(decided.status["replicas"] - decided.status["ready"])
