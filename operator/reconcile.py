"""What each kopf handler does, between kopf's objects (body, patch, errors) and the plain modules."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from wpclone_operator import children, constants, expiry, kube, metrics, provision, status
from wpclone_operator.resources import WordPressClone
from wpclone_operator.settings import Settings


def _current_conditions(clone: WordPressClone) -> list[dict[str, Any]]:
    return [condition.model_dump() for condition in clone.status.conditions]


async def provision_clone(body: kopf.Body, patch: kopf.Patch, settings: Settings, retry: int) -> None:
    clone = WordPressClone.from_body(body)
    if clone.status.phase == constants.EXPIRED:
        return
    ttl = status.effective_ttl_minutes(clone.spec.ttlMinutes, settings.default_ttl_minutes,
                                       settings.max_ttl_minutes)
    if clone.spec.ttlMinutes is not None and ttl < clone.spec.ttlMinutes:
        kopf.warn(body, reason="TTLCapped",
                  message=f"ttlMinutes {clone.spec.ttlMinutes} exceeds the maximum {ttl}; using {ttl}")
    patch.status["expiresAt"] = status.expires_at(clone.created, ttl)
    patch.status["adminSecretRef"] = {"name": children.admin_secret_name(clone)}
    patch.status["observedGeneration"] = clone.generation
    if clone.status.phase in (None, constants.PENDING, constants.FAILED):
        patch.status["phase"] = constants.PROVISIONING
    try:
        earned = await provision.provision(clone, settings)
    except provision.ProvisionFailure as failure:
        _record_failure(body, patch, clone, failure)
        if failure.permanent:
            raise kopf.PermanentError(failure.message) from None
        raise kopf.TemporaryError(failure.message, delay=status.retry_delay(retry, settings.retry_delay_seconds)) \
            from None
    patch.status["conditions"] = status.merge_conditions(_current_conditions(clone), earned)
    patch.status["message"] = None


def _record_failure(body: kopf.Body, patch: kopf.Patch, clone: WordPressClone,
                    failure: provision.ProvisionFailure) -> None:
    at = status.now()
    updates = [status.condition(constants.READY, False, failure.reason, failure.message, clone.generation, at)]
    if failure.condition != constants.READY:
        updates.append(status.condition(failure.condition, False, failure.reason, failure.message,
                                        clone.generation, at))
    patch.status["conditions"] = status.merge_conditions(_current_conditions(clone), updates)
    patch.status["message"] = failure.message
    if failure.permanent:
        patch.status["phase"] = constants.FAILED
    kopf.warn(body, reason=failure.reason, message=failure.message)
    metrics.FAILURES.labels(failure.reason).inc()


async def observe_clone(body: kopf.Body, patch: kopf.Patch, settings: Settings) -> None:
    """Level-based check of a clone's TTL and of its WordPress pod's readiness."""
    clone = WordPressClone.from_body(body)
    if clone.status.phase in (constants.EXPIRED, constants.FAILED) or clone.status.expiresAt is None:
        return
    if status.is_expired(clone.status.expiresAt, status.now()):
        kopf.info(body, reason="Expired", message=f"TTL reached; expiryPolicy {clone.spec.expiryPolicy}")
        patch.status["phase"] = constants.EXPIRING
        final_status = await expiry.expire(clone, settings)
        if final_status is not None:
            patch.status.update(final_status)
        return
    current = _current_conditions(clone)
    if not status.conditions_hold(current, constants.DATABASE_READY, constants.OBJECTS_READY):
        return
    deployment = await asyncio.to_thread(kube.get, "apps/v1", "Deployment", clone.namespace, clone.name)
    available, why = status.deployment_available(deployment)
    at = status.now()
    reason = "PodReady" if available else "PodNotReady"
    ready_message = f"the clone serves at {children.url(clone, settings)}" if available else why
    updates = [status.condition(constants.WORKLOAD_READY, available, reason, why, clone.generation, at),
               status.condition(constants.READY, available, "CloneReady" if available else reason,
                                ready_message, clone.generation, at)]
    merged = status.merge_conditions(current, updates)
    phase = constants.PHASE_READY if available else constants.PROVISIONING
    if merged == current and phase == clone.status.phase:
        return
    patch.status["conditions"] = merged
    patch.status["phase"] = phase
    patch.status["url"] = children.url(clone, settings) if available else clone.status.url
    if available and clone.status.phase != constants.PHASE_READY:
        kopf.info(body, reason="Ready", message=ready_message)
        metrics.PROVISIONING_SECONDS.observe((at - status.parse_time(clone.created)).total_seconds())


async def clean_up_clone(body: kopf.Body, settings: Settings) -> None:
    clone = WordPressClone.from_body(body)
    try:
        await provision.drop_database(clone, settings)
    except Exception as error:  # noqa: BLE001 - any failure here is retried; the message is safe
        raise kopf.TemporaryError(f"cannot drop the clone's database yet: {error}", delay=10) from None
