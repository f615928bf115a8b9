"""Latency of POST /api/v2/clone under concurrent clients, against a bare create of the same resource
through the kubernetes client, both on the same local apiserver in the same run.

    .venv/bin/python -m bench.bench_api [--clients 50] [--requests 500]

No operator runs: this measures the API's own path (validation, auth, Secret + WordPressClone).
Prints p50 and p99 of both and their ratio; no thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from kubernetes import client, config

from testenv import api_process, cluster, operator_process
from wpclone_api import jobs
from wpclone_api.schemas import CloneRequest

NAMESPACE = "bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def request_body() -> dict[str, object]:
    return {"source_url": "https://shop.example.com", "source_username": "admin", "source_password": "secret",
            "customer_id": f"b{uuid.uuid4().hex[:12]}", "ttl_minutes": 30}


async def api_latencies(url: str, token: str, clients: int, requests: int) -> list[float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)

    async def worker(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            queue.get_nowait()
            begin = time.perf_counter()
            answer = await http.post("/api/v2/clone", json=request_body())
            latencies.append(time.perf_counter() - begin)
            assert answer.status_code == 202, answer.text

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as http:
        await asyncio.gather(*(worker(http) for _ in range(clients)))
    return latencies


async def bare_latencies(kubeconfig: Path, clients: int, requests: int) -> list[float]:
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    api.api_client.configuration.connection_pool_maxsize = clients
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(clients)

    async def create() -> None:
        resource = jobs.clone_resource(CloneRequest.model_validate(request_body()), uuid.uuid4().hex, "bench")
        async with semaphore:
            begin = time.perf_counter()
            await asyncio.to_thread(api.create_namespaced_custom_object, "wpclone.dev", "v1alpha1", NAMESPACE,
                                    "wordpressclones", resource)
            latencies.append(time.perf_counter() - begin)

    await asyncio.gather(*(create() for _ in range(requests)))
    return latencies


def summary(name: str, latencies: list[float]) -> str:
    return (f"{name}: p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
            f"mean {statistics.mean(latencies) * 1000:.1f} ms over {len(latencies)} requests")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500)
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wpclone-bench-api-"))
    plane = cluster.start_control_plane(base / "cluster")
    api = None
    try:
        operator_process.install_crds(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        api = api_process.start_api(plane, NAMESPACE, base / "api.log")
        await api_latencies(api.url, api.token, options.clients, 20)  # warm both paths up
        await bare_latencies(plane.kubeconfig, options.clients, 20)
        through_api = await api_latencies(api.url, api.token, options.clients, options.requests)
        bare = await bare_latencies(plane.kubeconfig, options.clients, options.requests)
        print(summary("POST /api/v2/clone", through_api))
        print(summary("bare create (kubernetes client)", bare))
        print(f"ratio p50 {percentile(through_api, 0.5) / percentile(bare, 0.5):.2f}, "
              f"p99 {percentile(through_api, 0.99) / percentile(bare, 0.99):.2f} "
              f"({options.clients} concurrent clients)")
    finally:
        if api is not None:
            api.stop()
        plane.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
