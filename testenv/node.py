"""A real node: Debian's containerd and runc run the pods a kubelet of ours asks for, on the run's bridge.

Beside the kubelet run kube-proxy (Services in iptables), CoreDNS (cluster DNS on the bridge's gateway),
kube-router's firewall alone (NetworkPolicy enforcement), each built from the Go module proxy, and our
own volume provisioner (testenv/go/node-volumes: the default StorageClass, a folder per claim). The
machine's traps and their fixes are in ../shared/reference/real-node.md; the numbers below (trap N) point
there.

One node per machine: its containerd and kubelet use fixed folders (STATE, ROOT), so a start can find
and remove what an earlier run that was killed left behind, and imported images survive between runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testenv import binaries, images, network, pki
from testenv.processes import Server, free_port, start, wait_until

Kubectl = Callable[..., str]  # ControlPlane.kubectl: (*args, input=None, check=True) -> output

NAME = "wpclone-node"
STATE = Path("/run/wpclone-node")          # sockets, shims' bundles, CNI state: gone on reboot
ROOT = Path("/var/lib/wpclone-node")       # containerd's images and the kubelet's pods
CONTAINERD_SOCKET = STATE / "containerd.sock"
KUBELET_ROOT = ROOT / "kubelet"
VOLUMES = ROOT / "volumes"                 # where node-volumes puts each claim's folder
NODE_MOUNT_ROOTS = (KUBELET_ROOT, STATE, ROOT / "containerd")  # where the node mounts, and nothing else
CNI_NETWORK = "wpclone"
NODE_IMAGES = ("pause", "busybox", "wordpress")
STORAGE_CLASS = "node-volumes"

# Trap 1: the kubelet asks for negative oom_score_adj values this machine may not set (no
# CAP_SYS_RESOURCE); runc then fails with "can't get final child's PID from pipe". This wrapper, set
# as containerd's runc BinaryName, makes them 0 in the spec runc reads, and leaves the rest alone.
RUNC_WRAPPER = """#!/bin/sh
previous=""
for argument in "$@"; do
  case "$previous" in
    --bundle|-b) spec="$argument/config.json" ;;
    --process|-p) spec="$argument" ;;
  esac
  previous="$argument"
done
if [ -n "${spec:-}" ] && [ -f "$spec" ]; then
  sed -i 's/"oomScoreAdj":-[0-9]*/"oomScoreAdj":0/' "$spec"
fi
exec /usr/sbin/runc "$@"
"""


def refuse_if_running() -> None:
    """One node per machine: a second start would take the first one's pods, folders and bridge."""
    pid_file = ROOT / "containerd.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text())
        if b"containerd" in Path(f"/proc/{pid}/cmdline").read_bytes():
            raise RuntimeError(f"a wpclone node already runs on this machine (containerd pid {pid}): "
                               "stop it first (`make down`, or end the test run that started it)")


def ctr() -> list[str]:
    """The `ctr` command for the node's containerd, in the namespace the kubelet uses."""
    return ["ctr", "--address", str(CONTAINERD_SOCKET), "-n", "k8s.io"]


@dataclass
class Node:
    base: Path
    kubectl: Kubectl
    servers: list[Server] = field(default_factory=list)

    def logs(self) -> dict[str, Path]:
        return {server.name: server.log_path for server in self.servers}

    def stop(self) -> None:
        by_name = {server.name: server for server in self.servers}
        # Trap 8: pods outlive their kubelet and containerd. Stop them through the kubelet first (so the
        # CNI frees their addresses), then whatever is left by force.
        if "kubelet" in by_name and "containerd" in by_name:
            delete_all_pods(self.kubectl)
        for server in reversed(self.servers):
            server.stop(timeout=15)
        self.servers.clear()
        clean_up()


def delete_all_pods(kubectl: Kubectl) -> None:
    """Delete every pod and wait (bounded) until the kubelet has stopped their containers. Their
    controllers go first, or a Deployment would start a new pod for each one deleted."""
    kubectl("delete", "deployments,replicasets,statefulsets,daemonsets,jobs", "--all-namespaces", "--all",
            "--wait=false", check=False)
    kubectl("delete", "pods", "--all-namespaces", "--all", "--grace-period=0", "--force", "--wait=false",
            check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = subprocess.run([*ctr(), "tasks", "ls", "-q"], capture_output=True, text=True, check=False)
        if tasks.returncode != 0 or not tasks.stdout.strip():
            return
        time.sleep(0.5)


def _pids_in_pod_cgroups() -> list[int]:
    pids: list[int] = []
    for procs in Path("/sys/fs/cgroup/pids/kubepods").rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(line) for line in procs.read_text().split()]
    return pids


