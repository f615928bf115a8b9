"""`helm install` of the chart on the real cluster with the image built here: the operator and the API
run as pods under the chart's ServiceAccounts and settings, and complete clones and restores end to end;
proof that the image, the chart and its RBAC work, and that the RBAC is no more than enough.

The session's operator watches every namespace: it is stopped while these tests run (two operators
must never reconcile the same clone), and the CRDs it installed are handed over to the release.
Sources live on the node bridge's gateway address, where pods reach them.
"""

from __future__ import annotations

import datetime
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from testenv import binaries, cluster, images, network, node, pki, wordpress
from testenv.ingress import IngressProcess
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import (
    ARTIFACTS,
    apply,
    bring_ttl_forward,
    clone_manifest,
    clone_wp_content,
    completed_job,
    condition,
    credentials_secret,
    eventually,
    get_json,
)
from tests.integration import transfer_fixtures
from tests.integration.test_restore import CLONE_FILES, change_the_clone, clone_database
from tests.integration.transfer_fixtures import SiteMaker
from wpclone_common import times
from wpclone_operator import crd

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site  # writable production sites, the migrator already installed

CHART = Path(__file__).resolve().parents[2] / "charts" / "wpclone"
RELEASE_NAMESPACE = "wpclone-system"
WATCHED = "team-a"
UNWATCHED = "team-b"
CRDS = tuple(definition["metadata"]["name"] for definition in crd.all_crds().values())


@dataclass
class Release:
    name: str
    namespace: str
    notes: str
    plane: cluster.ControlPlane
    api_token: str

    @property
    def fullname(self) -> str:
        return self.name if "wpclone" in self.name else f"{self.name}-wpclone"

    def manifest(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(helm(self.plane, "get", "manifest", self.name,
                                                       "-n", self.namespace)) if doc]

    def logs(self, component: str) -> str:
        return self.plane.kubectl("logs", "-n", self.namespace, f"deployment/{self.fullname}-{component}",
                                  "--tail=-1")

    def pod(self, component: str) -> dict[str, Any]:
        pods = get_json(self.plane, self.namespace, "pods", "-l",
                        f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}")
        (pod,) = [p for p in (pods or {})["items"] if "deletionTimestamp" not in p["metadata"]]
        return pod

    def api(self) -> httpx.Client:
        """The API pod, reached from the host at its Service's ClusterIP (through kube-proxy)."""
        service = get_json(self.plane, self.namespace, "service", f"{self.fullname}-api") or {}
        return httpx.Client(base_url=f"http://{service['spec']['clusterIP']}",
                            headers={"Authorization": f"Bearer {self.api_token}"}, timeout=30)

    def token_kubeconfig(self, component: str, path: Path, namespace: str) -> Path:
        token = self.plane.kubectl("create", "token", f"{self.fullname}-{component}", "-n", self.namespace,
                                   "--duration=2h").strip()
        return pki.write_kubeconfig(path, self.plane.server_url, self.plane.pki.ca_cert, token=token,
                                    namespace=namespace)


