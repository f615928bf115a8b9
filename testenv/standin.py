"""The one stand-in: no container runtime exists here, so clone pods that kwok reports Running get their
WordPress run as a local `php -S` process, configured only from the pod's own spec (its env, resolved
from Secrets like a kubelet would, and its ConfigMap volumes), plus a tiny ingress that routes
`Host: {ingress host}` to the pod behind the Ingress's Service.

Run it as `python -m testenv.standin --kubeconfig K --port P --base DIR` (tests and `make dev` do).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from testenv import processes, wordpress

DOCROOT = "/var/www/html"
log = logging.getLogger("standin")


@dataclass
class RunningPod:
    uid: str
    port: int
    server: processes.Server
    docroot: Path


def resolve_env(pod: Any, core: client.CoreV1Api) -> dict[str, str]:
    """The container's environment as the kubelet would give it (values and secretKeyRef/configMapKeyRef)."""
    (container,) = [c for c in pod.spec.containers if c.name == "wordpress"] or pod.spec.containers[:1]
    env: dict[str, str] = {}
    for item in container.env or []:
        if item.value is not None:
            env[item.name] = item.value
        elif item.value_from and item.value_from.secret_key_ref:
            ref = item.value_from.secret_key_ref
            secret = core.read_namespaced_secret(ref.name, pod.metadata.namespace)
            env[item.name] = base64.b64decode(secret.data[ref.key]).decode()
        elif item.value_from and item.value_from.config_map_key_ref:
            ref = item.value_from.config_map_key_ref
            env[item.name] = core.read_namespaced_config_map(ref.name, pod.metadata.namespace).data[ref.key]
    return env


def mounted_files(pod: Any, core: client.CoreV1Api) -> dict[str, str]:
    """Files from ConfigMap volumes mounted under the WordPress docroot, keyed by path inside it."""
    volumes = {volume.name: volume for volume in pod.spec.volumes or []}
    files: dict[str, str] = {}
    for container in pod.spec.containers:
        for mount in container.volume_mounts or []:
            volume = volumes.get(mount.name)
            if volume is None or volume.config_map is None or not mount.mount_path.startswith(DOCROOT):
                continue
            data = core.read_namespaced_config_map(volume.config_map.name, pod.metadata.namespace).data or {}
            relative = mount.mount_path[len(DOCROOT):].strip("/")
            files.update({f"{relative}/{key}": value for key, value in data.items()})
    return files


def start_pod(pod: Any, core: client.CoreV1Api, base: Path) -> RunningPod:
    env = resolve_env(pod, core)
    docroot = base / f"{pod.metadata.namespace}-{pod.metadata.name}"
    shutil.rmtree(docroot, ignore_errors=True)
    wordpress.prepare_docroot(docroot)
    for path, content in mounted_files(pod, core).items():
        (docroot / path).parent.mkdir(parents=True, exist_ok=True)
        (docroot / path).write_text(content)
    # What the official image's wp-config-docker.php does with these variables.
    wordpress.write_config(docroot, db_host=env["WORDPRESS_DB_HOST"], db_name=env["WORDPRESS_DB_NAME"],
                           db_user=env["WORDPRESS_DB_USER"], db_password=env["WORDPRESS_DB_PASSWORD"],
                           url="", table_prefix=env.get("WORDPRESS_TABLE_PREFIX", "wp_"),
                           extra_php=env.get("WORDPRESS_CONFIG_EXTRA", ""))
    port = processes.free_port()
    server = wordpress.serve(docroot, port, base / f"{pod.metadata.namespace}-{pod.metadata.name}.log", env=env)
    log.info("serving pod %s/%s on 127.0.0.1:%d", pod.metadata.namespace, pod.metadata.name, port)
    return RunningPod(pod.metadata.uid, port, server, docroot)