def _shim_pids() -> list[int]:
    """The containerd shims of this node's containerd (they name its socket on their command line)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ") if proc.name.isdigit() else b""
            if b"containerd-shim" in cmdline and str(CONTAINERD_SOCKET).encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def _mounts_under(*roots: Path) -> list[str]:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return [m for m in mounts if any(m == str(root) or m.startswith(f"{root}/") for root in roots)]


def _kill_strays() -> None:
    """Pods' processes and containerd shims of this node that outlived their parents."""
    for pid in [*_pids_in_pod_cgroups(), *_shim_pids()]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)


def _unmount_under(*roots: Path) -> None:
    for mount in sorted(_mounts_under(*roots), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def _remove_pod_cgroups() -> None:
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / "kubepods"
        if not top.is_dir():
            continue
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _remove_netns() -> None:
    for netns in Path("/var/run/netns").glob("cni-*"):
        subprocess.run(["umount", str(netns)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            netns.unlink()


def _remove_leftover_chains() -> None:
    """Every KUBE-* chain and the jumps to them (kube-router's own cleanup leaves its chains here)."""
    for command in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = network.run(command, "-w", "-t", table, "-S", check=False).stdout.splitlines()
            chains = [rule.split()[1] for rule in rules if rule.startswith("-N KUBE-")]
            for rule in rules:
                if rule.startswith("-A ") and not rule.split()[1].startswith("KUBE-") and " -j KUBE-" in rule:
                    network.run(command, "-w", "-t", table, "-D", *shlex.split(rule[3:]), check=False)
            for action in ("-F", "-X"):
                for chain in chains:
                    network.run(command, "-w", "-t", table, action, chain, check=False)


def clean_up() -> None:
    """Remove every trace of a node run: processes, mounts, cgroups, netns, iptables chains, the bridge.

    Safe to call when nothing is left, and what the control plane's start calls first (a killed run
    may precede it).
    """
    _kill_strays()
    _unmount_under(*NODE_MOUNT_ROOTS)
    _remove_netns()
    _remove_pod_cgroups()
    # Trap 8: the kubelet, kube-proxy and kube-router leave iptables chains behind.
    kube_proxy = binaries.binary("kube-proxy")
    if kube_proxy.exists():
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, check=False, timeout=60)
    _remove_leftover_chains()
    network.down()
    subprocess.run(["rm", "-rf", str(STATE), str(KUBELET_ROOT)], check=False)


def leftovers() -> list[str]:
    """What a stopped node must not leave behind: pod processes, shims, mounts, netns, chains, the bridge."""
    found = [f"pod process {pid}" for pid in _pids_in_pod_cgroups()]
    found += [f"containerd shim {pid}" for pid in _shim_pids()]
    found += [f"mount {m}" for m in _mounts_under(*NODE_MOUNT_ROOTS)]
    found += [f"network namespace {netns.name}" for netns in Path("/var/run/netns").glob("cni-*")]
    rules = network.run("iptables-save", check=False).stdout
    found += [f"iptables chain {line.split()[0][1:]}" for line in rules.splitlines()
              if line.startswith(":") and line.split()[0][1:].startswith(("KUBE-", "WPCLONE-"))]
    if network.run("ip", "link", "show", network.BRIDGE, check=False).returncode == 0:
        found.append(f"bridge {network.BRIDGE}")
    return found


def _containerd_config(base: Path) -> Path:
    wrapper = base / "runc-wrapper"
    wrapper.write_text(RUNC_WRAPPER)
    wrapper.chmod(0o755)
    config = f"""version = 2
root = "{ROOT / 'containerd'}"
state = "{STATE / 'containerd'}"
[grpc]
  address = "{CONTAINERD_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.ref('pause')}"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{wrapper}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{STATE / 'cni' / 'net.d'}"
"""
    path = base / "containerd.toml"
    path.write_text(config)
    return path


def _cni_config() -> None:
    """The bridge plugin on our bridge, no masquerading and no default route: pods reach the bridge and
    the Service range (which kube-proxy turns into pod addresses on the bridge), nothing else."""
    conflist = {
        "cniVersion": "0.4.0", "name": CNI_NETWORK,
        "plugins": [
            {"type": "bridge", "bridge": network.BRIDGE, "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": network.POD_CIDR, "gateway": network.GATEWAY}]],
                      "routes": [{"dst": network.SERVICE_CIDR}], "dataDir": str(STATE / "cni" / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    folder = STATE / "cni" / "net.d"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "10-wpclone.conflist").write_text(json.dumps(conflist, indent=2))


def _start_containerd(base: Path) -> Server:
    server = start("containerd", ["containerd", "--config", str(_containerd_config(base))],
                   base / "logs" / "containerd.log")
    (ROOT / "containerd.pid").write_text(str(server.process.pid))
    wait_until(lambda: subprocess.run([*ctr(), "version"], capture_output=True).returncode == 0,
               "containerd", timeout=30, server=server)
    # Containers recorded by a killed run: their tasks are gone with STATE; drop the records too.
    leftovers = subprocess.run([*ctr(), "containers", "ls", "-q"], capture_output=True, text=True).stdout.split()
    if leftovers:
        subprocess.run([*ctr(), "containers", "rm", *leftovers], capture_output=True, check=False)
    return server


def _kubelet_config(base: Path, ca_cert: Path, serving: tuple[Path, Path], healthz_port: int) -> Path:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        # Trap 3: cgroup v1 here.
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        # Trap 9: `kubectl logs/exec` come from the apiserver with the admin's client certificate.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(ca_cert)}},
        "authorization": {"mode": "AlwaysAllow"},
        "address": network.GATEWAY, "port": free_port(), "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": healthz_port,
        "tlsCertFile": str(serving[0]), "tlsPrivateKeyFile": str(serving[1]),
        "containerRuntimeEndpoint": f"unix://{CONTAINERD_SOCKET}",
        # Trap 6: cluster DNS is CoreDNS on the gateway; no upstream resolver is handed to pods.
        "clusterDNS": [network.GATEWAY], "clusterDomain": "cluster.local", "resolvConf": "",
        # A test machine's disk and memory fill up and free again; never evict a clone for it.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        # The pod bridge is a /24: room for 250 pods (the scale bench runs 200 clones at once).
        "serializeImagePulls": False, "maxPods": 250, "podPidsLimit": 4096,
        "syncFrequency": "5s", "fileCheckFrequency": "5s", "nodeStatusUpdateFrequency": "5s",
        "volumeStatsAggPeriod": "0s",
    }
    path = base / "kubelet.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def _node_ready(kubectl: Kubectl) -> bool:
    node = json.loads(kubectl("get", "node", NAME, "-o", "json"))
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def _start_kubelet(base: Path, kubectl: Kubectl, server_url: str, keys: pki.Pki) -> Server:
    # The Node authorizer admits a kubelet by its certificate: user system:node:NAME in system:nodes.
    client_cert, client_key = keys.issue("kubelet-client", f"system:node:{NAME}", "system:nodes")
    serving = keys.issue("kubelet-serving", NAME, server_ips=(network.GATEWAY,))
    kubeconfig = pki.write_kubeconfig(base / "kubelet.kubeconfig", server_url, keys.ca_cert,
                                      client_cert=client_cert, client_key=client_key)
    healthz_port = free_port()
    server = start("kubelet", [
        str(binaries.binary("kubelet")), f"--config={_kubelet_config(base, keys.ca_cert, serving, healthz_port)}",
        f"--kubeconfig={kubeconfig}", f"--hostname-override={NAME}",
        # Trap 5: a non-loopback node address of our own, so the apiserver can reach the kubelet.
        f"--node-ip={network.GATEWAY}", f"--root-dir={KUBELET_ROOT}", f"--cert-dir={base / 'kubelet-pki'}",
        "--v=1",
    ], base / "logs" / "kubelet.log")
    wait_until(lambda: _node_ready(kubectl), f"node {NAME} Ready", timeout=120, server=server)
    return server


def _start_kube_proxy(base: Path, kubeconfig: Path) -> Server:
    return start("kube-proxy", [
        str(binaries.binary("kube-proxy")), f"--kubeconfig={kubeconfig}", f"--hostname-override={NAME}",
        "--proxy-mode=iptables", f"--cluster-cidr={network.CLUSTER_CIDR}",
        f"--metrics-bind-address=127.0.0.1:{free_port()}", f"--healthz-bind-address=127.0.0.1:{free_port()}",
        # The machine may not let us set conntrack sysctls; the defaults are fine for a test node.
        "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
    ], base / "logs" / "kube-proxy.log")


def _start_coredns(base: Path, kubeconfig: Path) -> Server:
    # No `forward`: names outside the cluster do not resolve, as pods must not reach out.
    corefile = base / "Corefile"
    corefile.write_text(f""".:53 {{
    bind {network.GATEWAY}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
    cache 5
}}
""")
    server = start("coredns", [str(binaries.binary("coredns")), "-conf", str(corefile)],
                   base / "logs" / "coredns.log")
    wait_until(_dns_answers, "CoreDNS", timeout=30, server=server)
    return server


def _dns_answers() -> bool:
    """Whether CoreDNS resolves the apiserver's Service, asked directly on the gateway."""
    query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(label)]) + label.encode() for label in ["kubernetes", "default", "svc", "cluster", "local"]
    ) + b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(1)
        sock.sendto(query, (network.GATEWAY, 53))
        answer = sock.recv(512)
    return struct.unpack(">H", answer[6:8])[0] > 0


