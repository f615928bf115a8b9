"""`helm install` on a real apiserver, then the operator and the API run with the chart's ServiceAccount
tokens (not admin) and the chart's settings: proof that the RBAC is enough, and no more than enough.

These tests start a control plane of their own (with its own container stand-in): the session's operator
watches every namespace of the shared one, and a clone it provisioned as admin would prove nothing about
the chart's RBAC. The clones copy the session's seeded WordPress sites.
"""

from __future__ import annotations

import base64
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

from testenv import api_process, binaries, cluster, pki, standin
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, clone_manifest, condition, credentials_secret, eventually, get_json
from tests.integration import transfer_fixtures
from tests.integration.transfer_fixtures import SiteMaker

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site  # writable production sites, the migrator already installed

CHART = Path(__file__).resolve().parents[2] / "charts" / "wpclone"
RELEASE_NAMESPACE = "wpclone-system"
WATCHED = "team-a"
UNWATCHED = "team-b"


@dataclass
class Release:
    name: str
    namespace: str
    notes: str
    plane: cluster.ControlPlane

    @property
    def fullname(self) -> str:
        return self.name if "wpclone" in self.name else f"{self.name}-wpclone"

    def manifest(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(helm(self.plane, "get", "manifest", self.name,
                                                       "-n", self.namespace)) if doc]

    def container_env(self, component: str) -> dict[str, str]:
        """The env the chart gives a component's container, with Secret references resolved as a kubelet would."""
        (deployment,) = [doc for doc in self.manifest() if doc["kind"] == "Deployment"
                         and doc["metadata"]["name"] == f"{self.fullname}-{component}"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {}
        for item in container["env"]:
            if "value" in item:
                env[item["name"]] = item["value"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                secret = get_json(self.plane, self.namespace, "secret", ref["name"])
                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        return env

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
    """This module's control plane, with the stand-in that runs its clone pods' WordPress."""

    plane: cluster.ControlPlane
    ingress_port: int


def install(stack: Stack, name: str, namespace: str, mariadb: MariaDB, *values: str) -> Release:
    """Install the chart as a platform team would, with the clone settings of the local stack: plain HTTP on
    *.localhost at the stand-in's port, reached by the operator through that ingress (extraEnv)."""
    plane = stack.plane
    plane.kubectl("create", "namespace", namespace)
    plane.kubectl("-n", namespace, "create", "secret", "generic", "mysql-admin", f"--from-literal=dsn={mariadb.dsn}")
    plane.kubectl("-n", namespace, "create", "secret", "generic", "api-tokens",
                  f"--from-literal=tokens={secrets.token_urlsafe(24)}")
    local_stack = [{"name": "WPCLONE_PUBLIC_PORT", "value": str(stack.ingress_port)},
                   {"name": "WPCLONE_ENDPOINT_TEMPLATE", "value": "{url}"}]
    notes = helm(plane, "install", name, str(CHART), "-n", namespace, "--wait", "--timeout=3m",
                 "--set", "mysql.existingSecret=mysql-admin", "--set", "api.tokens.existingSecret=api-tokens",
                 "--set", "clones.baseDomain=localhost", "--set", "clones.tls.enabled=false",
                 "--set", "clones.ingress.className=standin",
                 "--set-json", f"operator.extraEnv={json.dumps(local_stack)}", *values)
    return Release(name, namespace, notes, plane)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    own = cluster.start_control_plane(tmp_path_factory.mktemp("chart-cluster"))
    try:
        pods = standin.start_standin(own.kubeconfig, tmp_path_factory.mktemp("chart-standin"))
    except BaseException:
        own.stop()
        raise
    yield Stack(own, pods.port)
    pods.stop()
    own.stop()


@pytest.fixture
def site(wordpress_sites: list[WordPressSite]) -> WordPressSite:
    return wordpress_sites[0]


def login(site: WordPressSite, name: str = "source-login") -> dict[str, Any]:
    return credentials_secret(name, site.admin_user, site.admin_password)


@pytest.fixture(scope="module")
def namespaced(stack: Stack, mariadb: MariaDB) -> Iterator[Release]:
    """The chart watching one namespace (which the API also uses); it owns the CRDs."""
    plane = stack.plane
    for namespace in (WATCHED, UNWATCHED):
        plane.kubectl("create", "namespace", namespace)
    release = install(stack, "wpclone", RELEASE_NAMESPACE, mariadb,
                      "--set-json", f'operator.watchNamespaces=["{WATCHED}"]', "--set", f"api.namespace={WATCHED}")
    yield release
    subprocess.run([str(binaries.binary("helm")), "--kubeconfig", str(plane.kubeconfig), "uninstall", release.name,
                    "-n", release.namespace], capture_output=True, check=False)


def start_operator(release: Release, base: Path, namespace: str) -> OperatorProcess:
    kubeconfig = release.token_kubeconfig("operator", base / "operator.kubeconfig", namespace)
    env = {**release.container_env("operator"), "KUBECONFIG": str(kubeconfig),
           "WPCLONE_OBSERVE_SECONDS": "1", "WPCLONE_RETRY_DELAY_SECONDS": "1"}
    operator = OperatorProcess(env=env, log_path=base / "operator.log", name=f"operator as {release.name} SA")
    operator.start()
    return operator


@pytest.fixture
def operator_as_chart_sa(namespaced: Release, tmp_path: Path) -> Iterator[OperatorProcess]:
    operator = start_operator(namespaced, tmp_path, WATCHED)
    yield operator
    operator.stop()


def databases(mariadb: MariaDB, namespace: str, name: str) -> list[str]:
    prefix = f"wpc_{namespace.replace('-', '_')[:20]}_{name.replace('-', '_')}_"
    return [row for row in mariadb.sql("SHOW DATABASES").splitlines() if row.startswith(prefix)]


def refusals(log: Path) -> list[str]:
    """Log lines about a refused request (a namespaced kopf that scans namespaces or CRDs would log some)."""
    return [line for line in log.read_text().splitlines() if "Forbidden" in line or "forbidden" in line]


def wait_ready(plane: cluster.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=120s")
    return get_json(plane, namespace, "wpc", name) or {}


def as_service_account(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))


def test_helm_install_creates_everything_and_the_deployments_become_available(namespaced: Release) -> None:
    plane = namespaced.plane
    for doc in namespaced.manifest():
        namespace = doc["metadata"].get("namespace")
        found = plane.kubectl("get", doc["kind"], doc["metadata"]["name"], *(["-n", namespace] if namespace else []),
                              "-o", "name")
        assert found.strip(), f"{doc['kind']}/{doc['metadata']['name']} missing"
    for component in ("operator", "api"):
        plane.kubectl("-n", RELEASE_NAMESPACE, "wait", f"deployment/wpclone-{component}",
                      "--for=condition=Available", "--timeout=60s")
    plane.kubectl("wait", "crd/wordpressclones.wpclone.dev", "--for=condition=Established", "--timeout=30s")
    assert not plane.kubectl("get", "clusterroles", "-l", "app.kubernetes.io/instance=wpclone", "-o", "name")
    assert f"kubectl -n {WATCHED} apply -f -" in namespaced.notes
    assert "/api/v2/clone" in namespaced.notes
    # The GitOps example is valid against the installed CRD, CEL rules included.
    example = Path(__file__).resolve().parents[2] / "examples" / "clone" / "wordpressclone.yaml"
    plane.kubectl("apply", "--dry-run=server", "-n", WATCHED, "-f", str(example))


def test_the_chart_service_accounts_provision_expire_and_delete_clones(
        namespaced: Release, stack: Stack, operator_as_chart_sa: OperatorProcess, mariadb: MariaDB,
        wordpress_sites: list[WordPressSite], tmp_path: Path) -> None:
    plane = namespaced.plane
    site, other = wordpress_sites
    api_kubeconfig = namespaced.token_kubeconfig("api", tmp_path / "api.kubeconfig", WATCHED)
    api = api_process.start_api(plane, WATCHED, tmp_path / "api.log", KUBECONFIG=str(api_kubeconfig))
    try:
        # One first copy per source at a time: the first copy installs the migrator plugin on the source.
        apply(plane, WATCHED, login(site), login(other, "other-login"), clone_manifest("shop", site.url),
              clone_manifest("short-delete", other.url, "other-login", ttlMinutes=1, expiryPolicy="Delete"))
        clone = wait_ready(plane, WATCHED, "shop")
        wait_ready(plane, WATCHED, "short-delete")
        apply(plane, WATCHED, clone_manifest("short-retain", other.url, "other-login", ttlMinutes=1,
                                             expiryPolicy="Retain"))
        http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
        accepted = http.post("/api/v2/clone", json={
            "source_url": site.url, "source_username": site.admin_user, "source_password": site.admin_password,
            "customer_id": "acme", "ttl_minutes": 20})
        assert accepted.status_code == 202, accepted.text

        assert clone["status"]["url"] == f"http://shop.localhost:{stack.ingress_port}"
        assert len(databases(mariadb, WATCHED, "shop")) == 1
        for kind, name in [("secret", "shop-db"), ("secret", "shop-admin"), ("configmap", "shop-mu-plugins"),
                           ("deployment", "shop"), ("service", "shop"), ("ingress", "shop")]:
            child = get_json(plane, WATCHED, kind, name)
            assert child and child["metadata"]["ownerReferences"][0]["uid"] == clone["metadata"]["uid"], name
        job = eventually(lambda: (s := http.get(accepted.json()["status_url"]).json())["status"] == "completed" and s,
                         timeout=90, what="the API's clone job to complete")
        assert job["clone_url"] == f"http://acme.localhost:{stack.ingress_port}" and job["password"]

        plane.kubectl("delete", "-n", WATCHED, "wpc", "shop", "--timeout=60s")
        assert databases(mariadb, WATCHED, "shop") == []
        eventually(lambda: get_json(plane, WATCHED, "wpc", "short-delete") is None, timeout=120, interval=1,
                   what="the Delete-policy clone to expire and be deleted")
        retained = eventually(lambda: (c := get_json(plane, WATCHED, "wpc", "short-retain"))
                              and c["status"].get("phase") == "Expired" and c, timeout=90, interval=1,
                              what="the Retain-policy clone to be Expired")
        assert condition(retained, "Ready")["reason"] == "Expired"
        assert databases(mariadb, WATCHED, "short-retain") == []
        eventually(lambda: get_json(plane, WATCHED, "deployment", "short-retain") is None,
                   what="the expired clone's Deployment to be gone")
        assert refusals(api.log_path) == []
    finally:
        api.stop()
    assert refusals(operator_as_chart_sa.log_path) == []


def test_the_chart_service_accounts_restore_clones_to_production(
        namespaced: Release, operator_as_chart_sa: OperatorProcess, make_site: SiteMaker, tmp_path: Path) -> None:
    plane = namespaced.plane
    production, other_production = make_site(), make_site()
    api_kubeconfig = namespaced.token_kubeconfig("api", tmp_path / "api.kubeconfig", WATCHED)
    api = api_process.start_api(plane, WATCHED, tmp_path / "api.log", KUBECONFIG=str(api_kubeconfig))
    try:
        http = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {api.token}"}, timeout=30)
        job = http.post("/api/v2/clone", json={
            "source_url": other_production.url, "source_username": other_production.admin_user,
            "source_password": other_production.admin_password, "customer_id": "rest-stage"}).json()
        apply(plane, WATCHED, login(production, "production-login"),
              clone_manifest("stage", production.url, "production-login"))
        wait_ready(plane, WATCHED, "stage")
        apply(plane, WATCHED, {
            "apiVersion": "wpclone.dev/v1alpha1", "kind": "CloneRestore", "metadata": {"name": "push"},
            "spec": {"source": {"cloneRef": {"name": "stage"}},
                     "target": {"url": production.url, "credentialsSecretRef": {"name": "production-login"}}}})
        pushed = eventually(lambda: (r := get_json(plane, WATCHED, "wpcr", "push"))
                            and (r.get("status") or {}).get("phase") in ("Completed", "Failed", "RolledBack") and r,
                            timeout=120, what="the restore to finish")
        assert pushed["status"]["phase"] == "Completed", pushed["status"]
        assert pushed["status"]["backupId"]

        clone = eventually(lambda: (s := http.get(job["status_url"]).json())["status"] == "completed" and s,
                           timeout=120, what="the API's clone job to complete")
        accepted = http.post("/api/v2/restore", json={
            "source": {"url": clone["clone_url"], "username": clone["username"], "password": clone["password"]},
            "target": {"url": other_production.url, "username": other_production.admin_user,
                       "password": other_production.admin_password}})
        assert accepted.status_code == 202, accepted.text
        done = eventually(lambda: (s := http.get(accepted.json()["status_url"]).json())["status"]
                          in ("completed", "failed") and s, timeout=120, what="the API's restore job")
        assert done["status"] == "completed", done
        assert refusals(api.log_path) == []
    finally:
        api.stop()
    assert refusals(operator_as_chart_sa.log_path) == []


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
        lambda: operator.list_namespaced_pod(WATCHED),
        lambda: api.read_namespaced_secret("payroll", UNWATCHED),
        lambda: api.list_namespaced_config_map(WATCHED),
        lambda: api.list_namespaced_secret(WATCHED),
    ]
    for index, request in enumerate(refused):
        with pytest.raises(ApiException) as error:
            request()
        assert error.value.status == 403, f"request {index} was not refused"


def test_a_cluster_wide_release_lets_its_operator_work_in_any_namespace(
        namespaced: Release, stack: Stack, mariadb: MariaDB, site: WordPressSite, tmp_path: Path) -> None:
    plane = namespaced.plane
    # A second release beside the first: the CRDs already belong to the first one.
    release = install(stack, "everywhere", "wpclone-everywhere", mariadb,
                      "--set", "crds.install=false", "--set", "api.enabled=false")
    (role,) = json.loads(plane.kubectl("get", "clusterroles", "-l", "app.kubernetes.io/instance=everywhere",
                                       "-o", "json"))["items"]
    assert role["metadata"]["name"] == "everywhere-wpclone-operator"
    plane.kubectl("create", "namespace", "team-c")
    operator = start_operator(release, tmp_path, "default")
    try:
        apply(plane, "team-c", login(site), clone_manifest("blog", site.url))
        wait_ready(plane, "team-c", "blog")
        assert len(databases(mariadb, "team-c", "blog")) == 1
        plane.kubectl("delete", "-n", "team-c", "wpc", "blog", "--timeout=60s")
        assert databases(mariadb, "team-c", "blog") == []
    finally:
        operator.stop()
    assert refusals(operator.log_path) == []
    everywhere = as_service_account(release.token_kubeconfig("operator", tmp_path / "everywhere", "default"))
    with pytest.raises(ApiException) as error:
        everywhere.list_secret_for_all_namespaces()
    assert error.value.status == 403


def test_upgrade_restores_the_crds_and_uninstall_keeps_them_with_every_clone(namespaced: Release) -> None:
    plane = namespaced.plane
    crd = "crd/wordpressclones.wpclone.dev"
    plane.kubectl("patch", crd, "--type=json", "-p",
                  json.dumps([{"op": "remove", "path": "/spec/versions/0/additionalPrinterColumns"}]))
    helm(plane, "upgrade", namespaced.name, str(CHART), "-n", namespaced.namespace, "--reuse-values", "--wait")
    columns = json.loads(plane.kubectl("get", crd, "-o", "json"))["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [column["name"] for column in columns] == ["Phase", "URL", "Expires", "Age"]

    apply(plane, WATCHED, clone_manifest("kept", "https://shop.example.com", expiryPolicy="Retain"))
    helm(plane, "uninstall", namespaced.name, "-n", namespaced.namespace, "--wait")
    assert plane.kubectl("get", crd, "-o", "name").strip()
    assert get_json(plane, WATCHED, "wpc", "kept") is not None
