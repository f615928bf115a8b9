"""Small helpers the integration tests share: waiting, and objects a user would write."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testenv import cluster
from wpclone_common import constants, times

# What tests keep for people to look at (screenshots, timelines): build/test-artifacts unless set.
ARTIFACTS = Path(os.environ.get("WPCLONE_TEST_ARTIFACTS", Path(__file__).parents[1] / "build" / "test-artifacts"))


def eventually(check: Callable[[], Any], timeout: float = 60, what: str = "condition",
               interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def handled(resource: dict[str, Any] | None) -> bool:
    """Whether the operator has finished handling the resource's current spec: kopf keeps the spec it
    handled last (its diff base) once no handler is pending or due for a retry, and drops its
    per-handler progress annotations."""
    if not resource:
        return False
    annotations = resource["metadata"].get("annotations") or {}
    diffbase = f"{constants.ANNOTATIONS_PREFIX}/last-handled-configuration"
    lasting = {diffbase, f"{constants.ANNOTATIONS_PREFIX}/kopf-managed"}
    pending = [key for key in annotations if key.startswith(constants.ANNOTATIONS_PREFIX + "/") and key not in lasting]
    return diffbase in annotations and json.loads(annotations[diffbase]).get("spec") == resource["spec"] and not pending


def credentials_secret(name: str, username: str = "admin", password: str = "Adm1n-Pass!") -> dict[str, Any]:
    """A site's admin login as a user writes it: labelled, as the operator reads no other Secret."""
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": {"wpclone.dev/credentials": "true"}},
            "stringData": {"username": username, "password": password}}


def clone_manifest(name: str, source_url: str = "https://shop.example.com", secret: str = "source-login",
                   **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": name},
            "spec": {"source": {"url": source_url, "credentialsSecretRef": {"name": secret}}, **spec}}


def apply(plane: cluster.ControlPlane, namespace: str, *manifests: dict[str, Any]) -> str:
    return plane.kubectl("apply", "-n", namespace, "-f", "-",
                         input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}))


def get_json(plane: cluster.ControlPlane, namespace: str, *what: str) -> dict[str, Any] | None:
    output = plane.kubectl("get", "-n", namespace, *what, "-o", "json", "--ignore-not-found")
    return json.loads(output) if output.strip() else None


def bring_ttl_forward(plane: cluster.ControlPlane, namespace: str, name: str) -> None:
    """The clone's TTL ends now (its status.expiresAt moved to this moment): a test of what expiry does
    need not wait a whole minute, the shortest ttlMinutes."""
    now = times.format_time(times.now())
    plane.kubectl("patch", "-n", namespace, "wpc", name, "--subresource=status", "--type=merge",
                  "-p", json.dumps({"status": {"expiresAt": now}}))


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((item for item in conditions if item["type"] == type_), None)


def clone_wp_content(plane: cluster.ControlPlane, namespace: str, name: str, component: str = "wp-content") -> Path:
    """The host folder behind a clone's wp-content volume, or its database's (component database) (the node
    is this machine)."""
    (claim,) = get_json(plane, namespace, "pvc", "-l", f"wpclone.dev/clone={name},"  # type: ignore[index]
                        f"app.kubernetes.io/component={component}")["items"]
    volume = get_json(plane, "", "pv", claim["spec"]["volumeName"])
    source = (volume or {})["spec"]
    return Path((source.get("hostPath") or source["local"])["path"])


def completed_job(plane: cluster.ControlPlane, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """Job `name` once complete: its owner may be done before (it reads the runner's outcome, not the Job's
    status, which the kubelet and the Job controller report seconds later)."""
    return eventually(lambda: (job := get_json(plane, namespace, "job", name)) and any(
        c["type"] == "Complete" and c["status"] == "True" for c in (job.get("status") or {}).get("conditions") or [])
        and job, timeout=timeout, interval=0.5, what=f"Job {name} to be complete")
