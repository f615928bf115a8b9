"""Webhooks (pure): which event is due when, how attempts are recorded, what is signed and sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import timedelta

import pytest

from wpclone_api.settings import ApiSettings
from wpclone_common import times
from wpclone_operator import notify, webhooks

NOW = times.parse_time("2026-12-03T12:00:00Z")
DELAYS = webhooks.retry_delays(2.0)


def test_retries_wait_twice_as_long_each_time_six_attempts_in_all() -> None:
    assert DELAYS == (2.0, 4.0, 8.0, 16.0, 32.0)


@pytest.mark.parametrize(("kind", "phase", "event"), [
    ("WordPressClone", "Ready", "completed"), ("WordPressClone", "Failed", "failed"),
    ("WordPressClone", "Expired", "expired"), ("WordPressClone", "Cloning", None),
    ("CloneRestore", "Completed", "completed"), ("CloneRestore", "RolledBack", "completed"),
    ("CloneRestore", "Failed", "failed"), ("CloneRestore", "Restoring", None)])
def test_each_phase_stands_for_its_event(kind: str, phase: str, event: str | None) -> None:
    assert webhooks.due_event(kind, phase, None, NOW, DELAYS) == event


def test_an_event_is_retried_after_its_delay_and_never_after_it_settled() -> None:
    first = webhooks.after_attempt(None, "unreachable: ConnectError", NOW, DELAYS)
    assert first == {"state": "Retrying", "attempts": 1, "lastAttemptAt": "2026-12-03T12:00:00Z",
                     "lastError": "unreachable: ConnectError"}
    assert webhooks.due_event("WordPressClone", "Ready", {"completed": first}, NOW + timedelta(seconds=1),
                              DELAYS) is None
    assert webhooks.due_event("WordPressClone", "Ready", {"completed": first}, NOW + timedelta(seconds=2),
                              DELAYS) == "completed"
    delivered = webhooks.after_attempt(first, None, NOW, DELAYS)
    assert (delivered["state"], delivered["attempts"], delivered["lastError"]) == ("Delivered", 2, None)
    assert webhooks.due_event("WordPressClone", "Ready", {"completed": delivered}, NOW + timedelta(days=1),
                              DELAYS) is None
    # Expired later: its own event, due at once.
    assert webhooks.due_event("WordPressClone", "Expired", {"completed": delivered}, NOW, DELAYS) == "expired"


def test_the_sixth_failed_attempt_gives_up() -> None:
    delivery = None
    for _ in range(6):
        delivery = webhooks.after_attempt(delivery, "the receiver answered 500", NOW, DELAYS)
    assert delivery is not None and (delivery["state"], delivery["attempts"]) == ("Failed", 6)
    assert not notify.pending("WordPressClone", {"notify": {"url": "x"}}, {"phase": "Ready",
                                                                         "notifications": {"completed": delivery}})
    assert notify.pending("WordPressClone", {"notify": {"url": "x"}}, {"phase": "Ready"})
    assert not notify.pending("WordPressClone", {}, {"phase": "Ready"})


def test_the_signature_is_an_hmac_of_the_exact_body() -> None:
    body = webhooks.encode({"event": "completed", "name": "shop"})
    assert webhooks.signature(b"key", body) == "sha256=" + hmac.new(b"key", body, hashlib.sha256).hexdigest()


def test_the_event_names_the_job_and_carries_no_secret() -> None:
    clone = {"metadata": {"namespace": "team", "name": "shop", "uid": "u1", "labels": {"wpclone.dev/job-id": "j1"}},
             "spec": {"source": {"url": "https://shop.example.com"}},
             "status": {"phase": "Ready", "url": "https://shop.clones.example.com", "expiresAt": "2026-12-03T13:00:00Z",
                        "adminSecretRef": {"name": "shop-admin"},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}]}}
    body = webhooks.event_body("WordPressClone", clone, "completed", NOW)
    assert body == {"event": "completed", "kind": "WordPressClone", "namespace": "team", "name": "shop",
                    "job_id": "j1", "phase": "Ready", "reason": "Ready", "message": None,
                    "clone_url": "https://shop.clones.example.com", "expires_at": "2026-12-03T13:00:00Z",
                    "backup_id": None, "occurred_at": "2026-12-03T12:00:00Z"}


@pytest.mark.parametrize(("secret", "why"), [
    (None, "does not exist"), ({"metadata": {"labels": {}}, "data": {"secret": "a2V5"}}, "is not labelled"),
    ({"metadata": {"labels": {"wpclone.dev/credentials": "true"}}, "data": {}}, "has no key `secret`")])
def test_the_signing_key_comes_only_from_an_opted_in_secret(secret: dict | None, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        webhooks.signing_key(secret, "hooks")


def test_a_signing_key_is_read() -> None:
    secret = {"metadata": {"labels": {"wpclone.dev/credentials": "true"}},
              "data": {"secret": base64.b64encode(b"k3y").decode()}}
    assert webhooks.signing_key(secret, "hooks") == b"k3y"


def test_each_tenant_has_its_own_webhook_secret() -> None:
    settings = ApiSettings(webhook_secrets="acme:one, globex:two:with-colon\nbare")
    assert settings.webhook_secret("acme") == "one"
    assert settings.webhook_secret("globex") == "two:with-colon"
    assert settings.webhook_secret("default") is None and settings.webhook_secret("bare") is None