def _start_kube_router(base: Path, kubeconfig: Path) -> Server:
    # kube-router v2.1.0 (the one release the proxy serves; published advisories, acceptable for a
    # loopback test node): its firewall alone enforces NetworkPolicy with iptables and ipsets.
    return start("kube-router", [
        str(binaries.binary("kube-router")), f"--kubeconfig={kubeconfig}", f"--hostname-override={NAME}",
        "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
        f"--service-cluster-ip-range={network.SERVICE_CIDR}", f"--health-port={free_port()}",
        # Pods, policies and namespaces changing each start a full sync at once; the periodic one only
        # repairs drift, and each rewrites every clone's rules (it was the node's busiest process at 50
        # clones, bench.bench_scale).
        "--metrics-port=0", "--iptables-sync-period=60s",
    ], base / "logs" / "kube-router.log")


PROVISIONER_WORKERS = 16


def _start_provisioner(base: Path, kubectl: Kubectl, kubeconfig: Path) -> Server:
    """The default StorageClass, its volumes made by node-volumes on this machine (the node's own)."""
    storage_class = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "wpclone.dev/node-volumes", "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete",
    }
    kubectl("apply", "-f", "-", input=json.dumps(storage_class))
    return start("node-volumes", [
        str(binaries.binary("node-volumes")), f"--kubeconfig={kubeconfig}", f"--root={VOLUMES}",
        "--provisioner-name=wpclone.dev/node-volumes", f"--workers={PROVISIONER_WORKERS}",
    ], base / "logs" / "node-volumes.log")


def start_node(base: Path, kubectl: Kubectl, kubeconfig: Path, server_url: str, keys: pki.Pki) -> Node:
    """Start the node and its add-ons with the admin's `kubeconfig`; stop all on failure.

    The bridge (network.up) and the control plane come first.
    """
    base.mkdir(parents=True, exist_ok=True)
    node = Node(base, kubectl)
    try:
        for folder in (STATE, KUBELET_ROOT, VOLUMES):
            folder.mkdir(parents=True, exist_ok=True)
        _cni_config()
        images.build(NODE_IMAGES)
        node.servers.append(_start_containerd(base))
        images.import_into(ctr(), NODE_IMAGES)
        node.servers.append(_start_kube_proxy(base, kubeconfig))
        node.servers.append(_start_kubelet(base, kubectl, server_url, keys))
        node.servers.append(_start_coredns(base, kubeconfig))
        node.servers.append(_start_kube_router(base, kubeconfig))
        node.servers.append(_start_provisioner(base, kubectl, kubeconfig))
    except BaseException:
        node.stop()
        raise
    return node
