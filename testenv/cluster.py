"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, controller-manager,
scheduler, and kwok with one fake node, so Deployments become Pods that report Running and Ready."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testenv import binaries, pki
from testenv.processes import Server, free_port, start, wait_until

FAKE_NODE = "kwok-node-0"
STAGES = Path(__file__).parent / "kwok-stages.yaml"
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.0.1.0/24"


@dataclass
class ControlPlane:
    base: Path
    server_url: str
    kubeconfig: Path
    pki: pki.Pki
    servers: list[Server] = field(default_factory=list)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(binaries.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout if check else result.stdout + result.stderr

    def logs(self) -> dict[str, Path]:
        return {server.name: server.log_path for server in self.servers}

    def stop(self) -> None:
        # Reverse order: the apiserver's clients first, etcd last.
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()


def _get(url: str, control_plane_pki: pki.Pki) -> bytes:
    context = ssl.create_default_context(cafile=str(control_plane_pki.ca_cert))
    context.load_cert_chain(str(control_plane_pki.admin_cert), str(control_plane_pki.admin_key))
    with urllib.request.urlopen(url, context=context, timeout=2) as response:
        return bytes(response.read())


def _start_etcd(base: Path) -> tuple[Server, str]:
    client_port, peer_port = free_port(), free_port()
    client_url = f"http://127.0.0.1:{client_port}"
    server = start("etcd", [
        str(binaries.binary("etcd")), "--name=testenv", f"--data-dir={base / 'etcd'}",
        f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=testenv=http://127.0.0.1:{peer_port}",
        "--unsafe-no-fsync=true", "--quota-backend-bytes=2147483648", "--log-level=warn",
    ], base / "logs" / "etcd.log")
    wait_until(lambda: b"true" in urllib.request.urlopen(f"{client_url}/health", timeout=1).read(),
               "etcd health", server=server)
    return server, client_url


def _start_apiserver(base: Path, keys: pki.Pki, etcd_url: str) -> tuple[Server, str]:
    port = free_port()
    server = start("kube-apiserver", [
        str(binaries.binary("kube-apiserver")), f"--etcd-servers={etcd_url}",
        f"--cert-dir={base / 'apiserver-certs'}", f"--tls-cert-file={keys.apiserver_cert}",
        f"--tls-private-key-file={keys.apiserver_key}", f"--client-ca-file={keys.ca_cert}",
        f"--secure-port={port}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={keys.service_account_pub}",
        f"--service-account-signing-key-file={keys.service_account_key}",
        # Fills kube-system/extension-apiserver-authentication, which the other components read.
        f"--requestheader-client-ca-file={keys.ca_cert}", "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--enable-priority-and-fairness=false", "--profiling=false", "--endpoint-reconciler-type=none",
    ], base / "logs" / "kube-apiserver.log")
    url = f"https://127.0.0.1:{port}"
    wait_until(lambda: _get(f"{url}/readyz", keys) == b"ok", "kube-apiserver /readyz",
               timeout=120, server=server)
    return server, url


def _start_component(name: str, base: Path, kubeconfig: Path, extra: list[str]) -> Server:
    port = free_port()
    return start(name, [
        str(binaries.binary(name)), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}", *extra,
    ], base / "logs" / f"{name}.log")


def _start_kwok(base: Path, kubeconfig: Path) -> Server:
    return start("kwok", [
        str(binaries.binary("kwok")), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        f"--cidr={POD_CIDR}", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{free_port()}", "-c", str(STAGES),
    ], base / "logs" / "kwok.log")


FAKE_NODE_MANIFEST = {
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": FAKE_NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
                 "labels": {"kubernetes.io/hostname": FAKE_NODE, "kubernetes.io/os": "linux",
                            "type": "kwok"}},
    "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "250"},
               "capacity": {"cpu": "32", "memory": "128Gi", "pods": "250"}},
}


def start_control_plane(base: Path) -> ControlPlane:
    """Start everything, wait until a pod could be scheduled and reported Ready; stop all on failure."""
    binaries.ensure_binaries()
    base.mkdir(parents=True, exist_ok=True)
    keys = pki.create_pki(base / "pki")
    plane = ControlPlane(base=base, server_url="", kubeconfig=base / "kubeconfig", pki=keys)
    try:
        etcd, etcd_url = _start_etcd(base)
        plane.servers.append(etcd)
        apiserver, plane.server_url = _start_apiserver(base, keys, etcd_url)
        plane.servers.append(apiserver)
        pki.write_kubeconfig(plane.kubeconfig, plane.server_url, keys.ca_cert,
                             client_cert=keys.admin_cert, client_key=keys.admin_key)
        plane.servers.append(_start_component("kube-controller-manager", base, plane.kubeconfig, [
            f"--service-account-private-key-file={keys.service_account_key}",
            f"--root-ca-file={keys.ca_cert}", "--controllers=*", "--use-service-account-credentials=false",
            "--concurrent-gc-syncs=5", "--node-monitor-grace-period=60s",
        ]))
        plane.servers.append(_start_component("kube-scheduler", base, plane.kubeconfig, []))
        plane.servers.append(_start_kwok(base, plane.kubeconfig))
        plane.kubectl("apply", "-f", "-", input=json.dumps(FAKE_NODE_MANIFEST))
        wait_until(lambda: _node_ready(plane), f"node {FAKE_NODE} Ready", timeout=60)
        wait_until(lambda: bool(plane.kubectl("get", "serviceaccount", "default", "-o", "name")),
                   "the default ServiceAccount", timeout=60)
    except BaseException:
        plane.stop()
        raise
    return plane


def _node_ready(plane: ControlPlane) -> bool:
    node = json.loads(plane.kubectl("get", "node", FAKE_NODE, "-o", "json"))
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))
