"""What each kopf handler does, between kopf's objects (body, patch, errors) and the plain modules."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from wpclone_common import constants, kube
from wpclone_common.resources import Condition, WordPressClone
from wpclone_engine.transfer import CopyResult
from wpclone_engine.wordpress import WordPressError
from wpclone_operator import (
    children,
    cloning,
    copy_job_control,
    copy_jobs,
    copy_runner,
    credentials,
    expiry,
    inputs,
    metrics,
    pools,
    provision,
    snapshots,
    status,
    work_slots,
    workloads,
)
from wpclone_operator.settings import Settings

# How often a new clone's first look sees whether it is provisioned yet (a look at a dict in memory).
PROVISIONED_POLL_SECONDS = 0.25


def _current_conditions(clone: WordPressClone) -> list[dict[str, Any]]:
    return [condition.model_dump() for condition in clone.status.conditions]


async def provision_clone(body: kopf.Body, patch: kopf.Patch, settings: Settings, retry: int,
                          memo: kopf.Memo) -> None:
    clone = WordPressClone.from_body(body)
    if clone.status.phase == constants.EXPIRED or pools.is_taken(body):  # a taken slot's objects are a clone's
        return
    if clone.status.expiresAt is not None and status.is_expired(clone.status.expiresAt, status.now()):
        # Due while the operator was away: the timer expires it; provisioning again would race that
        # and write back the conditions of a live clone over the expired one's.
        return
    ttl = status.effective_ttl_minutes(clone.spec.ttlMinutes, settings.default_ttl_minutes,
                                       settings.max_ttl_minutes)
    if clone.spec.ttlMinutes is not None and ttl < clone.spec.ttlMinutes:
        kopf.warn(body, reason="TTLCapped",
                  message=f"ttlMinutes {clone.spec.ttlMinutes} exceeds the maximum {ttl}; using {ttl}")
    patch.status["expiresAt"] = status.expires_at(clone.created, ttl)
    patch.status["observedGeneration"] = clone.generation
    if clone.status.phase in (None, constants.PENDING, constants.FAILED):
        patch.status["phase"] = constants.PROVISIONING
    try:
        clone = await _take_slot(body, patch, clone, settings)
        if not children.is_slot(clone):  # a blank slot has no login to give: a clone names its own
            patch.status["adminSecretRef"] = {"name": children.admin_secret_name(clone)}
        earned = await provision.provision(clone, settings)
        if children.is_slot(clone) and settings.copy_in == "job":
            await _stand_by(body, clone, settings)
    except provision.ProvisionFailure as failure:
        _record_failure(body, patch, clone, failure)
        if failure.permanent:
            raise kopf.PermanentError(failure.message) from None
        raise kopf.TemporaryError(failure.message, delay=status.retry_delay(retry, settings.retry_delay_seconds)) \
            from None
    patch.status["conditions"] = status.merge_conditions(_current_conditions(clone), earned + _not_done_yet(clone))
    patch.status["message"] = None
    if clone.status.slot is not None and clone.status.phase != constants.PHASE_READY:
        # The slot's pod serves already: the copy starts now, not at the observe timer's first tick.
        provisioned = clone.status.model_copy(update={"conditions": [
            Condition.model_validate(condition) for condition in patch.status["conditions"]]})
        await _follow_workload(body, patch, clone.model_copy(update={"status": provisioned}), settings, memo,
                               look_ends=time.monotonic())  # nothing waited for: the timer's looks do that


async def _take_slot(body: kopf.Body, patch: kopf.Patch, clone: WordPressClone, settings: Settings) -> WordPressClone:
    """A new clone takes a ready slot of its pool when there is one (pools.py): the clone with status.slot."""
    if children.is_slot(clone):
        if not pools.slot_of(dict(body), pools.pool_uid_of(body)):
            raise provision.ProvisionFailure(constants.READY, constants.NO_SOURCE, "spec.source is required: only a "
                                             "WordPressClonePool makes clones without one", permanent=True)
        return clone
    pool = pools.pool_name(clone, settings.default_pool)
    if pool is None and clone.status.slot is None:
        return clone
    # Its source's login first: a clone that cannot go on (a login yet to come) takes no slot meanwhile.
    username = await asyncio.to_thread(provision.source_username, clone)
    if clone.status.slot is None and pool is not None and clone.status.phase in (None, constants.PENDING,
                                                                                  constants.PROVISIONING) \
            and not await asyncio.to_thread(provision.made_anything, clone):
        try:
            slot = await asyncio.to_thread(pools.claim, clone, settings.default_pool)
        except ApiException as error:
            raise provision.ProvisionFailure(constants.OBJECTS_READY, "KubernetesApiError", "the Kubernetes API "
                                             f"refused taking a pool slot: {error.status} {error.reason}") from None
        metrics.POOL_CLAIMS.labels("hit" if slot else "miss").inc()
        if slot is None:
            kopf.warn(body, reason=constants.POOL_MISS, message=f"pool {pool} has no ready slot of this clone's "
                      "shape: made the usual way")
        else:
            kopf.info(body, reason="SlotTaken", message=f"took the ready slot {slot.name} of pool {pool}")
            patch.status["slot"] = slot.model_dump()
            clone = clone.model_copy(update={"status": clone.status.model_copy(update={"slot": slot})})
    if clone.status.slot is not None:
        try:
            await asyncio.to_thread(pools.take_over, clone, username)
        except ApiException as error:
            raise provision.ProvisionFailure(constants.OBJECTS_READY, "KubernetesApiError", "the Kubernetes API "
                                             f"refused moving the pool slot: {error.status} {error.reason}") from None
    return clone


async def _stand_by(body: kopf.Body, slot: WordPressClone, settings: Settings) -> None:
    """A slot's standing copy Job (copy_jobs), so that the clone that takes the slot starts copying at once."""
    owner = copy_jobs.Owner.of_clone(slot)
    plan = copy_jobs.Plan(kind=constants.CLONE_KIND, namespace=slot.namespace, name=slot.name,
                          outcome=copy_jobs.job_name(owner), clone=copy_jobs.plan_body(body), standby=True)
    try:
        await asyncio.to_thread(copy_job_control.stand_by, owner, plan, settings)
    except ApiException as error:
        raise provision.ProvisionFailure(constants.OBJECTS_READY, "KubernetesApiError", "the Kubernetes API refused "
                                         f"the slot's copy Job: {error.status} {error.reason}") from None


