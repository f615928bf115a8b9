"""Clones are real pods: a containerd container of the WordPress image, wp-content on a volume of its own
that outlives the pod, the source's own must-use plugins running beside ours, and a clear reason when
the pod cannot start."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest

from testenv import cluster
from testenv.ingress import IngressProcess
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, clone_manifest, condition, credentials_secret, eventually, get_json
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site

SOURCE_MU_PLUGIN = """<?php
/* Plugin Name: the host's own must-use plugin */
add_action('send_headers', static function () { header('X-Source-Mu-Plugin: ran'); });
"""


def clone_site(plane: cluster.ControlPlane, namespace: str, source: WordPressSite) -> str:
    name = f"pod-{uuid.uuid4().hex[:6]}"
    apply(plane, namespace, credentials_secret("source-login", source.admin_user, source.admin_password),
          clone_manifest(name, source.url))
    plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=180s")
    return name


def clone_pod(plane: cluster.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    pods = (get_json(plane, namespace, "pods", "-l", f"wpclone.dev/clone={name}") or {})["items"]
    running = [pod for pod in pods if "deletionTimestamp" not in pod["metadata"]]
    assert len(running) == 1, [pod["metadata"]["name"] for pod in pods]
    return running[0]


def at_clone(ingress: IngressProcess, name: str, path: str) -> httpx.Response:
    host = f"{name}.localhost:{ingress.port}"  # with the port, or WordPress redirects to its canonical URL
    return httpx.get(f"http://127.0.0.1:{ingress.port}{path}", headers={"Host": host}, timeout=30)


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def what_a_visitor_sees(ingress: IngressProcess, name: str, upload: str, stylesheet: str) -> tuple[str, str, list]:
    response = at_clone(ingress, name, "/wp-json/wp/v2/posts?per_page=100")
    assert response.status_code == 200, f"{response.status_code} {response.headers} {response.text[:300]}"
    posts = response.json()
    return (sha256(at_clone(ingress, name, upload).content), sha256(at_clone(ingress, name, stylesheet).content),
            sorted(post["title"]["rendered"] for post in posts))


def test_a_clone_is_a_containerd_pod_and_keeps_its_content_when_the_pod_is_deleted(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, ingress: IngressProcess,
        namespace: str, make_site: SiteMaker) -> None:
    source = make_site()
    name = clone_site(control_plane, namespace, source)
    pod = clone_pod(control_plane, namespace, name)
    (container,) = pod["status"]["containerStatuses"]
    assert container["containerID"].startswith("containerd://") and container["ready"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    upload = next(path for path in sorted((source.docroot / "wp-content" / "uploads").rglob("*")) if path.is_file())
    upload_path = "/" + str(upload.relative_to(source.docroot))
    stylesheet = transfer_fixtures.wp_php(source, "echo get_stylesheet();")
    stylesheet_path = f"/wp-content/themes/{stylesheet}/style.css"
    before = what_a_visitor_sees(ingress, name, upload_path, stylesheet_path)
    assert before[0] == sha256(upload.read_bytes())
    assert before[1] == sha256((source.docroot / stylesheet_path.lstrip("/")).read_bytes())
    assert before[2] and before[2] == sorted(transfer_fixtures.wp_php(
        source, "foreach (get_posts(['numberposts' => -1]) as $p) echo get_the_title($p), \"\\n\";").splitlines())

    control_plane.kubectl("delete", "pod", "-n", namespace, pod["metadata"]["name"], "--wait=false")
    replacement = eventually(
        lambda: (p := clone_pod(control_plane, namespace, name))["metadata"]["name"] != pod["metadata"]["name"]
        and all(c["ready"] for c in p["status"].get("containerStatuses") or [{"ready": False}]) and p,
        timeout=120, interval=1, what="the Deployment to recreate a Ready pod")
    assert replacement["status"]["containerStatuses"][0]["containerID"] != container["containerID"]
    def seen_now() -> tuple[str, str, list] | None:
        try:
            return what_a_visitor_sees(ingress, name, upload_path, stylesheet_path)
        except (AssertionError, httpx.HTTPError):  # the router answers 502 until the new pod is an endpoint
            return None

    eventually(lambda: seen_now() == before, timeout=60, what="the same uploads, theme and posts from the new pod")


def test_the_sources_own_must_use_plugins_run_on_the_clone_beside_ours(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, ingress: IngressProcess,
        namespace: str, make_site: SiteMaker) -> None:
    source = make_site()
    (source.docroot / "wp-content" / "mu-plugins" / "host-tweaks.php").write_text(SOURCE_MU_PLUGIN)
    name = clone_site(control_plane, namespace, source)

    page = at_clone(ingress, name, "/")
    assert page.status_code == 200
    assert page.headers.get("X-Source-Mu-Plugin") == "ran"              # the source's
    assert "noindex" in page.headers.get("X-Robots-Tag", "")            # our safety plugin
    routes = at_clone(ingress, name, "/wp-json/").json()["routes"]
    assert "/wpclone/v1/info" in routes                                 # our migrator


def test_an_image_that_is_not_there_gives_the_clone_a_clear_reason(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str,
        wordpress_sites: list[WordPressSite]) -> None:
    source = wordpress_sites[0]
    apply(control_plane, namespace, credentials_secret("source-login", source.admin_user, source.admin_password),
          clone_manifest("no-image", source.url, image="localhost/wpclone/no-such-image:1"))

    def ready_condition() -> dict[str, Any] | None:
        found = condition(get_json(control_plane, namespace, "wpc", "no-image"), "Ready")
        return found if found and found.get("reason") == "ImageUnavailable" else None

    found = eventually(ready_condition, timeout=90, interval=1, what="Ready=False with reason ImageUnavailable")
    assert found["status"] == "False"
    assert "localhost/wpclone/no-such-image:1" in found["message"]