def helm(plane: cluster.ControlPlane, *args: str) -> str:
    result = subprocess.run([str(binaries.binary("helm")), "--kubeconfig", str(plane.kubeconfig), *args],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass
class Stack:
    """The session's cluster, its ingress router and MariaDB, as the chart's pods see them."""

    plane: cluster.ControlPlane
    ingress: IngressProcess
    mariadb: MariaDB


def install(stack: Stack, name: str, namespace: str, *values: str) -> Release:
    """Install the chart as a platform team would, with the image built here and the clone settings of
    the local node: plain HTTP on *.localhost at the ingress router's port, MariaDB on the bridge."""
    plane, database = stack.plane, stack.mariadb
    plane.kubectl("create", "namespace", namespace)
    dsn = f"mysql://{database.admin_user}:{database.admin_password}@{database.address_for_pods}/"
    token = secrets.token_urlsafe(24)
    # On stdin, never on a command line (where any process listing shows them).
    apply(plane, namespace, *({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}
                              for name, data in (("mysql-admin", {"dsn": dsn}), ("api-tokens", {"tokens": token}))))
    repository, tag = images.ref("wpclone").rsplit(":", 1)
    local_node = [{"name": "WPCLONE_PUBLIC_PORT", "value": str(stack.ingress.port)},
                  {"name": "WPCLONE_BLOCK_EXTERNAL_HTTP", "value": "true"},
                  {"name": "WPCLONE_OBSERVE_SECONDS", "value": "1"},
                  {"name": "WPCLONE_RETRY_DELAY_SECONDS", "value": "1"},
                  # The test sources live on the bridge's gateway, a private address refused by default.
                  {"name": "WPCLONE_OUTBOUND_ALLOW", "value": f"{network.GATEWAY}/32"}]
    notes = helm(plane, "install", name, str(CHART), "-n", namespace, "--wait", "--timeout=3m",
                 "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
                 "--set", "image.pullPolicy=Never",
                 "--set", "mysql.existingSecret=mysql-admin",
                 "--set", f"mysql.hostForClones={database.address_for_pods}",
                 "--set", "api.tokens.existingSecret=api-tokens",
                 "--set", "clones.baseDomain=localhost", "--set", "clones.tls.enabled=false",
                 "--set", f"clones.ingress.className={stack.ingress.ingress_class}",
                 "--set", f"clones.wordpressImage={images.ref('wordpress')}",
                 "--set-json", f"operator.extraEnv={json.dumps(local_node)}", *values)
    return Release(name, namespace, notes, plane, token)


@pytest.fixture(scope="module")
def stack(control_plane: cluster.ControlPlane, operator: OperatorProcess, ingress: IngressProcess,
          mariadb: MariaDB) -> Iterator[Stack]:
    images.import_into(node.ctr(), ["wpclone"])
    operator.stop()
    for name in CRDS:  # what `helm install` needs to adopt objects it did not create
        control_plane.kubectl("label", "crd", name, "--overwrite", "app.kubernetes.io/managed-by=Helm")
        control_plane.kubectl("annotate", "crd", name, "--overwrite", "meta.helm.sh/release-name=wpclone",
                              f"meta.helm.sh/release-namespace={RELEASE_NAMESPACE}")
    try:
        yield Stack(control_plane, ingress, mariadb)
    finally:
        control_plane.kubectl("delete", "namespace", "--ignore-not-found", "--wait=false", WATCHED, UNWATCHED,
                              "team-c", RELEASE_NAMESPACE, "wpclone-everywhere")
        operator.start()  # it finishes the finalizers of the clones left in those namespaces


@pytest.fixture(scope="module")
def pod_sites(mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WordPressSite]]:
    """Two seeded sources that the chart's operator pod reaches on the bridge."""
    sites = wordpress.create_sites(2, mariadb, tmp_path_factory.mktemp("pod-sites"), host=network.GATEWAY)
    yield sites
    for site in sites:
        site.stop()


@pytest.fixture
def site(pod_sites: list[WordPressSite]) -> WordPressSite:
    return pod_sites[0]


def login(site: WordPressSite, name: str = "source-login") -> dict[str, Any]:
    return credentials_secret(name, site.admin_user, site.admin_password)


@pytest.fixture(scope="module")
def namespaced(stack: Stack) -> Iterator[Release]:
    """The chart watching one namespace (which the API also uses); it owns the CRDs."""
    plane = stack.plane
    for namespace in (WATCHED, UNWATCHED):
        plane.kubectl("create", "namespace", namespace)
    release = install(stack, "wpclone", RELEASE_NAMESPACE,
                      "--set-json", f'operator.watchNamespaces=["{WATCHED}"]', "--set", f"api.namespace={WATCHED}")
    yield release
    subprocess.run([str(binaries.binary("helm")), "--kubeconfig", str(plane.kubeconfig), "uninstall", release.name,
                    "-n", release.namespace], capture_output=True, check=False)


