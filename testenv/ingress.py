"""The one stand-in: an ingress controller for the local node, as none builds here (real-node.md lists
those tried). Like a controller it reads Ingress objects of its class (hosts, path prefixes, backend
Services; TLS ignored) and forwards each connection, by its first request's Host header and path, to
the backend Service's ClusterIP, which kube-proxy sends on to a Ready pod.

Run it as `python -m testenv.ingress --kubeconfig K --port P --class C` (tests and `make dev` do).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from testenv import processes

log = logging.getLogger("ingress")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 23\r\nConnection: close\r\n\r\nno clone for this host\n"
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 20\r\nConnection: close\r\n\r\nbackend unreachable\n"


@dataclass(frozen=True)
class Route:
    host: str
    path: str          # a prefix
    address: str       # the Service's ClusterIP
    port: int


def _service_port(service: Any, wanted: Any) -> int | None:
    for port in service.spec.ports or []:
        if (wanted.name and port.name == wanted.name) or (wanted.number and port.port == wanted.number):
            return int(port.port)
    return None


def routes_of(ingresses: list[Any], services: list[Any], ingress_class: str) -> list[Route]:
    """Routes of the Ingresses of our class, longest path prefix first (as controllers match)."""
    by_name = {(s.metadata.namespace, s.metadata.name): s for s in services}
    routes = []
    for ingress in ingresses:
        if ingress.metadata.deletion_timestamp is not None or ingress.spec.ingress_class_name != ingress_class:
            continue
        for rule in ingress.spec.rules or []:
            for path in rule.http.paths if rule.http else []:
                backend = path.backend.service
                service = by_name.get((ingress.metadata.namespace, backend.name)) if backend else None
                if service is None or not service.spec.cluster_ip or service.spec.cluster_ip == "None":
                    continue
                port = _service_port(service, backend.port)
                if port is not None:
                    routes.append(Route((rule.host or "").lower(), path.path or "/", service.spec.cluster_ip, port))
    return sorted(routes, key=lambda route: len(route.path), reverse=True)


class Router:
    def __init__(self, api: client.ApiClient, ingress_class: str) -> None:
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.ingress_class = ingress_class
        self.routes: list[Route] = []
        self.lock = threading.Lock()

    def sync(self) -> None:
        routes = routes_of(self.networking.list_ingress_for_all_namespaces().items,
                           self.core.list_service_for_all_namespaces().items, self.ingress_class)
        with self.lock:
            self.routes = routes

    def backend(self, host: str, target: str) -> Route | None:
        host = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host
        with self.lock:
            return next((route for route in self.routes
                         if route.host in (host, "") and target.startswith(route.path)), None)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(router: Router, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.split(b"\r\n")
        target = lines[0].split(b" ")[1].decode(errors="replace") if len(lines[0].split(b" ")) > 1 else "/"
        host = next((line.split(b":", 1)[1].strip().decode(errors="replace") for line in lines[1:]
                     if line.lower().startswith(b"host:")), "")
        route = router.backend(host, target)
        if route is None:
            writer.write(NOT_FOUND)
            await writer.drain()
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(route.address, route.port), timeout=10)
        except (TimeoutError, OSError):
            writer.write(BAD_GATEWAY)
            await writer.drain()
            writer.close()
            return
        upstream_writer.write(head)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    servers = [await asyncio.start_server(handle, address, port) for address in ("127.0.0.1", "::1")]
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testenv.ingress")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--class", dest="ingress_class", required=True, help="the IngressClass served")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    router = Router(config.new_client_from_config(config_file=args.kubeconfig), args.ingress_class)

    def keep_in_sync() -> None:
        while True:
            try:
                router.sync()
            except Exception as error:  # noqa: BLE001 - the apiserver may be briefly away
                log.warning("sync failed: %s", error)
            time.sleep(0.5)

    threading.Thread(target=keep_in_sync, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(serve(router, args.port))


INGRESS_CLASS = "wpclone-testenv"


@dataclass
class IngressProcess(processes.ServerHandle):
    """The router as a process of its own, on 127.0.0.1:`port` (and [::1])."""

    port: int = 0
    ingress_class: str = INGRESS_CLASS


def start_ingress(kubectl: Any, kubeconfig: Path, log_path: Path) -> IngressProcess:
    """Register our IngressClass (as a controller's install does) and start the router."""
    kubectl("apply", "-f", "-", input=(
        '{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", '
        f'"metadata": {{"name": "{INGRESS_CLASS}"}}, "spec": {{"controller": "wpclone.dev/testenv-ingress"}}}}'))
    port = processes.free_port()
    server = processes.start("ingress", [
        sys.executable, "-m", "testenv.ingress", "--kubeconfig", str(kubeconfig), "--port", str(port),
        "--class", INGRESS_CLASS], log_path, cwd=Path(__file__).resolve().parents[1])
    processes.wait_until(lambda: processes.port_open(port), "the ingress router", timeout=30, server=server)
    return IngressProcess(server, port)


if __name__ == "__main__":
    main()