def _not_done_yet(clone: WordPressClone) -> list[dict[str, Any]]:
    """Provisioned, not yet serving: say so, or kstatus (Flux) would take a clone without Ready for Current."""
    at, current = status.now(), _current_conditions(clone)
    updates = []
    if status.find_condition(current, constants.READY) is None or clone.status.phase == constants.FAILED:
        updates.append(status.condition(constants.READY, False, "Provisioning",
                                        "waiting for the clone's WordPress pod", clone.generation, at))
    if status.find_condition(current, constants.STALLED) is not None:
        updates.append(status.condition(constants.STALLED, False, "Provisioned", "provisioning succeeded",
                                        clone.generation, at))
    return updates


def _record_failure(body: kopf.Body, patch: kopf.Patch, clone: WordPressClone,
                    failure: provision.ProvisionFailure) -> None:
    at = status.now()
    updates = [status.condition(constants.READY, False, failure.reason, failure.message, clone.generation, at)]
    if failure.condition != constants.READY:
        updates.append(status.condition(failure.condition, False, failure.reason, failure.message,
                                        clone.generation, at))
    if failure.permanent:  # nothing more happens until the user changes the spec
        updates.append(status.condition(constants.STALLED, True, failure.reason, failure.message,
                                        clone.generation, at))
    patch.status["conditions"] = status.merge_conditions(_current_conditions(clone), updates)
    patch.status["message"] = failure.message
    if failure.permanent:
        patch.status["phase"] = constants.FAILED
    kopf.warn(body, reason=failure.reason, message=failure.message)
    metrics.FAILURES.labels(failure.reason).inc()


