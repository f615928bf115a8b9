"""Conditions, phases and TTL arithmetic: pure functions of data."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from wpclone_operator import constants

UTC = datetime.UTC


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def effective_ttl_minutes(requested: int | None, default: int, maximum: int) -> int:
    return min(requested if requested is not None else default, maximum)


def expires_at(created: str, ttl_minutes: int) -> str:
    """The TTL counts from the resource's creation, so a restart can neither reset nor lose it,
    and raising ttlMinutes extends it."""
    return format_time(parse_time(created) + datetime.timedelta(minutes=ttl_minutes))


def is_expired(expires: str | None, at: datetime.datetime) -> bool:
    return expires is not None and parse_time(expires) <= at


def seconds_until(expires: str, at: datetime.datetime) -> float:
    return (parse_time(expires) - at).total_seconds()


def condition(type_: str, ok: bool | None, reason: str, message: str, generation: int,
              at: datetime.datetime) -> dict[str, Any]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": format_time(at), "observedGeneration": generation}


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


def summarize_clone(pod_available: bool, pod_message: str, content: dict[str, Any] | None,
                    permanent_reasons: set[str], url: str) -> CloneSummary:
    """The clone's phase and Ready condition, from its pod and its ContentCloned condition."""
    if not pod_available:
        return CloneSummary(constants.PROVISIONING, False, "PodNotReady", pod_message)
    if content is None:
        return CloneSummary(constants.CLONING, False, "Cloning", "copying the source site into the clone")
    if content["status"] == "True":
        return CloneSummary(constants.PHASE_READY, True, "CloneReady", f"the clone serves at {url}")
    phase = constants.FAILED if content["reason"] in permanent_reasons else constants.CLONING
    return CloneSummary(phase, False, content["reason"], content["message"])
