"""What the webhook timers and the clone's cleanup do, between kopf's objects and webhooks.py."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from wpclone_common import constants, kube, times
from wpclone_engine import outbound
from wpclone_operator import webhooks
from wpclone_operator.settings import Settings


def pending(kind: str, spec: dict[str, Any], status: dict[str, Any]) -> bool:
    """Whether a resource has a webhook whose event for its phase is not settled (the timers' filter)."""
    return bool(spec.get("notify")) and webhooks.unsettled(kind, status.get("phase"),
                                                            status.get("notifications")) is not None


async def attempt(kind: str, body: kopf.Body | dict[str, Any], settings: Settings,
                  event: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """POSTs the event that is due (or `event`); the event and its delivery record, or None if none is due."""
    status = body.get("status") or {}
    now = times.now()
    delays = webhooks.retry_delays(settings.webhook_retry_seconds)
    event = event or webhooks.due_event(kind, status.get("phase"), status.get("notifications"), now, delays)
    notify = (body.get("spec") or {}).get("notify")
    if event is None or not notify:
        return None
    metadata = body["metadata"]
    secret_name = notify["secretRef"]["name"]
    try:
        key = webhooks.signing_key(await asyncio.to_thread(kube.get, "v1", "Secret", metadata["namespace"],
                                                           secret_name), secret_name)
    except ValueError as error:
        error_text: str | None = str(error)
    else:
        payload = webhooks.encode(webhooks.event_body(kind, dict(body), event, now))
        error_text = await webhooks.post(webhooks.Event(notify["url"], key, payload, f"{metadata['uid']}-{event}",
                                                        event), outbound.Policy.of(settings))
    return event, webhooks.after_attempt((status.get("notifications") or {}).get(event), error_text, now, delays)


def _warn_if_given_up(body: kopf.Body, event: str, delivery: dict[str, Any]) -> None:
    if delivery["state"] == "Failed":
        kopf.warn(body, reason="WebhookFailed", message=f"the {event} event never reached "
                  f"{body['spec']['notify']['url']}: {delivery['lastError']}")


async def on_timer(kind: str, body: kopf.Body, patch: kopf.Patch, settings: Settings) -> None:
    attempted = await attempt(kind, body, settings)
    if attempted is not None:
        event, delivery = attempted
        patch.status["notifications"] = {event: delivery}
        _warn_if_given_up(body, event, delivery)


async def expired_before_deletion(body: kopf.Body, settings: Settings, memo: kopf.Memo) -> None:
    """A clone deleted at its TTL (expiryPolicy Delete) tells its webhook first, retrying as the timer
    would, for as long as that takes (its deletion waits; about a minute and a half at most). Once:
    kopf may run a deletion handler again (an event arrives before the finalizer's removal shows)."""
    status = body.get("status") or {}
    expires = status.get("expiresAt")
    if not (body.get("spec") or {}).get("notify") or not expires or not times.is_expired(expires, times.now()):
        return
    settled = ((status.get("notifications") or {}).get("expired") or {}).get("state") in webhooks.SETTLED
    if settled or memo.get("expired_notified"):
        return
    memo.expired_notified = True
    record = dict(body)
    for delay in (0.0, *webhooks.retry_delays(settings.webhook_retry_seconds)):
        await asyncio.sleep(delay)
        attempted = await attempt(constants.CLONE_KIND, record, settings, event="expired")
        if attempted is None:
            return
        event, delivery = attempted
        record["status"] = {**status, "notifications": {**(status.get("notifications") or {}), event: delivery}}
        status = record["status"]
        await asyncio.to_thread(kube.patch_status, constants.API_VERSION, constants.CLONE_KIND,
                                body["metadata"]["namespace"], body["metadata"]["name"],
                                {"notifications": {event: delivery}})
        if delivery["state"] in webhooks.SETTLED:
            _warn_if_given_up(body, event, delivery)
            return
