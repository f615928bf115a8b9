"""Run the real operator (`python -m wpclone_operator`) as a process against the local stack."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from testenv import cluster, images, ingress, mariadb, network, processes

CRDS = Path(__file__).resolve().parents[1] / "crds"


def install_crds(plane: cluster.ControlPlane) -> None:
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))


def in_cluster_dns(folder: Path) -> list[str]:
    """A command prefix: run in a mount namespace of its own whose /etc/resolv.conf names the cluster's
    DNS, so the operator on the host resolves Services as a pod does (`*.svc.cluster.local`), and no
    other name at all (nothing leaves this machine). unshare and sh exec: the process keeps its pid."""
    resolv_conf = folder / "operator-resolv.conf"
    resolv_conf.write_text(f"nameserver {network.GATEWAY}\noptions ndots:1 timeout:1 attempts:1\n")
    return ["unshare", "--mount", "--", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && shift && exec "$@"',
            str(resolv_conf), "--"]


@dataclass
class OperatorProcess:
    """The operator process; restartable, with one log file across restarts."""

    env: dict[str, str]
    log_path: Path
    name: str = "wpclone-operator"
    health_port: int = field(default_factory=processes.free_port)
    metrics_port: int = field(default_factory=processes.free_port)
    server: processes.Server | None = None

    def start(self) -> None:
        env = {**self.env, "WPCLONE_LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.health_port}/healthz",
               "WPCLONE_METRICS_PORT": str(self.metrics_port),
               # The kubernetes client keeps its discovery cache in the temporary folder: the run's own.
               "TMPDIR": str(self.log_path.parent)}
        self.server = processes.start(self.name, [*in_cluster_dns(self.log_path.parent), sys.executable, "-m",
                                                  "wpclone_operator"], self.log_path, env=env)
        processes.wait_until(self.healthy, "the operator's /healthz", timeout=60, server=self.server)

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=15)
            self.server = None

    def kill(self) -> None:
        """As a crash would: SIGKILL, no chance to clean up."""
        if self.server is not None:
            os.killpg(self.server.process.pid, signal.SIGKILL)
            self.server.process.wait(10)
            self.server = None

    def restart(self) -> None:
        self.stop()
        self.start()


def operator_env(plane: cluster.ControlPlane, database: mariadb.MariaDB, router: ingress.IngressProcess,
                 **overrides: str) -> dict[str, str]:
    """Clones are real pods of the Debian-built WordPress image, at http://{name}.localhost:{port} through
    the ingress router; the operator reaches them as in a cluster, by Service DNS (the default template),
    and a new clone's copy at its pod's IP (WPCLONE_COPY_BY_POD_IP)."""
    return {
        "KUBECONFIG": str(plane.kubeconfig),
        "WPCLONE_MYSQL_ADMIN_DSN": database.dsn,
        "WPCLONE_MYSQL_HOST_FOR_CLONES": database.address_for_pods,
        "WPCLONE_WORDPRESS_IMAGE": images.ref("wordpress"),
        # In-process copies: the sites of most tests (and `make dev`'s sample) are on loopback, where no
        # pod reaches. tests/integration/test_copy_jobs.py runs the default, copy Jobs of this image.
        "WPCLONE_COPY_IN": "operator",
        "WPCLONE_COPY_IMAGE": images.ref("wpclone"),
        "WPCLONE_BLOCK_EXTERNAL_HTTP": "true",
        "WPCLONE_ALLOWED_IMAGES": '["localhost/wpclone/*"]',
        "WPCLONE_BASE_DOMAIN": "localhost",
        "WPCLONE_TLS_ENABLED": "false",
        "WPCLONE_PUBLIC_PORT": str(router.port),
        "WPCLONE_INGRESS_CLASS": router.ingress_class,
        "WPCLONE_OBSERVE_SECONDS": "1",
        "WPCLONE_RETRY_DELAY_SECONDS": "1",
        "WPCLONE_WEBHOOK_RETRY_SECONDS": "0.25",
        # The test sites are on loopback, and on the bridge's gateway for pods; nothing else is opened
        # (not the pods, not the Services: clones are the operator's own endpoints, allowed anyway).
        "WPCLONE_OUTBOUND_ALLOW": f"127.0.0.0/8,{network.GATEWAY}/32",
        "WPCLONE_CLUSTER_CIDRS": f"{network.SERVICE_CIDR},{network.CLUSTER_CIDR}",
        **overrides,
    }
