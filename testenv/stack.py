"""The whole local stack in one place: control plane, MariaDB and sample WordPress sites.

Used by the pytest fixtures (in-process) and by `python -m testenv up|down|status` (detached: the
servers keep running after the command returns, and a state file remembers their process groups).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from testenv import api_process, binaries, cluster, ingress, mariadb, node, operator_process, wordpress
from testenv.processes import Server


def default_base() -> Path:
    return Path(os.environ.get("WPCLONE_STACK_DIR", "/tmp/wpclone-stack"))


@dataclass
class Stack:
    base: Path
    control_plane: cluster.ControlPlane
    database: mariadb.MariaDB
    sites: list[wordpress.WordPressSite] = field(default_factory=list)
    ingress: ingress.IngressProcess | None = None
    operator: operator_process.OperatorProcess | None = None
    api: api_process.ApiProcess | None = None

    def servers(self) -> list[Server]:
        extra = [self.ingress.server if self.ingress else None,
                 self.operator.server if self.operator else None, self.api.server if self.api else None]
        node_servers = self.control_plane.node.servers if self.control_plane.node else []
        return [*self.control_plane.servers, *node_servers, self.database.server, *(site.server for site in self.sites),
                *(server for server in extra if server is not None)]

    def stop(self) -> None:
        for running in (self.api, self.operator, self.ingress, *self.sites):
            if running is not None:
                running.stop()
        self.database.stop()
        self.control_plane.stop()

    def describe(self) -> dict[str, object]:
        return {
            "base": str(self.base),
            "kubeconfig": str(self.control_plane.kubeconfig),
            "apiserver": self.control_plane.server_url,
            "mysql_admin_dsn": self.database.dsn,
            "sites": [{"url": site.url, "admin_user": site.admin_user, "admin_password": site.admin_password}
                      for site in self.sites],
            "api": {"url": self.api.url, "token": self.api.token} if self.api else None,
            "clone_ingress_port": self.ingress.port if self.ingress else None,
            "process_groups": {server.name: server.process.pid for server in self.servers()},
            "logs": str(self.base / "logs"),
        }


def start_stack(base: Path, site_count: int = 1, with_wpclone: bool = False) -> Stack:
    """The stack; with_wpclone adds the ingress router, the operator and the API (`make dev`)."""
    base.mkdir(parents=True, exist_ok=True)
    plane = cluster.start_control_plane(base / "cluster")
    try:
        database = mariadb.start_mariadb(base, for_pods=True)
    except BaseException:
        plane.stop()
        raise
    stack = Stack(base, plane, database)
    try:
        stack.sites = wordpress.create_sites(site_count, database, base / "sites") if site_count else []
        if with_wpclone:
            stack.ingress = ingress.start_ingress(plane.kubectl, plane.kubeconfig, base / "logs" / "ingress.log")
            operator_process.install_crds(plane)
            stack.operator = operator_process.OperatorProcess(
                env=operator_process.operator_env(plane, database, stack.ingress),
                log_path=base / "logs" / "operator.log")
            stack.operator.start()
            plane.kubectl("create", "namespace", "wpclone")
            stack.api = api_process.start_api(plane, "wpclone", base / "logs" / "api.log")
    except BaseException:
        stack.stop()
        raise
    return stack


def state_file(base: Path) -> Path:
    return base / "stack.json"


def save_state(stack: Stack) -> Path:
    path = state_file(stack.base)
    path.write_text(json.dumps(stack.describe(), indent=2))
    path.chmod(0o600)  # it holds the local stack's admin passwords
    return path


def load_state(base: Path) -> dict[str, object] | None:
    path = state_file(base)
    return json.loads(path.read_text()) if path.exists() else None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_detached(base: Path) -> list[str]:
    """Stop every process group a detached `up` recorded; return the names stopped."""
    state = load_state(base)
    if state is None:
        return []
    groups: dict[str, int] = dict(state["process_groups"])  # type: ignore[call-overload]
    kubectl = [str(binaries.binary("kubectl")), "--kubeconfig", str(state["kubeconfig"])]
    node.delete_all_pods(lambda *args, **_: subprocess.run([*kubectl, *args], capture_output=True, text=True).stdout)
    stopped = []
    for name, pgid in reversed(list(groups.items())):
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
            stopped.append(name)
    # As Server.stop does: a graceful stop of a few seconds, then a kill (the apiserver alone would drain
    # its watches for ~20 s, which a throwaway local cluster does not need).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(group_alive(pgid) for pgid in groups.values()):
        time.sleep(0.2)
    for pgid in groups.values():
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    node.clean_up()
    state_file(base).unlink()
    return stopped
