"""The REST API against the fastest honest floor: the same job's two writes, raw, on the same apiserver.

    .venv/bin/python -m bench.bench_api [--clients 1 50] [--requests 300]

No operator runs: this measures the API's own path. For each number of concurrent clients it times
`POST /api/v2/clone` (validation, auth, quota, Secret + WordPressClone) and the floor: the same two
writes (a Secret, then a WordPressClone) issued by a raw async HTTP client (aiohttp, the kubeconfig's
client certificate) at the same concurrency, in the same run; then `GET /api/v2/job-status/{id}` of
the jobs just made, at that concurrency. The API and the floor take turns over `--rounds` rounds, each
going first in every other round (the apiserver's speed drifts as etcd grows and compacts, and a single
run of each measured mostly which went first); their latencies are pooled over the rounds, their
throughput is their jobs over their time. Prints p50, p99 and throughput of each and the API/floor
ratios; no thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import ssl
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import yaml

from testenv import api_process, cluster, operator_process
from wpclone_api import jobs
from wpclone_api.schemas import CloneRequest
from wpclone_common.apiserver import collection_path

NAMESPACE = "bench"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Run:
    latencies: list[float]
    seconds: float

    def __add__(self, other: Run) -> Run:
        return Run(self.latencies + other.latencies, self.seconds + other.seconds)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def line(self, name: str) -> str:
        return (f"{name:<34} p50 {percentile(self.latencies, 0.5) * 1000:7.1f} ms  "
                f"p99 {percentile(self.latencies, 0.99) * 1000:7.1f} ms  {self.per_second:6.1f} /s")


async def timed(clients: int, requests: int, one: Callable[[int], Awaitable[None]]) -> Run:
    """`requests` calls of `one`, `clients` at a time; each call's latency and the run's wall time."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(requests):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            index = queue.get_nowait()
            begin = time.perf_counter()
            await one(index)
            latencies.append(time.perf_counter() - begin)

    begin = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Run(latencies, time.perf_counter() - begin)


def request_body() -> dict[str, object]:
    return {"source_url": "https://shop.example.com", "source_username": "admin", "source_password": "secret",
            "customer_id": f"b{uuid.uuid4().hex[:12]}", "ttl_minutes": 30}


def raw_client(kubeconfig: Path, clients: int) -> aiohttp.ClientSession:
    """The apiserver as the kubeconfig reaches it: its CA, the admin's client certificate. aiohttp: of
    the async clients measured here (`bench.bench_kube_clients`) the fastest at many connections."""
    config = yaml.safe_load(kubeconfig.read_text())
    server, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cafile=server["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return aiohttp.ClientSession(server["server"], connector=aiohttp.TCPConnector(ssl=context, limit=clients),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def floor_run(kubeconfig: Path, clients: int, requests: int) -> Run:
    async with raw_client(kubeconfig, clients) as http:
        async def job(_: int) -> None:
            request, job_id = CloneRequest.model_validate(request_body()), uuid.uuid4().hex
            for body in (jobs.source_secret(request, job_id, "b"), jobs.clone_resource(request, job_id, "b")):
                path = collection_path(body["apiVersion"], body["kind"], NAMESPACE)
                async with http.post(path, json=body) as answer:
                    assert answer.status == 201, await answer.text()
        return await timed(clients, requests, job)


async def api_runs(url: str, token: str, clients: int, requests: int) -> tuple[Run, Run]:
    """POST /api/v2/clone, then GET /api/v2/job-status of each job made."""
    made: list[str] = []
    async with aiohttp.ClientSession(url, headers={"Authorization": f"Bearer {token}"},
                                     connector=aiohttp.TCPConnector(limit=clients),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def create(_: int) -> None:
            async with http.post("/api/v2/clone", json=request_body()) as answer:
                assert answer.status == 202, await answer.text()
                made.append((await answer.json())["job_id"])

        async def status(index: int) -> None:
            async with http.get(f"/api/v2/job-status/{made[index % len(made)]}") as answer:
                assert answer.status == 200, await answer.text()
                await answer.read()

        created = await timed(clients, requests, create)
        return created, await timed(clients, requests, status)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--requests", type=int, default=300, help="jobs of each side in each round")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wpclone-bench-api-"))
    plane = cluster.start_control_plane(base / "cluster")
    api = None
    try:
        operator_process.install_crds(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        api = api_process.start_api(plane, NAMESPACE, base / "api.log")
        await api_runs(api.url, api.token, 4, 20)  # warm both paths up
        await floor_run(plane.kubeconfig, 4, 20)
        for clients in options.clients:
            created = status = floor = Run([], 0.0)
            for round_number in range(options.rounds):
                if round_number % 2:
                    floor += await floor_run(plane.kubeconfig, clients, options.requests)
                api_created, api_status = await api_runs(api.url, api.token, clients, options.requests)
                created, status = created + api_created, status + api_status
                if not round_number % 2:
                    floor += await floor_run(plane.kubeconfig, clients, options.requests)
            print(f"--- {clients} concurrent clients, {options.rounds} rounds of {options.requests} jobs")
            print(created.line("POST /api/v2/clone"))
            print(floor.line("floor: Secret + WordPressClone (raw)"))
            print(status.line("GET /api/v2/job-status/{id}"))
            print(f"ratios API/floor: p50 {percentile(created.latencies, 0.5) / percentile(floor.latencies, 0.5):.2f}, "
                  f"p99 {percentile(created.latencies, 0.99) / percentile(floor.latencies, 0.99):.2f}, "
                  f"throughput {created.per_second / floor.per_second:.2f}")
    finally:
        if api is not None:
            api.stop()
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
