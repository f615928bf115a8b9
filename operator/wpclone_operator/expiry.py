"""A clone's end: by TTL (following spec.expiryPolicy) or by deletion."""

from __future__ import annotations

import asyncio
from typing import Any

from wpclone_common import constants, kube
from wpclone_common.resources import WordPressClone
from wpclone_operator import provision, status
from wpclone_operator.settings import Settings

EXPIRED_CONDITIONS = (constants.READY, constants.DATABASE_READY, constants.OBJECTS_READY,
                      constants.WORKLOAD_READY)


async def expire(clone: WordPressClone, settings: Settings) -> dict[str, Any] | None:
    """Delete the clone, or retain its record with everything else gone.

    Returns the status to write, or None when the resource itself is being deleted.
    """
    if clone.spec.expiryPolicy == "Delete":
        await asyncio.to_thread(kube.delete, constants.API_VERSION, constants.CLONE_KIND,
                                clone.namespace, clone.name)
        return None
    await asyncio.to_thread(provision.delete_children, clone)
    await provision.drop_database(clone, settings)
    at = status.now()
    message = f"expired at {clone.status.expiresAt}; the clone and its database were removed"
    updates = [status.condition(kind, False, "Expired", message, clone.generation, at)
               for kind in EXPIRED_CONDITIONS]
    updates.append(status.condition(constants.STALLED, True, "Expired",
                                    f"{message}; delete the resource to clone the site again", clone.generation, at))
    current = [condition.model_dump() for condition in clone.status.conditions]
    return {"phase": constants.EXPIRED, "url": None, "adminSecretRef": None, "progress": None,
            "message": message, "conditions": status.merge_conditions(current, updates)}
