"""Per-tenant quotas: how many clones live, how many jobs run at once, how long a clone may live (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wpclone_common import constants

# A clone past these phases no longer works (its copy ended or it is going away); a restore past
# these has ended.
CLONE_DONE = {constants.PHASE_READY, constants.FAILED, constants.EXPIRING, constants.EXPIRED}
RESTORE_DONE = set(constants.RESTORE_ENDED)


@dataclass(frozen=True)
class Limits:
    max_clones: int
    max_running_jobs: int
    max_ttl_minutes: int


@dataclass(frozen=True)
class Usage:
    live_clones: int
    running_jobs: int


def _phase(resource: dict[str, Any]) -> str | None:
    return (resource.get("status") or {}).get("phase")


def _deleting(resource: dict[str, Any]) -> bool:
    return bool(resource["metadata"].get("deletionTimestamp"))


def usage(clones: list[dict[str, Any]], restores: list[dict[str, Any]]) -> Usage:
    """A tenant's clones that hold resources (all but Expired ones and those being deleted), and its
    jobs still working: clones not yet Ready or Failed, and restores not yet ended."""
    present = [clone for clone in clones if not _deleting(clone)]
    live = sum(1 for clone in present if _phase(clone) != constants.EXPIRED)
    running = (sum(1 for clone in present if _phase(clone) not in CLONE_DONE)
               + sum(1 for restore in restores if not _deleting(restore) and _phase(restore) not in RESTORE_DONE))
    return Usage(live, running)


def at_most(clones: int, restores: int) -> Usage:
    """What `usage` can be at the most, from the numbers of objects alone: each counted as live and at work.
    Far from a limit, that is all a quota check needs (no object is read)."""
    return Usage(clones, clones + restores)


def near(limits: Limits, used: Usage) -> bool:
    """Whether counts read from a cache are close enough to a limit that a write the cache has not seen
    yet could decide the answer (then they are read again, consistently)."""
    return used.live_clones + 1 >= limits.max_clones or used.running_jobs + 1 >= limits.max_running_jobs


def ttl_refusal(limits: Limits, ttl_minutes: int | None) -> str | None:
    """An omitted TTL takes the operator's default, which the platform keeps within this maximum."""
    if ttl_minutes is not None and ttl_minutes > limits.max_ttl_minutes:
        return f"invalid request: ttl_minutes: a clone may live at most {limits.max_ttl_minutes} minutes here"
    return None


def job_refusal(limits: Limits, used: Usage) -> str | None:
    if used.running_jobs >= limits.max_running_jobs:
        return (f"quota exceeded: {used.running_jobs} jobs of your tenant are running, at most "
                f"{limits.max_running_jobs} may run at once; try again when one has ended")
    return None


def clone_refusal(limits: Limits, used: Usage) -> str | None:
    if used.live_clones >= limits.max_clones:
        return (f"quota exceeded: your tenant has {used.live_clones} clones, at most {limits.max_clones}; "
                "delete one or wait until one expires")
    return job_refusal(limits, used)
