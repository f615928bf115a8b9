"""Which async Kubernetes client for the API: the same job's two writes through each, on the same apiserver.

    .venv/bin/python -m bench.bench_kube_clients [--clients 1 50] [--requests 300]

`pip install -e '.[bench]'` installs the candidates; a missing one prints "not installed". No operator, no
API: a local control plane with the CRDs. One job = the API's two writes, a Secret then a WordPressClone, in
namespace "bench"; the second figure is a GET of a WordPressClone by name. Candidates: `kubernetes` (sync,
the project's client in wpclone_common.kube) through asyncio.to_thread on the default executor;
`kubernetes_asyncio`; `lightkube` (AsyncClient, given 64 pooled connections like the others); `kr8s` (its
defaults; its get by name is a list with a field selector). The floor: bench_api's raw client (floor_run,
aiohttp). Prints p50, p99, throughput and the p50/p99 ratios to the floor (x); no thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.bench_api import NAMESPACE, Run, floor_run, percentile, raw_client, request_body, timed
from testenv import cluster, operator_process
from wpclone_api import jobs
from wpclone_api.schemas import CloneRequest
from wpclone_common import constants
from wpclone_common.apiserver import collection_path

GROUP, VERSION, PLURAL, KIND = constants.GROUP, constants.VERSION, constants.CLONE_PLURAL, constants.CLONE_KIND
Body = dict[str, Any]


@dataclass
class Candidate:
    name: str
    create: Callable[[Body, Body], Awaitable[object]]  # the Secret, then the WordPressClone
    get: Callable[[str], Awaitable[object]]  # a WordPressClone by name
    close: Callable[[], Awaitable[object]]


async def kubernetes_sync(kubeconfig: Path) -> Candidate:
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = 64  # as wpclone_common.kube.api_client()
    api = client.ApiClient(configuration)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    def create(secret: Body, clone: Body) -> None:
        core.create_namespaced_secret(NAMESPACE, cast(Any, secret))
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, clone)

    return Candidate("kubernetes (to_thread)", lambda secret, clone: asyncio.to_thread(create, secret, clone),
                     lambda name: asyncio.to_thread(custom.get_namespaced_custom_object, GROUP, VERSION,
                                                    NAMESPACE, PLURAL, name),
                     lambda: asyncio.to_thread(api.close))


async def kubernetes_async(kubeconfig: Path) -> Candidate:
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    async def create(secret: Body, clone: Body) -> None:
        await core.create_namespaced_secret(NAMESPACE, cast(Any, secret))
        await custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, clone)

    return Candidate("kubernetes_asyncio", create,
                     lambda name: custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name),
                     api.close)


async def lightkube_async(kubeconfig: Path) -> Candidate:
    import httpx2
    from lightkube import AsyncClient, KubeConfig
    from lightkube.codecs import from_dict
    from lightkube.config.client_adapter import verify_cluster
    from lightkube.generic_resource import create_namespaced_resource

    single = KubeConfig.from_file(kubeconfig).get()
    assert single is not None and single.user is not None
    transport = httpx2.AsyncHTTPTransport(verify=verify_cluster(single.cluster, single.user, single.abs_file),
                                          limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64))
    http = AsyncClient(single, namespace=NAMESPACE, transport=transport, timeout=httpx2.Timeout(60))
    clone_class = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)

    async def create(secret: Body, clone: Body) -> None:
        await http.create(from_dict(secret))
        await http.create(clone_class.from_dict(clone))

    return Candidate("lightkube", create, lambda name: http.get(clone_class, name), http.close)


async def kr8s_async(kubeconfig: Path) -> Candidate:
    import kr8s.asyncio
    from kr8s.asyncio.objects import Secret, new_class

    api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig), namespace=NAMESPACE)
    clone_class = new_class(kind=KIND, version=f"{GROUP}/{VERSION}", namespaced=True, plural=PLURAL)

    async def create(secret: Body, clone: Body) -> None:
        await Secret(secret, namespace=NAMESPACE, api=api).create()
        await clone_class(clone, namespace=NAMESPACE, api=api).create()

    return Candidate("kr8s", create, lambda name: clone_class.get(name, namespace=NAMESPACE, api=api),
                     lambda: asyncio.sleep(0))  # kr8s caches its Api objects and has no public close


def raw_get(kubeconfig: Path) -> Candidate:
    """The floor of the GETs (floor_run makes the floor of the writes), on bench_api's raw client."""
    http = raw_client(kubeconfig, 64)

    async def get(name: str) -> None:
        async with http.get(f"{collection_path(constants.API_VERSION, KIND, NAMESPACE)}/{name}") as answer:
            assert answer.status == 200, await answer.text()

    async def create(secret: Body, clone: Body) -> None:
        raise NotImplementedError("floor_run")

    return Candidate("floor: raw aiohttp", create, get, http.close)


