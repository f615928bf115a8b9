"""Shared fixtures: the real local stack, started once per test session and stopped at its end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client import ApiClient

from testenv import api_process, cluster, operator_process, wordpress
from testenv import ingress as ingress_harness
from testenv import mariadb as mariadb_harness


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster.ControlPlane]:
    plane = cluster.start_control_plane(tmp_path_factory.mktemp("cluster"))
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def mariadb(control_plane: cluster.ControlPlane,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[mariadb_harness.MariaDB]:
    """Listens on the node's bridge too (for clone pods), so it starts after the cluster made the bridge."""
    server = mariadb_harness.start_mariadb(tmp_path_factory.mktemp("mariadb"), for_pods=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def wordpress_sites(mariadb: mariadb_harness.MariaDB,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[wordpress.WordPressSite]]:
    """Two independent seeded sites that tests only read; tests that write make their own."""
    sites = wordpress.create_sites(2, mariadb, tmp_path_factory.mktemp("sites"))
    yield sites
    for site in sites:
        site.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """On failure, show the tail of every local server's log next to the test's report."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    logs: dict[str, Path] = {}
    if isinstance(funcargs.get("control_plane"), cluster.ControlPlane):
        logs.update(funcargs["control_plane"].logs())
    for value in funcargs.values():
        log_path = getattr(value, "log_path", None)
        if isinstance(log_path, Path):
            logs[getattr(value, "name", log_path.stem)] = log_path
    for name, path in logs.items():
        if path.exists():
            tail = "\n".join(path.read_text(errors="replace").splitlines()[-30:])
            report.sections.append((f"log of {name} ({path})", tail))


@pytest.fixture(scope="session")
def kube_client(control_plane: cluster.ControlPlane) -> Iterator[ApiClient]:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(kube_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, named for it, deleted afterwards."""
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"{name}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def ingress(control_plane: cluster.ControlPlane,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ingress_harness.IngressProcess]:
    """Serves clones' Ingresses on loopback, forwarding to their Services (the one stand-in)."""
    running = ingress_harness.start_ingress(control_plane.kubectl, control_plane.kubeconfig,
                                            tmp_path_factory.mktemp("ingress") / "ingress.log")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def operator(control_plane: cluster.ControlPlane, mariadb: mariadb_harness.MariaDB,
             ingress: ingress_harness.IngressProcess,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[operator_process.OperatorProcess]:
    """The real operator process, with the CRDs installed, watching all namespaces; clones are real pods."""
    operator_process.install_crds(control_plane)
    running = operator_process.OperatorProcess(
        env=operator_process.operator_env(control_plane, mariadb, ingress),
        log_path=tmp_path_factory.mktemp("operator") / "operator.log")
    running.start()
    yield running
    running.stop()


API_NAMESPACE = "api-jobs"
_api_planes: list[cluster.ControlPlane] = []  # the cluster of the session's API, once it runs


@pytest.fixture(scope="session")
def api(control_plane: cluster.ControlPlane, kube_client: ApiClient,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[api_process.ApiProcess]:
    """The real REST API process, creating its jobs in the namespace `api-jobs`."""
    operator_process.install_crds(control_plane)
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": API_NAMESPACE}})
    running = api_process.start_api(control_plane, API_NAMESPACE, tmp_path_factory.mktemp("api") / "api.log")
    _api_planes.append(control_plane)
    yield running
    _api_planes.clear()
    running.stop()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last test of a module that used the API, the clones and restores it made through it go:
    the namespace outlives the module, and their pods would run on until their TTL, slowing every later
    test."""
    module = getattr(item, "module", None)
    if not _api_planes or getattr(nextitem, "module", None) is module:
        return
    if any("api" in other.fixturenames for other in item.session.items if getattr(other, "module", None) is module):
        _api_planes[0].kubectl("delete", "wordpressclones,clonerestores", "--all", "-n", API_NAMESPACE,
                               "--wait=false", check=False)
