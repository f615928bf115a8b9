"""A copy Job's process (`python -m wpclone_operator.copy_runner`): one clone's or one restore's copy, the
same code the operator runs when it copies in-process, its inputs read from the files mounted into the
Job. It reports progress into its owner's status, writes its outcome into its own ConfigMap, and exits
0 (done), 1 (failed: Kubernetes may try again), PERMANENT_EXIT (failed for good) or STOPPED_EXIT (told
to stop: its pod evicted or deleted; no outcome written, the Job's next pod copies again). A pool slot's
standing runner first waits for the plan handed to it in that ConfigMap, and reads its logins through the
apiserver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from pydantic import TypeAdapter, ValidationError

from wpclone_common import constants, kube
from wpclone_common.apiserver import ApiError, ApiServer
from wpclone_common.resources import CloneRestoreSpec, WordPressClone
from wpclone_engine.transfer import CopyResult
from wpclone_engine.wordpress import WordPressError
from wpclone_operator import cloning, copy_jobs, restoring
from wpclone_operator.inputs import FromApi, Inputs, Mounted
from wpclone_operator.settings import CopySettings

log = logging.getLogger("wpclone.copy")
COPY_RESULT = TypeAdapter(CopyResult)
RESTORE_OUTCOME = TypeAdapter(restoring.Outcome)
TERMINATION_LOG = Path("/dev/termination-log")
STOPPED_EXIT = 128 + signal.SIGTERM  # what a shell reports of a process ended by SIGTERM
T = TypeVar("T")


class Stopped(Exception):
    """SIGTERM arrived: the copy was cancelled and its cleanup ran."""


async def until_stopped(work: Awaitable[T]) -> T:
    """`work`, cancelled at SIGTERM (an eviction, a drain, the Job deleted) so that its cleanup runs (an
    import begun is aborted) and the pod ends at once. As its container's PID 1 the runner would otherwise
    ignore SIGTERM and be killed at the end of the grace period, its replacement waiting all that time."""
    task = asyncio.ensure_future(work)
    told = False

    def stop() -> None:
        nonlocal told
        told = True
        task.cancel()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await task
    except asyncio.CancelledError:
        if told:
            raise Stopped from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def handed_plan(standing: copy_jobs.Plan) -> copy_jobs.Plan:
    """The plan the operator hands a standing runner in its ConfigMap once a clone takes its slot: watched
    for (one object, by name: all its account may watch), for as long as the slot stands; a plan that is not
    its clone's (copy_jobs.plan_is_for) is ignored."""
    server = ApiServer.connect(connections=2)  # the watch holds one
    try:
        while True:
            try:
                async for _, config_map in server.watch_objects(
                        "v1", "ConfigMap", standing.namespace, "", field_selector=f"metadata.name={standing.outcome}"):
                    handed = (config_map.get("data") or {}).get(copy_jobs.PLAN_KEY)
                    plan = _plan_in(handed)
                    if plan is not None and await _is_handed(server, plan, standing):
                        log.info("handed the copy of %s %s/%s", plan.kind, plan.namespace, plan.name)
                        return plan
                    if handed:
                        log.warning("a plan that is not its clone's was written into %s: ignored", standing.outcome)
            except (TimeoutError, ApiError, aiohttp.ClientError) as error:
                log.info("watching for a plan: %s; again in 1 s", error)
                await asyncio.sleep(1)
    finally:
        await server.close()


def _plan_in(text: str | None) -> copy_jobs.Plan | None:
    try:
        return copy_jobs.Plan.model_validate_json(text) if text else None
    except ValidationError:
        return None


async def _is_handed(server: ApiServer, plan: copy_jobs.Plan, standing: copy_jobs.Plan) -> bool:
    """Whether the plan's clone, as the apiserver has it, is the one the plan names. The operator lets this
    account read that clone just before it writes the plan: a refusal is looked at again for a few seconds,
    the time the apiserver's authorizer may take to see the new Role."""
    if not copy_jobs.plan_fits(plan, standing):
        return False
    for _ in range(10):
        try:
            live = await server.get(constants.API_VERSION, constants.CLONE_KIND, standing.namespace, plan.name)
        except ApiError as error:
            if error.status != 403:
                raise
            await asyncio.sleep(0.5)
            continue
        return copy_jobs.plan_is_for(plan, standing, live)
    return False


