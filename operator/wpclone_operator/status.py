"""Conditions, phases and TTL arithmetic: pure functions of data."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from wpclone_common import constants

# The TTL's arithmetic lives in the common package (the API computes a new expiry too); the operator's
# modules find it here.
from wpclone_common.times import UTC as UTC
from wpclone_common.times import expires_at as expires_at
from wpclone_common.times import format_time as format_time
from wpclone_common.times import is_expired as is_expired
from wpclone_common.times import now as now
from wpclone_common.times import parse_time as parse_time


def effective_ttl_minutes(requested: int | None, default: int, maximum: int) -> int:
    return min(requested if requested is not None else default, maximum)


def seconds_until(expires: str, at: datetime.datetime) -> float:
    return (parse_time(expires) - at).total_seconds()


def condition(type_: str, ok: bool | None, reason: str, message: str, generation: int,
              at: datetime.datetime) -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": format_time(at), "observedGeneration": generation}


def source_urls_condition(left: int | None, rewritten: int, unparseable: int, source_url: str, generation: int,
                          at: datetime.datetime) -> dict[str, Any]:
    """SourceUrlsReplaced after a copy: whether any cell of the clone's database still holds the source's URL."""
    done = (f"{rewritten} values rewritten"
            + (f", {unparseable} of them serialized data PHP cannot read, rewritten as text" if unparseable else ""))
    if left is None:
        return condition(constants.SOURCE_URLS_REPLACED, None, constants.NOT_COUNTED,
                         f"{done}; what remains of {source_url} is not counted: the clone's URL holds it",
                         generation, at)
    if left:
        return condition(constants.SOURCE_URLS_REPLACED, False, constants.SOURCE_URLS_LEFT,
                         f"{left} occurrences of {source_url} remain in the clone's database ({done})", generation, at)
    return condition(constants.SOURCE_URLS_REPLACED, True, constants.NONE_LEFT,
                     f"no occurrence of {source_url} remains in the clone's database ({done})", generation, at)


def merge_conditions(current: list[dict[str, Any]], updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace conditions by type; a condition whose status did not change keeps its transition time."""
    merged = {item["type"]: dict(item) for item in current}
    for update in updates:
        previous = merged.get(update["type"])
        if previous is not None and previous.get("status") == update["status"]:
            kept = previous.get("lastTransitionTime") or update["lastTransitionTime"]
            update = {**update, "lastTransitionTime": kept}
        merged[update["type"]] = update
    order = [constants.READY, constants.DATABASE_READY, constants.OBJECTS_READY, constants.WORKLOAD_READY,
             constants.CONTENT_CLONED, constants.STALLED]
    return sorted(merged.values(), key=lambda item: (order.index(item["type"]) if item["type"] in order
                                                     else len(order), item["type"]))


def find_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((item for item in conditions if item.get("type") == type_), None)


def deployment_available(deployment: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether a clone's Deployment serves, and why not in words a user understands."""
    if deployment is None:
        return False, "the Deployment does not exist yet"
    status = deployment.get("status") or {}
    available = next((c for c in status.get("conditions", []) if c.get("type") == "Available"), None)
    if (status.get("availableReplicas") or 0) >= 1 and available and available.get("status") == "True":
        return True, "the WordPress pod is Ready"
    if available and available.get("message"):
        return False, str(available["message"])
    return False, "waiting for the WordPress pod to become Ready"


@dataclass(frozen=True)
class PodProblem:
    reason: str  # one of constants.POD_PROBLEMS' values
    message: str


def pod_problem(pod: dict[str, Any]) -> PodProblem | None:
    """Why a clone's pod cannot start without the user, from its status as the kubelet reports it;
    None while it is starting (or being deleted). The kubelet's messages hold names, never a secret."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = constants.POD_PROBLEMS.get(waiting.get("reason", ""))
        if reason is None:
            continue
        kubelet = f"{waiting['reason']}: {waiting.get('message') or 'no message'}"
        if reason == constants.IMAGE_UNAVAILABLE:
            return PodProblem(reason, f"the image {container.get('image')} cannot be pulled ({kubelet})")
        if reason == constants.POD_CONFIG_ERROR:
            return PodProblem(reason, f"the container cannot be configured ({kubelet})")
        ended = (container.get("lastState") or {}).get("terminated")
        last_exit = f"last exit code {ended.get('exitCode')} ({ended.get('reason')})" if ended else "no exit recorded"
        return PodProblem(reason, f"WordPress keeps exiting, {last_exit} ({kubelet})")
    return None


def workload_condition(deployment: dict[str, Any] | None, pods: list[dict[str, Any]], generation: int,
                       at: datetime.datetime) -> dict[str, Any]:
    """WorkloadReady: the pod serves, waits, or cannot start (and why)."""
    available, why = deployment_available(deployment)
    if available:
        return condition(constants.WORKLOAD_READY, True, constants.POD_READY, why, generation, at)
    problem = next((found for pod in pods if (found := pod_problem(pod)) is not None), None)
    if problem is not None:
        return condition(constants.WORKLOAD_READY, False, problem.reason, problem.message, generation, at)
    return condition(constants.WORKLOAD_READY, False, constants.POD_NOT_READY, why, generation, at)


def retry_delay(retry: int, base: float, cap: float = 300.0) -> float:
    """Exponential backoff for temporary failures."""
    return float(min(base * 2 ** min(retry, 16), cap))


def conditions_hold(conditions: list[dict[str, Any]], *types: str) -> bool:
    return all((found := find_condition(conditions, kind)) is not None and found["status"] == "True"
               for kind in types)


@dataclass(frozen=True)
class CloneSummary:
    phase: str
    ready: bool
    reason: str
    message: str
    stalled: bool = False  # nothing more happens without the user


def summarize_clone(workload: dict[str, Any], content: dict[str, Any] | None, permanent_reasons: set[str],
                    url: str) -> CloneSummary:
    """The clone's phase and Ready condition, from its WorkloadReady and ContentCloned conditions."""
    if workload["status"] != "True":
        # A pod that cannot start stalls the clone without failing it. Stalled: it needs the user (a
        # wrong image, a broken configuration, a crashing WordPress), and kstatus (Flux) reads
        # Stalled=True as Failed, so whoever waits stops with this reason instead of timing out. Not
        # Failed: the kubelet keeps trying and the user can fix it in place (a corrected spec.image
        # rolls out a new pod), so the phase stays Provisioning and the observe timer keeps looking;
        # the clone turns Ready, and Stalled False, once its pod does.
        return CloneSummary(constants.PROVISIONING, False, workload["reason"], workload["message"],
                            stalled=workload["reason"] in constants.POD_PROBLEMS.values())
    if content is None:
        return CloneSummary(constants.CLONING, False, "Cloning", "copying the source site into the clone")
    if content["status"] == "True":
        return CloneSummary(constants.PHASE_READY, True, "CloneReady", f"the clone serves at {url}")
    if content["reason"] in permanent_reasons:
        return CloneSummary(constants.FAILED, False, content["reason"], content["message"], stalled=True)
    return CloneSummary(constants.CLONING, False, content["reason"], content["message"])


def summarize_slot(workload: dict[str, Any], pool: str) -> CloneSummary:
    """A pool's blank slot: Ready (reason Standby) once its pod is, to be taken by a clone."""
    if workload["status"] != "True":
        return CloneSummary(constants.PROVISIONING, False, workload["reason"], workload["message"],
                            stalled=workload["reason"] in constants.POD_PROBLEMS.values())
    return CloneSummary(constants.PHASE_READY, True, constants.STANDBY,
                        f"a blank slot of pool {pool}, ready to be taken")
