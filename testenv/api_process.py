"""Run the real REST API (`python -m wpclone_api`, uvicorn) against the local stack."""

from __future__ import annotations

import secrets
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from testenv import cluster, processes


@dataclass
class ApiProcess(processes.ServerHandle):
    url: str = ""
    token: str = ""
    namespace: str = ""


def start_api(plane: cluster.ControlPlane, namespace: str, log_path: Path, **env: str) -> ApiProcess:
    port, token = processes.free_port(), secrets.token_urlsafe(24)
    server = processes.start("wpclone-api", [sys.executable, "-m", "wpclone_api"], log_path, env={
        "KUBECONFIG": str(plane.kubeconfig), "WPCLONE_API_TOKENS": token, "WPCLONE_API_NAMESPACE": namespace,
        "WPCLONE_API_HOST": "127.0.0.1", "WPCLONE_API_PORT": str(port), "WPCLONE_API_POLL_SECONDS": "0.5", **env})
    url = f"http://127.0.0.1:{port}"
    processes.wait_until(lambda: urllib.request.urlopen(f"{url}/healthz", timeout=1).status == 200,
                         "the API's /healthz", timeout=30, server=server)
    return ApiProcess(server, url, token, namespace)