async def run(plan: copy_jobs.Plan, settings: CopySettings, inputs: Inputs) -> dict[str, Any]:
    """The outcome of the plan's copy: {"result": …} of a clone's, {"restore": …} of a restore's."""
    clone = WordPressClone.from_body(plan.clone) if plan.clone is not None else None
    if plan.kind == constants.CLONE_KIND:
        assert clone is not None
        snapshot = (cloning.SnapshotFolder(Path(copy_jobs.SNAPSHOT_MOUNT), plan.snapshot_use)
                    if plan.snapshot_use is not None else None)
        copied = await cloning.copy_into_clone(
            clone, settings, inputs, cloning.progress_reporter(plan.kind, plan.namespace, plan.name),
            snapshot=snapshot)
        kept = {} if copied.snapshot is None else {"snapshot": {"recordedAt": copied.snapshot.recorded_at,
                                                                "bytes": copied.snapshot.bytes}}
        return {"result": COPY_RESULT.dump_python(copied.result, mode="json"), **kept}
    spec = CloneRestoreSpec.model_validate(plan.restore)
    outcome = await restoring.restore(spec, clone, settings, inputs, cloning.progress_reporter(
        plan.kind, plan.namespace, plan.name, {"phase": constants.RESTORING}))
    return {"restore": RESTORE_OUTCOME.dump_python(outcome, mode="json")}


def copied(outcome: dict[str, Any] | None) -> CopyResult | None:
    """A clone's copy as its Job's outcome tells it; None when the outcome is not one (a Job's outcome is
    checked like anything a pod writes)."""
    try:
        return COPY_RESULT.validate_python((outcome or {})["result"])
    except (KeyError, ValidationError):
        return None


def restored(outcome: dict[str, Any] | None) -> restoring.Outcome | None:
    """A restore as its Job's outcome tells it; None when the outcome is not one."""
    try:
        return RESTORE_OUTCOME.validate_python((outcome or {})["restore"])
    except (KeyError, ValidationError):
        return None


def permanent(kind: str, reason: str) -> bool:
    """Whether the Job ends at once: trying again cannot help (an unusable snapshot: the operator deletes it and
    copies again from the site, with a Job of its own)."""
    reasons = cloning.PERMANENT_REASONS if kind == constants.CLONE_KIND else restoring.RESTORE_PERMANENT_REASONS
    return reason in reasons or reason == constants.SNAPSHOT_UNUSABLE


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    plan = copy_jobs.Plan.model_validate_json(os.environ[copy_jobs.PLAN_ENV])
    inputs: Inputs = Mounted(Path(copy_jobs.MOUNTS))
    try:
        if plan.standby:
            # What the copy will ask the apiserver for, looked up before there is anything to copy.
            kube.discover(("v1", "Secret"), ("v1", "ConfigMap"), (constants.API_VERSION, constants.CLONE_KIND))
            log.info("standing by for slot %s/%s", plan.namespace, plan.name)
            plan, inputs = asyncio.run(until_stopped(handed_plan(plan))), FromApi(plan.namespace)
    except Stopped:
        return STOPPED_EXIT
    started = time.monotonic()
    try:
        outcome = {**asyncio.run(until_stopped(run(plan, CopySettings(), inputs))),
                   "seconds": round(time.monotonic() - started, 3)}
        code, summary = 0, "copied"
    except Stopped:
        log.info("%s %s/%s: stopped by SIGTERM, the copy aborted", plan.kind, plan.namespace, plan.name)
        return STOPPED_EXIT
    except WordPressError as error:  # every failure of a copy, with a reason (transfer_errors)
        outcome = {"reason": error.reason, "message": str(error)}
        code = copy_jobs.PERMANENT_EXIT if permanent(plan.kind, error.reason) else 1
        summary = f"{error.reason}: {error}"
    except Exception as error:  # a fault of ours: its trace stays in this pod's log, the owner gets its kind
        log.exception("the copy failed unexpectedly")
        outcome = {"reason": "CopyCrashed", "message": f"the copy failed unexpectedly ({type(error).__name__})"}
        code, summary = 1, f"CopyCrashed: {type(error).__name__}"
    used = os.times()  # what one copy costs, for sizing nodes (bench.bench_copy_jobs reads it)
    log.info("%s %s/%s: %s; %.2f CPU-seconds, %.1f s", plan.kind, plan.namespace, plan.name, summary,
             used.user + used.system, time.monotonic() - started)
    kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": plan.outcome, "namespace": plan.namespace},
                "data": {copy_jobs.OUTCOME_KEY: copy_jobs.outcome_text(outcome)}})
    if TERMINATION_LOG.parent.is_dir():  # what `kubectl describe pod` shows of the ending
        with contextlib.suppress(OSError):
            TERMINATION_LOG.write_text(summary[:4000])
    return code


if __name__ == "__main__":
    sys.exit(main())