async def observe_clone(body: kopf.Body, patch: kopf.Patch, settings: Settings, memo: kopf.Memo) -> None:
    """Level-based: expire the clone when its TTL is reached (a Failed one too: its database and pod, if
    made, go at the TTL like any clone's), copy the site once its pod serves, and keep Ready in step with
    the pod."""
    # What a look waits for (its pod to serve, its copy to end) it waits for until a tenth of its interval
    # is left: the timer being sharp, the next look then begins that tenth later, and whatever comes is
    # seen as it comes nine times in ten, not once the next look begins.
    look_ends = time.monotonic() + 0.9 * settings.observe_seconds
    clone = WordPressClone.from_body(body)
    if clone.status.phase == constants.EXPIRED or clone.status.expiresAt is None or pools.is_taken(body):
        return
    if status.is_expired(clone.status.expiresAt, status.now()):
        stop_copying(memo)
        kopf.info(body, reason="Expired", message=f"TTL reached; expiryPolicy {clone.spec.expiryPolicy}")
        patch.status["phase"] = constants.EXPIRING
        final_status = await expiry.expire(clone, settings)
        if final_status is not None:
            patch.status.update(final_status)
        return
    if clone.status.phase == constants.FAILED:  # nothing more happens until its spec changes
        return
    if not await until_provisioned(body, look_ends):
        return
    await _follow_workload(body, patch, WordPressClone.from_body(body), settings, memo, look_ends)


async def until_provisioned(body: kopf.Body, until: float) -> bool:
    """Whether the clone is provisioned (its database and objects made) before `until` (time.monotonic()):
    waited for while its provisioning goes on, not while a failed one waits to be tried again (Stalled).
    kopf keeps a timer's body up to date as the clone's events arrive: it is looked at, not asked for."""
    while True:
        conditions = (body.get("status") or {}).get("conditions") or []
        if status.conditions_hold(conditions, constants.DATABASE_READY, constants.OBJECTS_READY):
            return True
        if time.monotonic() >= until or status.conditions_hold(conditions, constants.STALLED):
            return False
        await asyncio.sleep(PROVISIONED_POLL_SECONDS)


async def _follow_workload(body: kopf.Body, patch: kopf.Patch, clone: WordPressClone, settings: Settings,
                           memo: kopf.Memo, look_ends: float) -> None:
    """Once provisioned: the pod's state, the copy started once it serves, and the phase and Ready."""
    # With what a finished copy earned: the look that saw it end wrote it, and the next look may begin before
    # the watch brings that write into the body (under load it lags). Read from the body alone, the clone
    # was not copied yet: it was copied again, and its phase written back (200 clones at once: each copied
    # dozens of times, the copies holding every work slot, the clones not yet provisioned waiting forever).
    current = status.merge_conditions(_current_conditions(clone), memo.get("copied") or [])
    workload = await watched_workload_condition(clone, memo.get("workloads"), look_ends)
    at = status.now()
    _report_pod_problem(body, current, workload, memo)
    updates = [workload]
    if children.is_slot(clone):  # a blank slot copies nothing: Ready once its pod is
        pass
    elif (workload["status"] == "True" and not status.conditions_hold(current, constants.CONTENT_CLONED)
            and settings.copy_in == "job"):
        content = await _copy_by_job(body, clone, settings, current, memo, look_ends)
        if content is None:
            return
        updates += _remembered(memo, content)
    elif workload["status"] == "True" and not status.conditions_hold(current, constants.CONTENT_CLONED):
        # The copy runs beside the timer, so that a slow or stuck copy never holds back the TTL; a look
        # waits for it until the look ends, and writes its end as it comes.
        copy = memo.get("copy_task")
        if copy is None:
            if time.monotonic() < memo.get("next_copy_at", 0.0):
                return
            copy = memo.copy_task = asyncio.create_task(_copy_content(body, clone, settings, memo,
                                                                      _pod_endpoint(clone, settings, memo)))
        await asyncio.wait({copy}, timeout=max(0.0, look_ends - time.monotonic()))
        if not copy.done():
            return
        memo.copy_task, at = None, status.now()
        updates += _remembered(memo, copy.result())
    merged = status.merge_conditions(current, updates)
    summary = status.summarize_slot(workload, clone.spec.pool or "") if children.is_slot(clone) else \
        status.summarize_clone(workload, status.find_condition(merged, constants.CONTENT_CLONED),
                               cloning.PERMANENT_REASONS, children.url(clone, settings))
    verdict = [status.condition(constants.READY, summary.ready, summary.reason, summary.message, clone.generation, at)]
    if summary.stalled or status.find_condition(merged, constants.STALLED) is not None:
        verdict.append(status.condition(constants.STALLED, summary.stalled, summary.reason, summary.message,
                                        clone.generation, at))
    merged = status.merge_conditions(merged, verdict)
    turned_ready = _news(memo, current, verdict[0]) and summary.ready
    if merged == current and summary.phase == clone.status.phase:
        return
    patch.status["conditions"] = merged
    patch.status["phase"] = summary.phase
    patch.status["message"] = summary.message if summary.stalled else None
    patch.status["url"] = children.url(clone, settings) if summary.ready and not children.is_slot(clone) \
        else clone.status.url
    if turned_ready and clone.status.phase != constants.PHASE_READY:
        kopf.info(body, reason="Ready", message=summary.message)
        if not children.is_slot(clone):
            metrics.PROVISIONING_SECONDS.observe((at - status.parse_time(clone.created)).total_seconds())


