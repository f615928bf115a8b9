"""Webhooks on the real stack: a receiver in the test gets signed events when jobs complete, fail or expire."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from testenv import api_process, cluster, processes
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, bring_ttl_forward, clone_manifest, credentials_secret, eventually, get_json

pytestmark = pytest.mark.integration
KEY = "receiver-signing-key"


@dataclass
class Receiver:
    """An HTTP receiver on loopback: records every POST; answers 500 to the first POST about each of the
    resources named in `down_once`."""

    url: str
    down_once: set[str] = field(default_factory=set)
    received: list[dict[str, Any]] = field(default_factory=list)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [post for post in self.received if post["status"] == 204
                and (name is None or post["json"]["name"] == name)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = processes.free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks/wpclone")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            name = json.loads(body)["name"]
            status = 500 if name in state.down_once else 204
            state.down_once.discard(name)
            state.received.append({"headers": dict(self.headers), "body": body, "json": json.loads(body),
                                   "status": status, "path": self.path})
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


def signed_by(post: dict[str, Any], key: str) -> bool:
    expected = "sha256=" + hmac.new(key.encode(), post["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(post["headers"]["X-WPClone-Signature"], expected)


def notify_secret(name: str = "hooks") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name,
                                                              "labels": {"wpclone.dev/credentials": "true"}},
            "stringData": {"secret": KEY}}


def deliveries(plane: cluster.ControlPlane, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return ((get_json(plane, namespace, kind, name) or {}).get("status") or {}).get("notifications") or {}


def test_clones_tell_their_webhook_they_completed_failed_or_expired_signed_and_retried(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str,
        wordpress_sites: list[WordPressSite], receiver: Receiver) -> None:
    """Four clones at once: one Retained (its receiver down for a moment), one with a wrong password,
    one deleted at its TTL, and one whose receiver never answers."""
    site, closed = wordpress_sites[0], processes.free_port()
    receiver.down_once.add("hooked")  # its first POST meets a receiver that is down for a moment
    notify = {"url": receiver.url, "secretRef": {"name": "hooks"}}
    apply(control_plane, namespace, notify_secret(), credentials_secret("wrong-login", site.admin_user, "wrong"),
          credentials_secret("source-login", site.admin_user, site.admin_password),
          clone_manifest("hooked", site.url, expiryPolicy="Retain", notify=notify),
          clone_manifest("denied", site.url, secret="wrong-login", notify=notify),
          clone_manifest("brief", site.url, notify=notify),
          clone_manifest("nobody-listens", site.url,
                         notify={"url": f"http://127.0.0.1:{closed}/hook", "secretRef": {"name": "hooks"}}))

    eventually(lambda: deliveries(control_plane, namespace, "wpc", "hooked").get("completed", {}).get("state")
               == "Delivered", timeout=180, what="the completed event to be delivered")
    (completed,) = receiver.events("hooked")
    assert completed["json"]["event"] == "completed" and completed["json"]["phase"] == "Ready"
    assert completed["json"]["clone_url"].startswith("http://hooked.localhost")
    assert signed_by(completed, KEY) and not signed_by(completed, "another key")
    assert completed["headers"]["X-WPClone-Event"] == "completed"
    assert deliveries(control_plane, namespace, "wpc", "hooked")["completed"]["attempts"] == 2
    first = next(post for post in receiver.received if post["json"]["name"] == "hooked")
    assert first["status"] == 500
    assert first["headers"]["X-WPClone-Delivery"] == completed["headers"]["X-WPClone-Delivery"]

    eventually(lambda: receiver.events("denied"), timeout=120, what="the failed event")
    (failed,) = receiver.events("denied")
    assert (failed["json"]["event"], failed["json"]["reason"]) == ("failed", "LoginFailed") and signed_by(failed, KEY)

    eventually(lambda: receiver.events("brief"), timeout=180, what="brief's completed event")
    for name in ("hooked", "brief"):  # brief's expiryPolicy is Delete: the resource goes at its TTL
        bring_ttl_forward(control_plane, namespace, name)
    eventually(lambda: [post["json"]["event"] for post in receiver.events("hooked")] == ["completed", "expired"],
               timeout=90, what="the expired event")
    assert signed_by(receiver.events("hooked")[1], KEY)
    assert deliveries(control_plane, namespace, "wpc", "hooked")["expired"]["state"] == "Delivered"
    eventually(lambda: get_json(control_plane, namespace, "wpc", "brief") is None, timeout=90,
               what="brief to be deleted")
    assert [post["json"]["event"] for post in receiver.events("brief")] == ["completed", "expired"]
    assert site.admin_password not in json.dumps([post["json"] for post in receiver.received])

    gave_up = eventually(lambda: (d := deliveries(control_plane, namespace, "wpc", "nobody-listens")
                                  .get("completed", {})).get("state") == "Failed" and d, timeout=120,
                         what="the unreachable webhook to be given up")
    assert gave_up["attempts"] == 6 and gave_up["lastError"].startswith("unreachable")
    events = json.loads(control_plane.kubectl("get", "events", "-n", namespace, "-o", "json"))["items"]
    assert any(event["reason"] == "WebhookFailed" for event in events)
    # The clone itself is fine: a receiver's outage is no clone's failure.
    assert get_json(control_plane, namespace, "wpc", "nobody-listens")["status"]["phase"] == "Ready"


def test_rest_jobs_with_a_callback_url_are_signed_with_the_tenants_secret(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str,
        wordpress_sites: list[WordPressSite], receiver: Receiver, tmp_path: Path) -> None:
    site, tenant_key = wordpress_sites[0], secrets.token_urlsafe(24)
    api = api_process.start_api(control_plane, namespace, tmp_path / "api.log", tokens="acme:t-acme,globex:t-globex",
                                WPCLONE_API_WEBHOOK_SECRETS=f"acme:{tenant_key}")
    try:
        acme = httpx.Client(base_url=api.url, headers={"Authorization": "Bearer t-acme"}, timeout=30)
        body = {"source_url": site.url, "source_username": site.admin_user, "source_password": site.admin_password,
                "customer_id": f"cb-{uuid.uuid4().hex[:6]}", "callback_url": receiver.url}
        accepted = acme.post("/api/v2/clone", json=body)
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()["job_id"]
        eventually(lambda: receiver.events(body["customer_id"]), timeout=180, what="the REST clone's event")
        (event,) = receiver.events(body["customer_id"])
        assert event["json"]["job_id"] == job and event["json"]["event"] == "completed"
        assert signed_by(event, tenant_key)
        status = acme.get(f"/api/v2/job-status/{job}").json()
        assert status["notifications"]["completed"]["state"] == "Delivered"
        stored = get_json(control_plane, namespace, "secret", status_secret_name(control_plane, namespace, job))
        assert base64.b64decode(stored["data"]["secret"]).decode() == tenant_key
        assert tenant_key not in json.dumps(get_json(control_plane, namespace, "wpc", body["customer_id"]))

        # A restore's end too: a dry run of the clone into its source, with the same callback.
        login = {"url": status["clone_url"], "username": status["username"], "password": status["password"]}
        target = {"url": site.url, "username": site.admin_user, "password": site.admin_password}
        restore = acme.post("/api/v2/restore", json={"source": login, "target": target, "dry_run": True,
                                                      "callback_url": receiver.url})
        assert restore.status_code == 202, restore.text
        restore_job = restore.json()["job_id"]
        eventually(lambda: [post for post in receiver.events() if post["json"]["job_id"] == restore_job],
                   timeout=120, what="the restore's event")
        (ended,) = [post for post in receiver.events() if post["json"]["job_id"] == restore_job]
        assert (ended["json"]["kind"], ended["json"]["event"]) == ("CloneRestore", "completed")
        assert signed_by(ended, tenant_key) and status["password"] not in ended["body"].decode()

        # A tenant with no signing secret may not name a callback_url; a bad URL is refused as such.
        globex = httpx.Client(base_url=api.url, headers={"Authorization": "Bearer t-globex"}, timeout=30)
        refused = globex.post("/api/v2/clone", json={**body, "customer_id": "cb-globex"})
        assert refused.status_code == 422 and "webhook signing secret" in refused.json()["message"]
        bad = acme.post("/api/v2/clone", json={**body, "customer_id": "cb-bad", "callback_url": "ftp://x"})
        assert bad.status_code == 422 and "callback_url" in bad.json()["message"]
    finally:
        api.stop()


def status_secret_name(plane: cluster.ControlPlane, namespace: str, job: str) -> str:
    (clone,) = get_json(plane, namespace, "wpc", "-l", f"wpclone.dev/job-id={job}")["items"]
    return str(clone["spec"]["notify"]["secretRef"]["name"])
