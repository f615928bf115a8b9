"""The operator's side of copy Jobs (copy_jobs builds them): start one when a slot is free (or hand its plan
to a pool slot's standing Job), read what one says, discard one made for an older spec. Blocking calls
(callers use asyncio.to_thread), but for state_once_written."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from typing import Any

from wpclone_common import constants, kube, times
from wpclone_operator import copy_jobs
from wpclone_operator.copy_jobs import Owner, Plan
from wpclone_operator.settings import Settings
from wpclone_operator.workloads import Workloads

log = logging.getLogger(__name__)
SELECTOR = f"{constants.LABEL_MANAGED_BY}=wpclone,{constants.LABEL_COMPONENT}={constants.COPY_COMPONENT}"

# Counting the running Jobs and creating one are one step, or two owners could take the last slot.
_starting = threading.Lock()
# Copies waiting for a slot, (namespace, Job name) -> (the owner's creation time, when it last asked):
# first come, first served. Each waiting owner asks again every observe_seconds; one that stopped asking
# (deleted, expired, failed) leaves the line (after a restart the line is rebuilt the same way).
_waiting: dict[tuple[str, str], tuple[str, float]] = {}
_apiserver: list[str] = []


def apiserver_cidrs(settings: Settings) -> list[str]:
    """Where pods reach the apiserver: the setting, or the `kubernetes` Service's endpoints."""
    if settings.apiserver_cidrs:
        return list(settings.apiserver_cidrs)
    if not _apiserver:
        endpoints = kube.get("v1", "Endpoints", "default", "kubernetes") or {}
        addresses = [address["ip"] for subset in endpoints.get("subsets") or []
                     for address in subset.get("addresses") or []]
        _apiserver.extend(str(ipaddress.ip_network(address)) for address in addresses)
    return list(_apiserver)


def running(settings: Settings) -> int:
    """Copy Jobs not yet complete or failed, in the namespaces the operator watches (a standing Job copies
    nothing until it is handed a plan)."""
    scopes: list[str | None] = list(settings.namespaces) or [None]
    jobs = [job for scope in scopes for job in kube.list_objects("batch/v1", "Job", scope, SELECTOR)]
    return sum(1 for job in jobs if copy_jobs.is_active(job) and not copy_jobs.standing_by(job))


def _create(owner: Owner, plan: Plan, settings: Settings, secrets: list[str], config_maps: list[str]) -> None:
    for manifest in copy_jobs.objects(owner, plan, settings, secrets, config_maps, apiserver_cidrs(settings)):
        kube.create_if_missing(manifest)


def stand_by(owner: Owner, plan: Plan, settings: Settings) -> None:
    """A pool slot's standing copy Job (plan.standby), made with the slot; it copies once a clone takes the slot."""
    _create(owner, plan, settings, [], [])


def start(owner: Owner, plan: Plan, settings: Settings, created: str, secrets: list[str],
          config_maps: list[str], standing: dict[str, Any] | None = None) -> int:
    """Creates the copy Job (and what it needs) when a slot is free and no earlier copy waits for one, or
    hands the plan to the `standing` Job of the pool slot the clone took: returns 0 then, else its place in
    the line (1: next)."""
    key = (owner.namespace, copy_jobs.job_name(owner))
    with _starting:
        now = time.monotonic()
        patience = 3 * settings.observe_seconds + 5
        for stale in [other for other, (_, asked) in _waiting.items() if now - asked > patience]:
            del _waiting[stale]
        _waiting[key] = (created, now)
        ahead = copy_jobs.queue_position(key, {other: when for other, (when, _) in _waiting.items()})
        if ahead >= settings.max_copy_jobs - running(settings):
            return ahead + 1
        if standing is not None:
            _hand(owner, plan, settings, secrets, standing)
        else:
            _create(owner, plan, settings, secrets, config_maps)
        _waiting.pop(key, None)
        return 0


def _hand(owner: Owner, plan: Plan, settings: Settings, secrets: list[str], standing: dict[str, Any]) -> None:
    """The plan to a standing Job: its account may read the plan's logins first, then the plan (its pod
    begins the copy as it reads it), then the Job counts as running. Each step may be done again: an
    operator stopped halfway hands the same plan at its next look."""
    name = copy_jobs.job_name(owner)
    kube.patch("rbac.authorization.k8s.io/v1", "Role", owner.namespace, name,
               {"rules": copy_jobs.role(owner, secrets)["rules"]})
    kube.patch("v1", "ConfigMap", owner.namespace, name, {"data": {copy_jobs.PLAN_KEY: plan.model_dump_json()}})
    kube.patch("batch/v1", "Job", owner.namespace, name, copy_jobs.hand_off(standing, owner, settings, times.now()))


def retire(owner: Owner) -> None:
    """Deletes a standing Job that cannot copy for its clone (it ended, or the copy needs a snapshot volume
    it does not mount) with its Role and ConfigMap: the clone's copy gets a Job of its own, made afresh."""
    name = copy_jobs.job_name(owner)
    for api_version, kind in (("batch/v1", "Job"), ("v1", "ConfigMap"), ("rbac.authorization.k8s.io/v1", "Role")):
        kube.delete(api_version, kind, owner.namespace, name)


def forget(owner: Owner) -> None:
    """The owner is gone (deleted, expired): it waits no more."""
    _waiting.pop((owner.namespace, copy_jobs.job_name(owner)), None)


def state(owner: Owner) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The owner's copy Job (None: not made) and its runner's outcome (None: not written yet)."""
    name = copy_jobs.job_name(owner)
    job = kube.get("batch/v1", "Job", owner.namespace, name)
    if job is None:
        return None, None
    outcome = kube.get("v1", "ConfigMap", owner.namespace, name)
    return job, copy_jobs.read_outcome(dict((outcome or {}).get("data") or {}))


async def state_once_written(owner: Owner, watching: Workloads | None, seconds: float,
                             ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """state(), and while the Job copies, waited for up to `seconds` until its runner writes its outcome (the
    watch tells at once): a copy's end is seen as it happens, not at its owner's next look."""
    job, outcome = await asyncio.to_thread(state, owner)
    if job is None or outcome is not None or watching is None or not copy_jobs.is_active(job) \
            or copy_jobs.standing_by(job):
        return job, outcome
    if await watching.until_outcome(owner.namespace, copy_jobs.job_name(owner), seconds):
        return await asyncio.to_thread(state, owner)
    return job, outcome


def made_for_older_spec(job: dict[str, Any], owner: Owner) -> bool:
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    return int(annotations.get(copy_jobs.GENERATION_ANNOTATION, owner.generation)) < owner.generation


def release_volumes(owner: Owner) -> None:
    """Deletes a finished Job's pods (the Job and its outcome stay: its record): a finished pod would keep
    the volume claims it mounted, a SQLite clone's database, from going away with their clone."""
    for pod in kube.list_objects("v1", "Pod", owner.namespace, f"job-name={copy_jobs.job_name(owner)}"):
        kube.delete("v1", "Pod", owner.namespace, pod["metadata"]["name"])


def discard(owner: Owner) -> None:
    """Deletes a finished Job and its outcome (the rest stays and is reused), so that a new one can run."""
    name = copy_jobs.job_name(owner)
    kube.delete("batch/v1", "Job", owner.namespace, name)
    kube.delete("v1", "ConfigMap", owner.namespace, name)