def _remembered(memo: kopf.Memo, content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`content` (the conditions a look at the copy earned), kept in the clone's memo once it says copied,
    and each one's reason as told (`_news`)."""
    if status.conditions_hold(content, constants.CONTENT_CLONED):
        memo.copied = content
    memo.setdefault("told", {}).update((condition["type"], condition["reason"]) for condition in content)
    return content


def _news(memo: kopf.Memo, current: list[dict[str, Any]], condition: dict[str, Any]) -> bool:
    """Whether `condition`'s reason is news, to be told once (an event, a count): neither what the body says
    nor what the last look wrote, which the body may not show yet (the next look begins a tenth of an
    interval later). Each look's condition of that type is recorded as told."""
    told = memo.setdefault("told", {})
    previous = (status.find_condition(current, condition["type"]) or {}).get("reason")
    news = condition["reason"] not in (previous, told.get(condition["type"]))
    told[condition["type"]] = condition["reason"]
    return news


async def watched_workload_condition(clone: WordPressClone, watching: workloads.Workloads | None,
                                     until: float) -> dict[str, Any]:
    """WorkloadReady as the clone's pod is; while it does not serve, as it is once it does if that comes
    before `until` (time.monotonic()), as the watches show it: its copy then starts at once."""
    if watching is None or (watched := watching.of(clone)) is None:  # no watches, or not synced: as it is now
        return status.workload_condition(*await asyncio.to_thread(_workload, clone), clone.generation, status.now())
    while True:
        workload = status.workload_condition(*watched, clone.generation, status.now())
        left = until - time.monotonic()
        if workload["status"] == "True" or left <= 0:
            return workload
        await watching.until_workload_changes(clone, left)
        watched = watching.of(clone)
        if watched is None:
            return workload


def _workload(clone: WordPressClone) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The clone's Deployment, and its pods while it is not available (to say why not), asked of the
    apiserver while the watches (workloads.py) are not synced."""
    deployment = kube.get("apps/v1", "Deployment", clone.namespace, children.workload_name(clone))
    if status.deployment_available(deployment)[0]:
        return deployment, []
    return deployment, kube.list_objects("v1", "Pod", clone.namespace, children.label_selector(clone))


def _report_pod_problem(body: kopf.Body, current: list[dict[str, Any]], workload: dict[str, Any],
                        memo: kopf.Memo) -> None:
    """An event (and a failure count) when the pod's problem appears, not on every look at it."""
    if _news(memo, current, workload) and workload["reason"] in constants.POD_PROBLEMS.values():
        kopf.warn(body, reason=workload["reason"], message=workload["message"])
        metrics.FAILURES.labels(workload["reason"]).inc()


def stop_copying(memo: kopf.Memo) -> None:
    copy = memo.get("copy_task")
    if copy is not None:
        copy.cancel()
        memo.copy_task = None


def _pod_endpoint(clone: WordPressClone, settings: Settings, memo: kopf.Memo) -> str | None:
    """The serving pod's own address as the watches show it (settings.copy_by_pod_ip), else None."""
    watching: workloads.Workloads | None = memo.get("workloads")
    watched = watching.of(clone) if settings.copy_by_pod_ip and watching is not None else None
    return children.pod_endpoint(watched[1]) if watched is not None else None


async def _copy_content(body: kopf.Body, clone: WordPressClone, settings: Settings,
                        memo: kopf.Memo, endpoint: str | None = None) -> list[dict[str, Any]]:
    """Run the copy once (into the clone at `endpoint`, or its Service); return the conditions it earned:
    ContentCloned (and schedule a retry), and once copied SourceUrlsReplaced."""
    await asyncio.to_thread(kube.patch_status, constants.API_VERSION, constants.CLONE_KIND, clone.namespace,
                            clone.name, {"phase": constants.CLONING})
    kopf.info(body, reason="Cloning", message=f"copying {clone.spec.site.url} into the clone")
    started = time.monotonic()
    try:
        async with memo.work_slots.held(work_slots.FINISHING):
            result = (await cloning.copy_into_clone(
                clone, settings, inputs.FromApi(clone.namespace, settings.mysql_address),
                cloning.progress_reporter(constants.CLONE_KIND, clone.namespace, clone.name),
                endpoint=endpoint)).result
    except WordPressError as error:
        memo.setdefault("first_copy_failure", started)
        attempts = memo.copy_attempts = memo.get("copy_attempts", 0) + 1
        reason, message = error.reason, str(error)
        if time.monotonic() - memo.first_copy_failure > settings.copy_retry_seconds:
            reason, message = constants.GAVE_UP, f"{error} (still failing after {settings.copy_retry_seconds:.0f}s)"
        memo.next_copy_at = time.monotonic() + status.retry_delay(attempts - 1, settings.retry_delay_seconds)
        kopf.warn(body, reason=reason, message=message)
        metrics.FAILURES.labels(reason).inc()
        return [status.condition(constants.CONTENT_CLONED, False, reason, message, clone.generation, status.now())]
    return await _copied(clone, result, time.monotonic() - started)


async def _copied(clone: WordPressClone, result: CopyResult, seconds: float) -> list[dict[str, Any]]:
    """A finished copy recorded (the source's checksums for a later restore, status.progress); the
    conditions it earned: ContentCloned and SourceUrlsReplaced."""
    metrics.COPY_SECONDS.labels("clone").observe(seconds)
    metrics.COPY_BYTES.labels("clone").inc(result.bytes)
    await asyncio.to_thread(kube.apply, children.source_checksums_config_map(clone, result.source_checksums))
    message = (f"copied {result.tables} tables ({result.rows} rows) and {result.files} files, "
               f"{result.bytes} bytes, from {result.source_url}"
               + (f"; not copied (status.progress.notCopied): {', '.join(result.not_copied[:3])}"
                  + (f" and {len(result.not_copied) - 3} more" if len(result.not_copied) > 3 else "")
                  if result.not_copied else ""))
    await asyncio.to_thread(kube.patch_status, constants.API_VERSION, constants.CLONE_KIND, clone.namespace,
                            clone.name, {"progress": cloning.done_status(result)})
    at = status.now()
    return [status.condition(constants.CONTENT_CLONED, True, "Copied", message, clone.generation, at),
            status.source_urls_condition(result.old_urls_left, result.rewritten_values, result.unparseable_values,
                                         result.source_url, clone.generation, at)]


async def _copy_by_job(body: kopf.Body, clone: WordPressClone, settings: Settings, current: list[dict[str, Any]],
                       memo: kopf.Memo, look_ends: float) -> list[dict[str, Any]] | None:
    """The clone's copy Job, started when a slot is free, and what it says: the ContentCloned condition
    (None: nothing to write this time)."""
    owner = copy_jobs.Owner.of_clone(clone)
    job, outcome = await copy_job_control.state_once_written(owner, memo.get("workloads"),
                                                             max(0.0, look_ends - time.monotonic()))

    def content(reason: str, message: str) -> list[dict[str, Any]]:
        return [status.condition(constants.CONTENT_CLONED, False, reason, message, clone.generation, status.now())]

    if job is not None and copy_job_control.made_for_older_spec(job, owner) and not copy_jobs.is_active(job):
        await asyncio.to_thread(copy_job_control.discard, owner)  # the spec changed: copy again
        return None
    standing = job if job is not None and copy_jobs.standing_by(job) else None
    if standing is not None and (not copy_jobs.is_active(standing) or snapshots.max_age_minutes(clone, settings)):
        # The taken slot's standing Job ended, or mounts no snapshot volume: a Job of the clone's own copies.
        await asyncio.to_thread(copy_job_control.retire, owner)
        job = standing = None
    if job is None or standing is not None:
        secret = clone.spec.site.credentialsSecretRef.name
        try:  # only a login Secret that opted in is ever mounted into a Job
            login = await asyncio.to_thread(credentials.read_login, clone.namespace, secret)
        except WordPressError as error:
            kopf.warn(body, reason=error.reason, message=str(error))
            return content(error.reason, str(error))
        choice = await asyncio.to_thread(snapshots.claim, clone, settings, login)
        replay = choice.action == "replay"
        plan = copy_jobs.Plan(kind=constants.CLONE_KIND, namespace=clone.namespace, name=clone.name,
                              outcome=copy_jobs.job_name(owner), clone=copy_jobs.plan_body(body, clone.status.slot),
                              snapshot=choice.snapshot, snapshot_use=choice.use)
        # A copy from a snapshot never reads the site: the site's login is not even mounted.
        place = await asyncio.to_thread(
            copy_job_control.start, owner, plan, settings, clone.created,
            [*([] if replay else [secret]), *([] if children.is_sqlite(clone) else [children.db_secret_name(clone)]),
             children.admin_secret_name(clone)], [], standing)
        if place:
            return content(constants.COPY_QUEUED, f"waiting for one of {settings.max_copy_jobs} copy slots "
                           f"({place} in line)")
        how = f" {choice.message}" if choice.message else " (the slot's, standing)" if standing else ""
        kopf.info(body, reason="Cloning", message=f"copying {clone.spec.site.url} into the clone by Job "
                  f"{copy_jobs.job_name(owner)}{how}")
        return content(constants.COPYING, f"copy Job {copy_jobs.job_name(owner)} started{how}")
    verdict = copy_jobs.job_verdict(job, outcome)
    result = copy_runner.copied(verdict.outcome) if verdict.state == "succeeded" else None
    snapshot, use = copy_jobs.snapshot_of(job)
    if snapshot is not None and verdict.state != "running":
        await _snapshot_used(clone, snapshot, use, verdict, result, settings)
        if use == "replay" and verdict.reason == constants.SNAPSHOT_UNUSABLE:  # copy again, from the site
            await asyncio.to_thread(copy_job_control.discard, owner)
            kopf.warn(body, reason=verdict.reason, message=f"{verdict.message}; copying from the site again")
            return content(constants.COPYING, f"snapshot {snapshot} was unusable ({verdict.message}); copying "
                           "from the site again")
    if result is not None:
        return await _copied(clone, result, copy_jobs.seconds(job, verdict.outcome))
    if verdict.state == "succeeded":
        verdict = copy_jobs.unreadable(job)
    ended = content(verdict.reason, verdict.message)
    if (verdict.state == "failed" or verdict.reason != constants.COPYING) and _news(memo, current, ended[0]):
        kopf.warn(body, reason=verdict.reason, message=verdict.message)
        metrics.FAILURES.labels(verdict.reason).inc()
    return ended


async def _snapshot_used(clone: WordPressClone, snapshot: str, use: str | None,
                         verdict: copy_jobs.Verdict, result: CopyResult | None, settings: Settings) -> None:
    """A copy Job that read or recorded a snapshot ended: the snapshot made Ready (or deleted, when the
    recording was not kept), an unusable one deleted, the Job's pods gone so that they hold its volume no
    longer, and the snapshot's figures counted."""
    await asyncio.to_thread(copy_job_control.release_volumes, copy_jobs.Owner.of_clone(clone))
    if use == "record":
        kept = await asyncio.to_thread(snapshots.record_ended, clone.namespace, snapshot, verdict.outcome, result,
                                       settings)
        if kept:
            metrics.SNAPSHOT_COPIES.labels("recorded").inc()
    elif verdict.reason == constants.SNAPSHOT_UNUSABLE:
        await asyncio.to_thread(snapshots.drop_if_ready, clone.namespace, snapshot)
    elif result is not None:
        metrics.SNAPSHOT_COPIES.labels("hit").inc()
        metrics.SNAPSHOT_BYTES.inc(result.bytes)


async def clean_up_clone(body: kopf.Body, settings: Settings, memo: kopf.Memo) -> None:
    stop_copying(memo)
    clone = WordPressClone.from_body(body)
    copy_job_control.forget(copy_jobs.Owner.of_clone(clone))  # its Job goes with it (owner reference)
    if children.is_slot(clone) and await asyncio.to_thread(pools.keeps_database, dict(body)):
        return  # a taken slot: its database is the clone's now
    try:
        await provision.drop_database(clone, settings)
    except Exception as error:  # noqa: BLE001 - any failure here is retried; the message is safe
        raise kopf.TemporaryError(f"cannot drop the clone's database yet: {error}", delay=10) from None