CANDIDATES = {"kubernetes": kubernetes_sync, "kubernetes_asyncio": kubernetes_async, "lightkube": lightkube_async,
              "kr8s": kr8s_async}


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


async def job_run(candidate: Candidate, clients: int, requests: int, made: list[str]) -> Run:
    """`requests` jobs, `clients` at a time; the clones' names go to `made`."""
    async def job(_: int) -> None:
        request, job_id = CloneRequest.model_validate(request_body()), uuid.uuid4().hex
        await candidate.create(jobs.source_secret(request, job_id, "b"), jobs.clone_resource(request, job_id, "b"))
        made.append(request.customer_id)
    return await timed(clients, requests, job)


async def get_run(candidate: Candidate, clients: int, requests: int, made: list[str]) -> Run:
    async def get(index: int) -> None:
        await candidate.get(made[index * 7 % len(made)])
    return await timed(clients, requests, get)


def line(run: Run, name: str, floor: Run) -> str:
    ratios = [percentile(run.latencies, q) / percentile(floor.latencies, q) for q in (0.5, 0.99)]
    return f"{run.line(name)}   x{ratios[0]:.2f} p50  x{ratios[1]:.2f} p99"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--requests", type=int, default=300)
    options = parser.parse_args()
    print("versions: " + ", ".join(f"{name} {version(name)}" for name in [*CANDIDATES, "aiohttp"]))
    base = Path(tempfile.mkdtemp(prefix="wpclone-bench-clients-"))
    plane = cluster.start_control_plane(base / "cluster")
    candidates: list[Candidate] = []
    try:
        operator_process.install_crds(plane)
        plane.kubectl("create", "namespace", NAMESPACE)
        candidates.append(raw_get(plane.kubeconfig))
        warm: list[str] = []
        for name, make in CANDIDATES.items():
            try:
                candidates.append(await make(plane.kubeconfig))
                await job_run(candidates[-1], 4, 20, warm)  # warm up: connections, discovery, lazy imports
                await get_run(candidates[-1], 4, 20, warm)
            except ImportError:
                print(f"{name}: not installed")
            except Exception as error:  # a candidate that does not work is reported, not fatal
                print(f"{name}: skipped, {type(error).__name__}: {error}")
                await candidates.pop().close()
        await floor_run(plane.kubeconfig, 4, 20)
        await get_run(candidates[0], 4, 20, warm)
        for clients in options.clients:
            made: list[str] = []
            floor = await floor_run(plane.kubeconfig, clients, options.requests)
            created = [await job_run(c, clients, options.requests, made) for c in candidates[1:]]
            got = [await get_run(c, clients, options.requests, made) for c in candidates]
            print(f"--- {clients} concurrent clients, {options.requests} jobs (Secret + WordPressClone)")
            print(line(floor, candidates[0].name, floor))
            for candidate, run in zip(candidates[1:], created, strict=True):
                print(line(run, candidate.name, floor))
            print(f"--- {clients} concurrent clients, {options.requests} GETs of a WordPressClone by name")
            for candidate, run in zip(candidates, got, strict=True):
                print(line(run, candidate.name, got[0]))
    finally:
        for candidate in candidates:
            await candidate.close()
        plane.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
