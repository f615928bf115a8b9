"""GitOps tools judge a WordPressClone by kstatus (Flux directly; Argo CD by the same observedGeneration and
Ready reading). The real library, sigs.k8s.io/cli-utils/pkg/kstatus, must agree with the clone's phase in
every version of the resource the apiserver ever held: from creation, through a spec change, to deletion,
a permanent failure or expiry.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from testenv import binaries, cluster
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, bring_ttl_forward, clone_manifest, credentials_secret, eventually, get_json
from wpclone_common import constants

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def kstatus() -> Path:
    """The kstatus command (testenv/go/kstatus), built once per version of its source into the cache."""
    return binaries.build_own_command("kstatus")


def compute(kstatus: Path, objects: list[dict[str, Any]]) -> list[str]:
    lines = "".join(json.dumps(obj) + "\n" for obj in objects)
    result = subprocess.run([str(kstatus)], input=lines, capture_output=True, text=True, check=True)
    return [json.loads(line)["status"] for line in result.stdout.splitlines()]


def expected_health(clone: dict[str, Any]) -> str | None:
    """What the clone's own record says, in kstatus terms; None before the operator has seen it."""
    status = clone.get("status") or {}
    if clone["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if not status.get("phase"):
        return None  # no controller has written anything yet: kstatus cannot know, and says Current
    if status.get("observedGeneration") != clone["metadata"]["generation"]:
        return "InProgress"
    if status["phase"] == constants.PHASE_READY:
        return "Current"
    if status["phase"] in (constants.FAILED, constants.EXPIRED):
        return "Failed"  # nothing more will happen without the user: kstatus's Stalled
    return "InProgress"


class History:
    """Every version of one clone, from a watch started before it exists (none is missed)."""

    def __init__(self, api: ApiClient, namespace: str, name: str) -> None:
        self.versions: list[dict[str, Any]] = []
        self.deleted = threading.Event()
        objects = client.CustomObjectsApi(api)
        listing = objects.list_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                                        constants.CLONE_PLURAL)
        self._stream = watch.Watch().stream(
            objects.list_namespaced_custom_object, constants.GROUP, constants.VERSION, namespace,
            constants.CLONE_PLURAL, field_selector=f"metadata.name={name}",
            resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=300)
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        try:
            for event in self._stream:
                if event["type"] == "DELETED":
                    self.deleted.set()
                    return
                self.versions.append(event["object"])
        except (ApiException, ProtocolError):
            return  # the test is over and its namespace or the apiserver is gone

    def phases(self) -> list[str | None]:
        return [(version.get("status") or {}).get("phase") for version in self.versions]


def disagreements(kstatus: Path, history: History) -> list[str]:
    computed = compute(kstatus, history.versions)
    return [f"generation {version['metadata']['generation']} phase {(version.get('status') or {}).get('phase')} "
            f"conditions {[(c['type'], c['status']) for c in (version.get('status') or {}).get('conditions', [])]}:"
            f" kstatus {health}, expected {expected}"
            for version, health in zip(history.versions, computed, strict=True)
            if (expected := expected_health(version)) is not None and health != expected]


@pytest.fixture
def site(wordpress_sites: list[WordPressSite]) -> WordPressSite:
    return wordpress_sites[0]


def login(site: WordPressSite, name: str = "source-login") -> dict[str, Any]:
    return credentials_secret(name, site.admin_user, site.admin_password)


@pytest.fixture
def watched(kube_client: ApiClient, namespace: str) -> Iterator[Any]:
    yield lambda name: History(kube_client, namespace, name)


def test_kstatus_agrees_from_creation_through_a_spec_change_to_deletion(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, watched: Any,
        site: WordPressSite, kstatus: Path) -> None:
    history = watched("shop")
    apply(control_plane, namespace, login(site), clone_manifest("shop", site.url))
    control_plane.kubectl("wait", "-n", namespace, "wpc/shop", "--for=condition=Ready", "--timeout=120s")
    control_plane.kubectl("patch", "-n", namespace, "wpc", "shop", "--type=merge", "-p",
                          json.dumps({"spec": {"ttlMinutes": 90}}))
    eventually(lambda: (c := get_json(control_plane, namespace, "wpc", "shop"))
               and c["status"].get("observedGeneration") == 2, what="the spec change to be observed")
    control_plane.kubectl("delete", "-n", namespace, "wpc", "shop", "--timeout=60s")
    assert history.deleted.wait(30)

    assert disagreements(kstatus, history) == []
    seen = compute(kstatus, history.versions)
    assert "InProgress" in seen and "Current" in seen and seen[-1] == "Terminating"
    assert constants.PHASE_READY in history.phases()


def test_kstatus_reports_a_permanent_failure_as_failed(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, watched: Any,
        kstatus: Path) -> None:
    history = watched("broken")
    no_password = credentials_secret("no-password")
    del no_password["stringData"]["password"]
    apply(control_plane, namespace, no_password, clone_manifest("broken", secret="no-password"))
    eventually(lambda: constants.FAILED in history.phases(), what="the clone to fail")
    eventually(lambda: compute(kstatus, history.versions[-1:]) == ["Failed"], timeout=15,
               what="kstatus to report the failed clone as Failed")
    assert disagreements(kstatus, history) == []


def test_kstatus_reports_an_expired_retained_clone_as_needing_the_user(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, watched: Any,
        site: WordPressSite, kstatus: Path) -> None:
    history = watched("brief")
    apply(control_plane, namespace, login(site), clone_manifest("brief", site.url, expiryPolicy="Retain"))
    eventually(lambda: constants.PHASE_READY in history.phases(), timeout=120, what="the clone to be Ready")
    bring_ttl_forward(control_plane, namespace, "brief")
    eventually(lambda: constants.EXPIRED in history.phases(), timeout=60, interval=1,
               what="the clone to expire")
    eventually(lambda: compute(kstatus, history.versions[-1:]) == ["Failed"], timeout=15,
               what="kstatus to report the expired clone as Failed (Stalled)")
    assert disagreements(kstatus, history) == []
