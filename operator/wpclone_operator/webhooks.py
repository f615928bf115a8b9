"""Webhooks: an event POSTed to a resource's spec.notify.url when its job completes, fails or expires.

Each event is a small JSON object (never a password), signed with the key of the Secret spec.notify
names: X-WPClone-Signature: sha256=<hex HMAC-SHA256 of the exact body>. A receiver checks the signature
and may take X-WPClone-Delivery (the same on every attempt of one event) to ignore a repeat. Delivery
is level-based: a timer finds the event the resource's phase stands for, and POSTs it until the
receiver answers 2xx or the attempts run out (retry_delays), recording each attempt in
status.notifications[event]. The URL passes the operator's outbound policy, as every site does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from wpclone_common import constants, times
from wpclone_engine import outbound

ATTEMPTS = 6
SIGNATURE_HEADER = "X-WPClone-Signature"
# The event each phase stands for, by kind.
EVENTS = {
    constants.CLONE_KIND: {constants.PHASE_READY: "completed", constants.FAILED: "failed",
                           constants.EXPIRED: "expired"},
    constants.RESTORE_KIND: {constants.COMPLETED: "completed", constants.ROLLED_BACK: "completed",
                             constants.FAILED: "failed"},
}
SETTLED = ("Delivered", "Failed")


def retry_delays(first: float) -> tuple[float, ...]:
    """Seconds to wait after each failed attempt but the last: `first`, then twice as long each time."""
    return tuple(first * 2 ** attempt for attempt in range(ATTEMPTS - 1))


def due_event(kind: str, phase: str | None, notifications: dict[str, Any] | None, now: datetime,
              delays: tuple[float, ...]) -> str | None:
    """The event to POST now for a resource of `kind` in `phase`, or None (none, settled, or not yet time)."""
    event = unsettled(kind, phase, notifications)
    if event is None:
        return None
    delivery = (notifications or {}).get(event) or {}
    attempts, last = int(delivery.get("attempts") or 0), delivery.get("lastAttemptAt")
    if attempts and last and now < times.parse_time(last) + timedelta(seconds=delays[min(attempts, len(delays)) - 1]):
        return None
    return event


def unsettled(kind: str, phase: str | None, notifications: dict[str, Any] | None) -> str | None:
    """The event `phase` stands for, unless its delivery is settled (delivered, or given up)."""
    event = EVENTS[kind].get(phase or "")
    settled = event is not None and ((notifications or {}).get(event) or {}).get("state") in SETTLED
    return None if settled else event


def after_attempt(previous: dict[str, Any] | None, error: str | None, now: datetime,
                  delays: tuple[float, ...]) -> dict[str, Any]:
    """The delivery record after one attempt (`error` None: delivered)."""
    attempts = int((previous or {}).get("attempts") or 0) + 1
    state = "Delivered" if error is None else ("Failed" if attempts > len(delays) else "Retrying")
    return {"state": state, "attempts": attempts, "lastAttemptAt": times.format_time(now), "lastError": error}


def event_body(kind: str, body: dict[str, Any], event: str, now: datetime) -> dict[str, Any]:
    """What the receiver gets: which job, what happened, where the clone is; never a password."""
    metadata, status = body["metadata"], body.get("status") or {}
    ready: dict[str, Any] = next(
        (condition for condition in status.get("conditions") or [] if condition.get("type") == constants.READY), {})
    return {"event": event, "kind": kind, "namespace": metadata["namespace"], "name": metadata["name"],
            "job_id": (metadata.get("labels") or {}).get(constants.LABEL_JOB_ID),
            "phase": status.get("phase"), "reason": ready.get("reason"), "message": status.get("message"),
            "clone_url": status.get("url"), "expires_at": status.get("expiresAt"),
            "backup_id": status.get("backupId"), "occurred_at": times.format_time(now)}


def signature(secret: bytes, payload: bytes) -> str:
    return "sha256=" + hmac.new(secret, payload, hashlib.sha256).hexdigest()


def signing_key(secret: dict[str, Any] | None, name: str) -> bytes:
    """The key of a notify Secret (opted in by the credentials label, key `secret`); ValueError says why not."""
    if secret is None:
        raise ValueError(f"Secret {name} does not exist")
    if ((secret.get("metadata") or {}).get("labels") or {}).get(constants.LABEL_CREDENTIALS) != "true":
        raise ValueError(f"Secret {name} is not labelled {constants.LABEL_CREDENTIALS}=true")
    key = base64.b64decode((secret.get("data") or {}).get("secret") or "")
    if not key:
        raise ValueError(f"Secret {name} has no key `secret`")
    return key


@dataclass(frozen=True)
class Event:
    url: str
    key: bytes
    payload: bytes
    delivery_id: str
    name: str  # completed, failed, expired


async def post(event: Event, policy: outbound.Policy) -> str | None:
    """One attempt; None when the receiver answered 2xx, else why not (short, never a secret)."""
    headers = {"Content-Type": "application/json", "User-Agent": "wpclone-operator",
               SIGNATURE_HEADER: signature(event.key, event.payload), "X-WPClone-Event": event.name,
               "X-WPClone-Delivery": event.delivery_id}
    try:
        async with outbound.client(policy, timeout=httpx.Timeout(10.0, connect=5.0)) as http:
            response = await http.post(event.url, content=event.payload, headers=headers)
    except outbound.DestinationNotAllowed as refused:
        return f"{constants.DESTINATION_NOT_ALLOWED}: {refused}"[:300]
    except httpx.HTTPError as error:
        return f"unreachable: {type(error).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"the receiver answered {response.status_code}"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
