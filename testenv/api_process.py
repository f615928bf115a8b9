"""Run the real REST API (`python -m wpclone_api`, uvicorn) against the local stack."""

from __future__ import annotations

import secrets
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testenv import cluster, processes

# The tests, benches and `make dev` share one tenant among many jobs and poll fast: quotas and the rate
# limit are out of their way (tests of the limits pass their own WPCLONE_API_* values).
UNLIMITED = {"WPCLONE_API_MAX_CLONES_PER_TENANT": "100000", "WPCLONE_API_MAX_RUNNING_JOBS_PER_TENANT": "100000",
             "WPCLONE_API_RATE_LIMIT_PER_SECOND": "100000", "WPCLONE_API_RATE_LIMIT_BURST": "100000"}


@dataclass
class ApiProcess(processes.ServerHandle):
    url: str = ""
    token: str = ""
    namespace: str = ""


def start_api(plane: cluster.ControlPlane, namespace: str, log_path: Path, tokens: str = "",
              **env: str) -> ApiProcess:
    """With no `tokens` (the WPCLONE_API_TOKENS text, e.g. `acme:t1,globex:t2`), one bare token is made
    (the tenant `default`) and is the process's `token`."""
    port, token = processes.free_port(), "" if tokens else secrets.token_urlsafe(24)
    server = processes.start("wpclone-api", [sys.executable, "-m", "wpclone_api"], log_path, env={
        "KUBECONFIG": str(plane.kubeconfig), "WPCLONE_API_TOKENS": tokens or token,
        "WPCLONE_API_NAMESPACE": namespace, "WPCLONE_API_HOST": "127.0.0.1", "WPCLONE_API_PORT": str(port),
        "WPCLONE_API_POLL_SECONDS": "0.5", **UNLIMITED, **env})
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=1).status == 200,
                         "the API's /healthz", timeout=30, server=server)
    return ApiProcess(server, url, token, namespace)