class StandIn:
    def __init__(self, api: client.ApiClient, base: Path) -> None:
        self.core = client.CoreV1Api(api)
        self.networking = client.NetworkingV1Api(api)
        self.base = base
        self.pods: dict[str, RunningPod] = {}          # pod uid -> process
        self.routes: dict[str, int] = {}               # ingress host -> local port
        self.lock = threading.Lock()

    def sync(self) -> None:
        pods = self.core.list_pod_for_all_namespaces(label_selector="app.kubernetes.io/name=wordpress").items
        running = {pod.metadata.uid: pod for pod in pods
                   if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None}
        for uid, pod in running.items():
            if uid not in self.pods:
                try:
                    self.pods[uid] = start_pod(pod, self.core, self.base)
                except Exception as error:  # noqa: BLE001 - keep serving the others; retry next round
                    log.warning("cannot start pod %s/%s yet: %s", pod.metadata.namespace, pod.metadata.name, error)
        for uid in set(self.pods) - set(running):
            gone = self.pods.pop(uid)
            gone.server.stop()
            shutil.rmtree(gone.docroot, ignore_errors=True)
        self._sync_routes(running)

    def _sync_routes(self, running: dict[str, Any]) -> None:
        routes: dict[str, int] = {}
        services = {(service.metadata.namespace, service.metadata.name): service
                    for service in self.core.list_service_for_all_namespaces().items}
        for ingress in self.networking.list_ingress_for_all_namespaces().items:
            if ingress.metadata.deletion_timestamp is not None:
                continue
            for rule in ingress.spec.rules or []:
                for path in (rule.http.paths if rule.http else []):
                    service = services.get((ingress.metadata.namespace, path.backend.service.name))
                    if service is None:
                        continue
                    selector = service.spec.selector or {}
                    for uid, pod in running.items():
                        labels = pod.metadata.labels or {}
                        if pod.metadata.namespace == ingress.metadata.namespace and uid in self.pods and \
                                all(labels.get(key) == value for key, value in selector.items()):
                            routes[rule.host] = self.pods[uid].port
        with self.lock:
            self.routes = routes

    def backend(self, host: str) -> int | None:
        with self.lock:
            return self.routes.get(host.split(":")[0].lower())

    def stop(self) -> None:
        for running in self.pods.values():
            running.server.stop()
        self.pods.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve_ingress(standin: StandIn, port: int) -> None:
    """Route each connection by its first request's Host header to the pod's PHP server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        host = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                     if line.lower().startswith(b"host:")), "")
        backend = standin.backend(host)
        if backend is None:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 23\r\nConnection: close\r\n\r\n"
                         b"no clone for this host\n")
            await writer.drain()
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", backend)
        upstream_writer.write(head)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    servers = [await asyncio.start_server(handle, address, port) for address in ("127.0.0.1", "::1")]
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m testenv.standin")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True, help="the ingress stand-in's port")
    parser.add_argument("--base", type=Path, required=True, help="where pod docroots and logs go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args.base.mkdir(parents=True, exist_ok=True)
    standin = StandIn(config.new_client_from_config(config_file=args.kubeconfig), args.base)

    def keep_in_sync() -> None:
        while True:
            try:
                standin.sync()
            except Exception as error:  # noqa: BLE001 - the apiserver may be briefly away
                log.warning("sync failed: %s", error)
            time.sleep(0.5)

    threading.Thread(target=keep_in_sync, daemon=True).start()
    # Each pod's PHP runs in a process group of its own: stop them all when told to stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        asyncio.run(serve_ingress(standin, args.port))
    finally:
        standin.stop()



@dataclass
class StandInProcess(processes.ServerHandle):
    """The stand-in as a process of its own, with its ingress on 127.0.0.1:`port` (and [::1])."""

    port: int = 0


def start_standin(kubeconfig: Path, base: Path) -> StandInProcess:
    port = processes.free_port()
    server = processes.start("container-standin", [
        sys.executable, "-m", "testenv.standin", "--kubeconfig", str(kubeconfig), "--port", str(port),
        "--base", str(base)], base / "standin.log", cwd=Path(__file__).resolve().parents[1])
    processes.wait_until(lambda: processes.port_open(port), "the stand-in's ingress", timeout=30, server=server)
    return StandInProcess(server, port)


if __name__ == "__main__":
    main()
