"""python -m testenv build|up|down|status: the local stack from the command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time

from testenv import binaries, node, stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv")
    parser.add_argument("command", choices=["build", "up", "down", "status", "leftovers"])
    parser.add_argument("--sites", type=int, default=1, help="sample WordPress sites to start (up)")
    args = parser.parse_args()
    base = stack.default_base()

    if args.command == "build":
        print(f"[testenv] binaries in {binaries.ensure_binaries()}")
        return 0
    if args.command == "leftovers":  # after `make down` or a test run: the node must be gone without a trace
        found = node.leftovers()
        print("\n".join(f"[testenv] left behind: {item}" for item in found) or "[testenv] nothing left behind")
        return 1 if found else 0
    if args.command == "down":
        stopped = stack.stop_detached(base)
        print(f"[testenv] stopped: {', '.join(stopped) or 'nothing was running'}")
        return 0
    if args.command == "status":
        state = stack.load_state(base)
        if state is None:
            print("[testenv] not running (start it with `make dev`)")
            return 1
        groups = state["process_groups"]
        for name, pgid in groups.items():  # type: ignore[union-attr]
            print(f"  {name:28} {'running' if stack.group_alive(pgid) else 'STOPPED'}")
        return 0

    if stack.load_state(base) is not None:
        print("[testenv] already up; `make down` first. Current state:")
        return main_status()
    shutil.rmtree(base, ignore_errors=True)
    started = time.monotonic()
    running = stack.start_stack(base, site_count=args.sites, with_wpclone=True)
    path = stack.save_state(running)
    print(f"[testenv] stack up in {time.monotonic() - started:.1f}s; state (with passwords) in {path}")
    print(json.dumps(running.describe(), indent=2))
    print(how_to_use(running))
    return 0


def how_to_use(running: stack.Stack) -> str:
    assert running.api is not None and running.ingress is not None
    site = running.sites[0]
    request = json.dumps({"source_url": site.url, "source_username": site.admin_user,
                          "source_password": site.admin_password, "customer_id": "demo", "ttl_minutes": 30})
    kubectl = binaries.binary("kubectl")
    return f"""
Running on loopback and the node's own bridge: kube-apiserver + etcd + controller-manager + scheduler,
a real node (kubelet + containerd + runc, kube-proxy, CoreDNS, kube-router's firewall, node-volumes),
MariaDB, the sample WordPress site {site.url} (admin / {site.admin_password}), the wpclone operator,
the REST API {running.api.url} and the ingress router (clones at http://NAME.localhost:{running.ingress.port}).

Clone the sample site:
  curl -s -X POST {running.api.url}/api/v2/clone -H 'Authorization: Bearer {running.api.token}' \\
       -H 'Content-Type: application/json' -d '{request}'
Follow the job (status_url from the answer):
  curl -s {running.api.url}/api/v2/job-status/JOB_ID -H 'Authorization: Bearer {running.api.token}'
Watch the resources:
  export KUBECONFIG={running.control_plane.kubeconfig}
  {kubectl} get wpc,pods -A
Open http://demo.localhost:{running.ingress.port}/wp-admin/ in a browser on this machine, with the
username and password from job-status. Or use the dashboard: {running.api.url}/ui/ (sign in with the token).
Logs: {running.base / 'logs'}. Stop everything: make down
"""


def main_status() -> int:
    sys.argv = [sys.argv[0], "status"]
    return main()


if __name__ == "__main__":
    sys.exit(main())
