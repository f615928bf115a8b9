"""Attacks from and on a clone, on the real node: a clone's code reaching other clones or the cluster,
a WordPressClone asking for a foreign image or host, taking over objects it did not make, or having
the operator read a Secret that was never meant as a login."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testenv import cluster, images, network
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from testenv.wordpress import WordPressSite
from tests.helpers import apply, clone_manifest, condition, credentials_secret, eventually, get_json

pytestmark = pytest.mark.integration


@pytest.fixture
def site(wordpress_sites: list[WordPressSite]) -> WordPressSite:
    return wordpress_sites[0]


def start_clone(plane: cluster.ControlPlane, namespace: str, site: WordPressSite) -> str:
    name = f"fenced-{uuid.uuid4().hex[:6]}"
    apply(plane, namespace, credentials_secret("source-login", site.admin_user, site.admin_password),
          clone_manifest(name, site.url))
    return name


def ready_pod(plane: cluster.ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    plane.kubectl("wait", "-n", namespace, f"wpc/{name}", "--for=condition=Ready", "--timeout=180s")
    (pod,) = [p for p in (get_json(plane, namespace, "pods", "-l", f"wpclone.dev/clone={name}") or {})["items"]
              if "deletionTimestamp" not in p["metadata"]]
    return pod


def connects(plane: cluster.ControlPlane, namespace: str, pod: str, host: str, port: int, php: bool = True) -> bool:
    """Whether `pod` opens a TCP connection to host:port within a second (PHP in a clone, nc in busybox):
    on the node's own bridge an allowed connection opens in well under a millisecond."""
    probe = (["php", "-r", f"echo @fsockopen('{host}', {port}, $n, $m, 1) ? 'open' : 'closed';"] if php else
             ["sh", "-c", f"nc -w 1 {host} {port} </dev/null && echo open || echo closed"])
    return plane.kubectl("exec", "-n", namespace, pod, "--", *probe, check=False).strip().endswith("open")


def plain_pod(plane: cluster.ControlPlane, namespace: str) -> str:
    """A pod with no policy of its own: the control that shows what the clones' policies block."""
    plane.kubectl("run", "plain", "-n", namespace, f"--image={images.ref('busybox')}", "--image-pull-policy=Never",
                  "--restart=Never", "--command", "--", "sleep", "3600")
    plane.kubectl("wait", "-n", namespace, "pod/plain", "--for=condition=Ready", "--timeout=60s")
    return "plain"


def test_a_clone_reaches_its_database_but_not_another_clone_or_the_cluster(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, mariadb: MariaDB, namespace: str,
        site: WordPressSite) -> None:
    names = [start_clone(control_plane, namespace, site) for _ in ("attacker", "victim")]  # made side by side
    plain = plain_pod(control_plane, namespace)
    attacker, victim = (ready_pod(control_plane, namespace, name) for name in names)
    apiserver_port = int(control_plane.server_url.rsplit(":", 1)[1])
    attacker_name = attacker["metadata"]["name"]
    victim_ip = victim["status"]["podIP"]

    assert connects(control_plane, namespace, attacker_name, network.GATEWAY, mariadb.port)  # its own database
    # The same connections from a pod without a policy succeed (to the victim: refused by its ingress policy).
    assert connects(control_plane, namespace, plain, network.GATEWAY, apiserver_port, php=False)
    assert not connects(control_plane, namespace, plain, victim_ip, 80, php=False)
    assert not connects(control_plane, namespace, attacker_name, victim_ip, 80)
    assert not connects(control_plane, namespace, attacker_name, network.GATEWAY, apiserver_port)


def failed_with(plane: cluster.ControlPlane, namespace: str, name: str, reason: str) -> dict[str, Any]:
    return eventually(lambda: (c := get_json(plane, namespace, "wpc", name))
                      and (condition(c, "Ready") or {}).get("reason") == reason and c,
                      timeout=60, what=f"Ready=False with reason {reason}")


def test_a_clone_may_not_run_an_image_or_answer_at_a_host_outside_the_allowlists(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, site: WordPressSite) -> None:
    apply(control_plane, namespace, credentials_secret("source-login", site.admin_user, site.admin_password),
          clone_manifest("miner", site.url, image="docker.io/someone/miner:1"),
          clone_manifest("phish", site.url, host="www.bank.example"))
    miner = failed_with(control_plane, namespace, "miner", "ImageNotAllowed")
    assert "docker.io/someone/miner:1" in condition(miner, "Ready")["message"]
    failed_with(control_plane, namespace, "phish", "HostNotAllowed")
    assert miner["status"]["phase"] == "Failed"
    assert get_json(control_plane, namespace, "deployment", "miner") is None
    assert get_json(control_plane, namespace, "ingress", "phish") is None


def test_a_clone_never_takes_over_an_object_it_did_not_make(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str, site: WordPressSite) -> None:
    theirs = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "taken", "labels": {"owner": "them"}},
              "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 8080}]}}
    apply(control_plane, namespace, theirs, credentials_secret("source-login", site.admin_user, site.admin_password),
          clone_manifest("taken", site.url))
    clone = failed_with(control_plane, namespace, "taken", "NameConflict")
    assert "Service taken" in condition(clone, "Ready")["message"]
    control_plane.kubectl("delete", "-n", namespace, "wpc", "taken", "--timeout=60s")
    service = get_json(control_plane, namespace, "service", "taken")
    assert service is not None and service["spec"]["selector"] == {"app": "theirs"}
    assert not service["metadata"].get("ownerReferences")


@pytest.fixture
def counting_site() -> Iterator[tuple[str, Callable[[], int]]]:
    """A "source" that counts the connections made to it (the kernel queues them; we count the queue)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    accepted: list[socket.socket] = []

    def connections() -> int:
        with contextlib.suppress(BlockingIOError):
            while True:
                accepted.append(listener.accept()[0])
        return len(accepted)

    yield f"http://127.0.0.1:{listener.getsockname()[1]}", connections
    for connection in accepted:
        connection.close()
    listener.close()


def test_the_operator_reads_no_secret_that_is_not_a_login(
        control_plane: cluster.ControlPlane, operator: OperatorProcess, namespace: str,
        counting_site: tuple[str, Callable[[], int]]) -> None:
    url, connections = counting_site
    database_password = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "payroll-db"},
                         "stringData": {"username": "payroll", "password": "the-payroll-password"}}
    apply(control_plane, namespace, database_password, clone_manifest("exfiltrate", url, secret="payroll-db"))
    clone = failed_with(control_plane, namespace, "exfiltrate", "CredentialsNotOptedIn")
    assert "wpclone.dev/credentials=true" in condition(clone, "Ready")["message"]
    assert "the-payroll-password" not in json.dumps(clone)
    assert connections() == 0  # the "source" never heard from the operator