def databases(mariadb: MariaDB, namespace: str, name: str) -> list[str]:
    prefix = f"wpc_{namespace.replace('-', '_')[:20]}_{name.replace('-', '_')}_"
    return [row for row in mariadb.sql("SHOW DATABASES").splitlines() if row.startswith(prefix)]


def refusals(log: str) -> list[str]:
    """Log lines about a refused request (a namespaced kopf that scans namespaces or CRDs would log some)."""
    return [line for line in log.splitlines() if "Forbidden" in line or "forbidden" in line]


def wait_ready(plane: cluster.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=180s")
    return get_json(plane, namespace, "wpc", name) or {}


def as_service_account(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def post_titles(url: str, host: str | None = None) -> list[str]:
    headers = {"Host": host} if host else {}
    posts = httpx.get(f"{url}/wp-json/wp/v2/posts?per_page=100", headers=headers, timeout=30).json()
    return sorted(post["title"]["rendered"] for post in posts)


def test_helm_install_runs_the_operator_and_the_api_as_pods_of_the_image_built_here(namespaced: Release) -> None:
    plane = namespaced.plane
    for doc in namespaced.manifest():
        namespace = doc["metadata"].get("namespace")
        found = plane.kubectl("get", doc["kind"], doc["metadata"]["name"], *(["-n", namespace] if namespace else []),
                              "-o", "name")
        assert found.strip(), f"{doc['kind']}/{doc['metadata']['name']} missing"
    for component in ("operator", "api"):
        plane.kubectl("-n", RELEASE_NAMESPACE, "wait", f"deployment/wpclone-{component}",
                      "--for=condition=Available", "--timeout=60s")
        pod = namespaced.pod(component)
        (container,) = pod["status"]["containerStatuses"]
        assert container["containerID"].startswith("containerd://") and container["ready"], container
        assert container["image"].endswith(images.ref("wpclone").split("/", 1)[1])
        assert pod["spec"]["serviceAccountName"] == f"wpclone-{component}"
    assert namespaced.api().get("/healthz").status_code == 200
    plane.kubectl("wait", "crd/wordpressclones.wpclone.dev", "--for=condition=Established", "--timeout=30s")
    assert not plane.kubectl("get", "clusterroles", "-l", "app.kubernetes.io/instance=wpclone", "-o", "name")
    assert f"kubectl -n {WATCHED} apply -f -" in namespaced.notes
    assert "/api/v2/clone" in namespaced.notes
    # The GitOps example is valid against the installed CRD, CEL rules included.
    example = Path(__file__).resolve().parents[2] / "examples" / "clone" / "wordpressclone.yaml"
    plane.kubectl("apply", "--dry-run=server", "-n", WATCHED, "-f", str(example))


def test_a_cluster_wide_release_lets_its_operator_work_in_any_namespace(
        namespaced: Release, stack: Stack, site: WordPressSite, tmp_path: Path) -> None:
    """Run before the namespaced release has clones: a cluster-wide operator takes up every clone it sees,
    and theirs would slow this one's."""
    plane, mariadb = namespaced.plane, stack.mariadb
    # Only one operator may reconcile a clone: the namespaced release's pauses meanwhile.
    plane.kubectl("-n", RELEASE_NAMESPACE, "scale", "deployment/wpclone-operator", "--replicas=0")
    # A second release beside the first: the CRDs already belong to the first one.
    release = install(stack, "everywhere", "wpclone-everywhere", "--set", "crds.install=false",
                      "--set", "api.enabled=false")
    try:
        (role,) = json.loads(plane.kubectl("get", "clusterroles", "-l", "app.kubernetes.io/instance=everywhere",
                                           "-o", "json"))["items"]
        assert role["metadata"]["name"] == "everywhere-wpclone-operator"
        plane.kubectl("create", "namespace", "team-c")
        apply(plane, "team-c", login(site), clone_manifest("blog", site.url))
        wait_ready(plane, "team-c", "blog")
        assert len(databases(mariadb, "team-c", "blog")) == 1
        plane.kubectl("delete", "-n", "team-c", "wpc", "blog", "--timeout=60s")
        assert databases(mariadb, "team-c", "blog") == []
        assert refusals(release.logs("operator")) == []
        everywhere = as_service_account(release.token_kubeconfig("operator", tmp_path / "everywhere", "default"))
        with pytest.raises(ApiException) as error:
            everywhere.list_secret_for_all_namespaces()
        assert error.value.status == 403
    finally:
        helm(plane, "uninstall", release.name, "-n", release.namespace, "--wait")
        plane.kubectl("-n", RELEASE_NAMESPACE, "scale", "deployment/wpclone-operator", "--replicas=1")


@pytest.fixture
def timeline(namespaced: Release, request: pytest.FixtureRequest) -> Iterator[None]:
    """After the test, pass or fail: when each copy Job and pod of the watched namespace began and ended,
    and the namespace's events, in build/test-artifacts/chart/<test>.txt (the time of a slow run, step
    by step)."""
    yield
    lines: list[str] = []
    try:
        items = json.loads(namespaced.plane.kubectl("get", "jobs,pods", "-n", WATCHED, "-o", "json"))["items"]
    except (RuntimeError, ValueError) as error:
        items, lines = [], [f"no timeline: {error}"]
    for item in items:
        status, metadata = item.get("status") or {}, item["metadata"]
        lines.append(" ".join(str(part) for part in (
            item["kind"], metadata["name"], "created", metadata.get("creationTimestamp"), "started",
            status.get("startTime"), "completed", status.get("completionTime"), "failed", status.get("failed", 0),
            "phase", status.get("phase"), "restarts", sum(c.get("restartCount", 0)
                                                          for c in status.get("containerStatuses") or []))))
        for container in status.get("containerStatuses") or []:  # why a copy pod ended: its runner's message
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended.get("exitCode"):
                lines.append(f"Exit of {metadata['name']}: {ended['exitCode']} ({ended.get('reason')}): "
                             f"{(ended.get('message') or '').strip()[:300]}")
    events = namespaced.plane.kubectl("get", "events", "-n", WATCHED, "--sort-by=.lastTimestamp", check=False)
    folder = ARTIFACTS / "chart"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{request.node.name}.txt").write_text("\n".join(sorted(lines)) + "\n\n" + (events or ""))


def test_the_chart_pods_provision_serve_expire_and_delete_clones(
        namespaced: Release, stack: Stack, pod_sites: list[WordPressSite], timeline: None) -> None:
    plane, mariadb = namespaced.plane, stack.mariadb
    site, other = pod_sites
    # One first copy per source at a time: the first copy installs the migrator plugin on the source.
    apply(plane, WATCHED, login(site), login(other, "other-login"), clone_manifest("shop", site.url),
          clone_manifest("short-delete", other.url, "other-login", ttlMinutes=1, expiryPolicy="Delete"))
    clone = wait_ready(plane, WATCHED, "shop")
    wait_ready(plane, WATCHED, "short-delete")
    apply(plane, WATCHED, clone_manifest("short-retain", other.url, "other-login", ttlMinutes=2,
                                         expiryPolicy="Retain"))
    http = namespaced.api()
    accepted = http.post("/api/v2/clone", json={
        "source_url": site.url, "source_username": site.admin_user, "source_password": site.admin_password,
        "customer_id": "acme", "ttl_minutes": 20})
    assert accepted.status_code == 202, accepted.text

    assert clone["status"]["url"] == f"http://shop.localhost:{stack.ingress.port}"
    assert len(databases(mariadb, WATCHED, "shop")) == 1
    for kind, name in [("secret", "shop-db"), ("secret", "shop-admin"), ("configmap", "shop-mu-plugins"),
                       ("deployment", "shop"), ("service", "shop"), ("ingress", "shop")]:
        child = get_json(plane, WATCHED, kind, name)
        assert child and child["metadata"]["ownerReferences"][0]["uid"] == clone["metadata"]["uid"], name
    job = eventually(lambda: (s := http.get(accepted.json()["status_url"]).json())["status"] == "completed" and s,
                     timeout=180, what="the API's clone job to complete")
    assert job["clone_url"] == f"http://acme.localhost:{stack.ingress.port}" and job["password"]
    # The clone the chart's pods made serves the source's posts at its ingress host.
    router = f"http://127.0.0.1:{stack.ingress.port}"
    assert post_titles(router, "acme.localhost") == post_titles(site.url)

    plane.kubectl("delete", "-n", WATCHED, "wpc", "shop", "--timeout=60s")
    assert databases(mariadb, WATCHED, "shop") == []
    # Each TTL runs out now rather than after its minutes (the expiry they gave checked first); the
    # Retain-policy clone's once it is Ready.
    short = get_json(plane, WATCHED, "wpc", "short-delete") or {}
    assert times.parse_time(short["status"]["expiresAt"]) - times.parse_time(
        short["metadata"]["creationTimestamp"]) == datetime.timedelta(minutes=1)
    bring_ttl_forward(plane, WATCHED, "short-delete")
    wait_ready(plane, WATCHED, "short-retain")
    bring_ttl_forward(plane, WATCHED, "short-retain")
    eventually(lambda: get_json(plane, WATCHED, "wpc", "short-delete") is None, timeout=120, interval=1,
               what="the Delete-policy clone to expire and be deleted")
    retained = eventually(lambda: (c := get_json(plane, WATCHED, "wpc", "short-retain"))
                          and c["status"].get("phase") == "Expired" and c, timeout=120, interval=1,
                          what="the Retain-policy clone to be Expired")
    assert condition(retained, "Ready")["reason"] == "Expired"
    assert databases(mariadb, WATCHED, "short-retain") == []
    eventually(lambda: get_json(plane, WATCHED, "deployment", "short-retain") is None,
               what="the expired clone's Deployment to be gone")
    assert refusals(namespaced.logs("api")) == []
    assert refusals(namespaced.logs("operator")) == []


def test_the_chart_pods_restore_clones_to_production(namespaced: Release, stack: Stack,
                                                    make_site: SiteMaker, timeline: None) -> None:
    plane = namespaced.plane
    production = make_site(host=network.GATEWAY)
    other_production = make_site(host=network.GATEWAY)
    http = namespaced.api()
    job = http.post("/api/v2/clone", json={
        "source_url": other_production.url, "source_username": other_production.admin_user,
        "source_password": other_production.admin_password, "customer_id": "rest-stage"}).json()
    apply(plane, WATCHED, login(production, "production-login"),
          clone_manifest("stage", production.url, "production-login"))
    wait_ready(plane, WATCHED, "stage")
    change_the_clone(stack.mariadb, clone_database(plane, WATCHED, "stage"), clone_wp_content(plane, WATCHED, "stage"))
    apply(plane, WATCHED, {
        "apiVersion": "wpclone.dev/v1alpha1", "kind": "CloneRestore", "metadata": {"name": "push"},
        "spec": {"source": {"cloneRef": {"name": "stage"}},
                 "target": {"url": production.url, "credentialsSecretRef": {"name": "production-login"}}}})
    pushed = eventually(lambda: (r := get_json(plane, WATCHED, "wpcr", "push"))
                        and (r.get("status") or {}).get("phase") in ("Completed", "Failed", "RolledBack") and r,
                        timeout=180, what="the restore to finish")
    assert pushed["status"]["phase"] == "Completed", pushed["status"]
    assert pushed["status"]["backupId"]
    # Copied by Jobs (the chart's default), under the accounts the operator made for them.
    for copy_job in ("stage-copy", "push-restore"):
        done_job = completed_job(plane, WATCHED, copy_job)
        assert done_job["spec"]["template"]["spec"]["serviceAccountName"] == copy_job

    assert "Made on the clone" in post_titles(production.url)
    assert (production.docroot / "wp-content" / CLONE_FILES["uploads"]).read_bytes() == b"media made on the clone\n"

    clone = eventually(lambda: (s := http.get(job["status_url"]).json())["status"] == "completed" and s,
                       timeout=180, what="the API's clone job to complete")
    change_the_clone(stack.mariadb, clone_database(plane, WATCHED, "rest-stage"),
                     clone_wp_content(plane, WATCHED, "rest-stage"))
    accepted = http.post("/api/v2/restore", json={
        "source": {"url": clone["clone_url"], "username": clone["username"], "password": clone["password"]},
        "target": {"url": other_production.url, "username": other_production.admin_user,
                   "password": other_production.admin_password}})
    assert accepted.status_code == 202, accepted.text
    done = eventually(lambda: (s := http.get(accepted.json()["status_url"]).json())["status"]
                      in ("completed", "failed") and s, timeout=180, what="the API's restore job")
    assert done["status"] == "completed", done
    assert "Made on the clone" in post_titles(other_production.url)
    assert all((other_production.docroot / "wp-content" / path).is_file() for path in CLONE_FILES.values())
    assert refusals(namespaced.logs("api")) == []
    assert refusals(namespaced.logs("operator")) == []


def test_namespaced_service_accounts_are_refused_outside_what_they_need(namespaced: Release, tmp_path: Path) -> None:
    plane = namespaced.plane
    plane.kubectl("-n", UNWATCHED, "create", "secret", "generic", "payroll", "--from-literal=password=x")
    operator = as_service_account(namespaced.token_kubeconfig("operator", tmp_path / "operator", WATCHED))
    api = as_service_account(namespaced.token_kubeconfig("api", tmp_path / "api", WATCHED))
    refused = [
        lambda: operator.read_namespaced_secret("payroll", UNWATCHED),  # a namespace it does not manage
        lambda: operator.list_namespaced_secret(WATCHED),  # it reads Secrets by name only
        lambda: operator.read_namespaced_secret("mysql-admin", RELEASE_NAMESPACE),  # its DSN comes as env
        lambda: operator.list_namespace(),
        lambda: operator.list_namespaced_pod(UNWATCHED),
        lambda: api.read_namespaced_secret("payroll", UNWATCHED),
        lambda: api.list_namespaced_config_map(WATCHED),
        lambda: api.list_namespaced_secret(WATCHED),
    ]
    for index, request in enumerate(refused):
        with pytest.raises(ApiException) as error:
            request()
        assert error.value.status == 403, f"request {index} was not refused"


def test_upgrade_restores_the_crds_and_uninstall_keeps_them_with_every_clone(namespaced: Release) -> None:
    plane = namespaced.plane
    crd = "crd/wordpressclones.wpclone.dev"
    plane.kubectl("patch", crd, "--type=json", "-p",
                  json.dumps([{"op": "remove", "path": "/spec/versions/0/additionalPrinterColumns"}]))
    helm(plane, "upgrade", namespaced.name, str(CHART), "-n", namespaced.namespace, "--reuse-values", "--wait")
    columns = json.loads(plane.kubectl("get", crd, "-o", "json"))["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [column["name"] for column in columns] == ["Phase", "URL", "Expires", "Age"]

    # Its source does not resolve from a pod (cluster DNS only): the clone just stays Pending.
    apply(plane, WATCHED, clone_manifest("kept", "https://shop.example.com", expiryPolicy="Retain"))
    helm(plane, "uninstall", namespaced.name, "-n", namespaced.namespace, "--wait")
    assert plane.kubectl("get", crd, "-o", "name").strip()
    assert get_json(plane, WATCHED, "wpc", "kept") is not None
