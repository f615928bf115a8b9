"""A real Kubernetes cluster on this machine: etcd, kube-apiserver, controller-manager and scheduler,
and one real node (testenv/node.py) whose pods run in containerd on the run's own bridge.

etcd and the components' own ports stay on loopback; the apiserver listens on the bridge's gateway
address, the one address both the host and the pods reach (pods cannot reach the host's loopback).
"""

from __future__ import annotations

import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testenv import binaries, network, node, pki
from testenv.processes import Server, free_port, start, wait_until


@dataclass
class ControlPlane:
    base: Path
    server_url: str
    kubeconfig: Path
    pki: pki.Pki
    servers: list[Server] = field(default_factory=list)
    node: node.Node | None = None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(binaries.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout if check else result.stdout + result.stderr

    def logs(self) -> dict[str, Path]:
        return {server.name: server.log_path for server in self.servers} | (self.node.logs() if self.node else {})

    def stop(self) -> None:
        # The node first (it deletes its pods through the apiserver), then the apiserver's clients, etcd last.
        if self.node is not None:
            self.node.stop()
            self.node = None
        # Nothing of a test stack's control plane is kept: no drain. (On SIGTERM the apiserver would wait
        # ~10 s for its kubernetes Service's endpoint reconciler, until the default timeout killed it.)
        for server in reversed(self.servers):
            server.stop(timeout=1)
        self.servers.clear()
        node.clean_up()


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
        f"--secure-port={port}", f"--bind-address={network.GATEWAY}", f"--advertise-address={network.GATEWAY}",
        f"--service-cluster-ip-range={network.SERVICE_CIDR}", "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={keys.service_account_pub}",
        f"--service-account-signing-key-file={keys.service_account_key}",
        # Fills kube-system/extension-apiserver-authentication, which the other components read.
        f"--requestheader-client-ca-file={keys.ca_cert}", "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--enable-priority-and-fairness=false", "--profiling=false",
        # `kubectl logs/exec` reach the kubelet by the node's address, as the admin (traps 5 and 9).
        "--kubelet-preferred-address-types=InternalIP", f"--kubelet-client-certificate={keys.admin_cert}",
        f"--kubelet-client-key={keys.admin_key}",
    ], base / "logs" / "kube-apiserver.log")
    url = f"https://{network.GATEWAY}:{port}"
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


def start_control_plane(base: Path) -> ControlPlane:
    """Start everything, up to a Ready node with DNS, storage and a NetworkPolicy enforcer; stop all on failure."""
    binaries.ensure_binaries()
    node.refuse_if_running()
    node.clean_up()  # what a killed run left behind: its pods, mounts, iptables chains and bridge
    network.up()
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
            # The node's spec.podCIDR, which kube-router's firewall reads: the first node gets POD_CIDR.
            "--allocate-node-cidrs=true", f"--cluster-cidr={network.CLUSTER_CIDR}", "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={network.SERVICE_CIDR}",
        ]))
        plane.servers.append(_start_component("kube-scheduler", base, plane.kubeconfig, []))
        plane.node = node.start_node(base / "node", plane.kubectl, plane.kubeconfig, plane.server_url, keys)
        wait_until(lambda: bool(plane.kubectl("get", "serviceaccount", "default", "-o", "name")),
                   "the default ServiceAccount", timeout=60)
    except BaseException:
        plane.stop()
        raise
    return plane
