"""The Kubernetes API over plain async HTTP (aiohttp): the few calls the REST API makes, none holding a thread,
and the watches the operator reads its clones' Deployments and pods from.

Chosen by measurement (`bench.bench_kube_clients`): the generated clients, and httpx's connection pool
at many connections, add their own time per call to what the apiserver takes. Credentials are those
the kubernetes client would use (the ServiceAccount in a pod, else the kubeconfig); a ServiceAccount
token is read again as the kubelet rotates it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes import client, config

from wpclone_common import constants

FIELD_MANAGER = "wpclone-api"
# Where each kind touched here lives under its group's path (the operator watches its clones' Deployments
# and Pods, a pool slot's standing copy runner its ConfigMap).
PLURALS = {"Secret": "secrets", "Pod": "pods", "Deployment": "deployments", "ConfigMap": "configmaps",
           constants.CLONE_KIND: constants.CLONE_PLURAL, constants.RESTORE_KIND: constants.RESTORE_PLURAL}
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
TOKEN_REREAD_SECONDS = 60.0
WATCH_SECONDS = 300
BUSY_RETRIES = 5
MAX_RETRY_AFTER = 5.0


class ApiError(Exception):
    """The apiserver refused a call: its status code, reason and message (never a request body)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.message = status, reason, message or reason


class _Token:
    """The bearer token to send: a kubeconfig's (fixed), or a ServiceAccount's, read again at most once a
    minute as the kubelet rotates it."""

    def __init__(self, fixed: str = "", path: Path | None = None) -> None:
        self._value, self._path, self._read_at = fixed, path, 0.0

    def header(self) -> dict[str, str]:
        if self._path is not None and time.monotonic() - self._read_at > TOKEN_REREAD_SECONDS:
            self._value, self._read_at = f"Bearer {self._path.read_text().strip()}", time.monotonic()
        return {"Authorization": self._value} if self._value else {}


def _connection(connections: int) -> tuple[aiohttp.ClientSession, _Token]:
    settings = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=settings)
        token = _Token(path=SERVICE_ACCOUNT_TOKEN)
    except config.ConfigException:
        config.load_kube_config(client_configuration=settings)
        token = _Token(fixed=settings.api_key.get("authorization", ""))
    context = ssl.create_default_context(cafile=settings.ssl_ca_cert)
    if not settings.verify_ssl:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    # An object is at most 1.5 MiB in etcd: a watch event's line fits in the read buffer.
    session = aiohttp.ClientSession(settings.host, connector=aiohttp.TCPConnector(ssl=context, limit=connections),
                                    timeout=aiohttp.ClientTimeout(total=30), read_bufsize=4 * 1024 * 1024)
    return session, token


def collection_path(api_version: str, kind: str, namespace: str | None) -> str:
    """The kind's objects in `namespace`, or in all namespaces (None)."""
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/{PLURALS[kind]}" if namespace is None else f"{root}/namespaces/{namespace}/{PLURALS[kind]}"


class ApiServer:
    """One namespace-scoped conversation with the apiserver over a pool of kept-alive connections."""

    def __init__(self, http: aiohttp.ClientSession, token: _Token | None = None) -> None:
        self._http, self._token = http, token or _Token()

    @classmethod
    def connect(cls, connections: int = 64) -> ApiServer:
        return cls(*_connection(connections))

    async def close(self) -> None:
        await self._http.close()

    async def _call(self, method: str, path: str, *, headers: dict[str, str] | None = None, read: bool = True,
                    **options: Any) -> dict[str, Any]:
        """One request; a 429 (the apiserver busy, or a kind's storage still starting, as right after its CRD
        is installed: nothing was done) is sent again after its Retry-After, a few times, as client-go does."""
        retries = 0
        while True:
            async with self._http.request(method, path, headers={**self._token.header(), **(headers or {})},
                                          **options) as answer:
                if answer.status == 429 and retries < BUSY_RETRIES:
                    delay = _retry_after(answer.headers.get("Retry-After"))
                elif answer.status >= 400:
                    raise await _refusal(answer)
                elif read:
                    return dict(await answer.json(content_type=None))
                else:
                    await answer.read()  # to its end: a connection left mid-answer is closed, not kept
                    return {}
            retries += 1
            await asyncio.sleep(delay)

    async def create(self, manifest: dict[str, Any], *, read: bool = True) -> dict[str, Any]:
        """The object as created (`read=False`: nothing, when the caller has no use for it; a clone job's
        two writes spent 4 % of the API's time decoding the answers)."""
        path = collection_path(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["namespace"])
        return await self._call("POST", path, json=manifest, read=read)

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: creates or converges the object, whatever it looks like now."""
        metadata = manifest["metadata"]
        path = f"{collection_path(manifest['apiVersion'], manifest['kind'], metadata['namespace'])}/{metadata['name']}"
        return await self._call("PATCH", path, data=json.dumps(manifest),
                                params={"fieldManager": FIELD_MANAGER, "force": "true"},
                                headers={"Content-Type": "application/apply-patch+yaml"})

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"{collection_path(api_version, kind, namespace)}/{name}")
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, decoded; None when it does not exist."""
        secret = await self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        try:
            await self._call("DELETE", f"{collection_path(api_version, kind, namespace)}/{name}",
                             params={"propagationPolicy": "Background"})
            return True
        except ApiError as error:
            if error.status == 404:
                return False
            raise

    async def merge_patch(self, api_version: str, kind: str, namespace: str, name: str,
                          patch: dict[str, Any]) -> dict[str, Any]:
        """The object with `patch` merged in (RFC 7386: a null removes a field), as the apiserver stored it."""
        return await self._call("PATCH", f"{collection_path(api_version, kind, namespace)}/{name}",
                                data=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"})

    async def patch_metadata(self, api_version: str, kind: str, namespace: str, name: str,
                             metadata: dict[str, Any]) -> None:
        await self.merge_patch(api_version, kind, namespace, name, {"metadata": metadata})

    async def list_objects(self, api_version: str, kind: str, namespace: str, label_selector: str, *,
                           cached: bool = False) -> list[dict[str, Any]]:
        """The objects the selector matches. `cached`: as the apiserver's watch cache has them (resourceVersion
        0), which may lack the writes of the last moments; a consistent list (the default) of a kind no one
        wrote lately waits for that cache to catch up with etcd, about 90 ms here."""
        params = {"labelSelector": label_selector, **({"resourceVersion": "0"} if cached else {})}
        found = await self._call("GET", collection_path(api_version, kind, namespace), params=params)
        return list(found["items"])

    async def list_with_version(self, api_version: str, kind: str, namespace: str | None,
                                label_selector: str = "") -> tuple[list[dict[str, Any]], str]:
        """The objects of the kind the selector matches in the namespace (or in all: None), as a consistent
        list, and the version to watch from."""
        found = await self._call("GET", collection_path(api_version, kind, namespace),
                                 params={"labelSelector": label_selector} if label_selector else None)
        return list(found["items"]), str(found["metadata"]["resourceVersion"])

    async def watch_objects(self, api_version: str, kind: str, namespace: str | None, resource_version: str,
                            label_selector: str = "",
                            field_selector: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, object) from `resource_version` on (""; the objects as they are now first, as ADDED),
        until the server ends the watch; a version too old raises (ApiError 410): list again."""
        params = {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(WATCH_SECONDS), **({"labelSelector": label_selector} if label_selector else {}),
                  **({"fieldSelector": field_selector} if field_selector else {})}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=WATCH_SECONDS + 30)
        async with self._http.get(collection_path(api_version, kind, namespace), params=params,
                                  headers=self._token.header(), timeout=timeout) as answer:
            if answer.status >= 400:
                raise await _refusal(answer)
            async for line in answer.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(int(status.get("code", 500)), str(status.get("reason", "watch error")))
                yield event["type"], event["object"]


def _retry_after(header: str | None) -> float:
    """The seconds a 429 asks to wait (an integer by the apiserver), within bounds; 1 when it names none."""
    try:
        return min(max(float(header or 1), 0.1), MAX_RETRY_AFTER)
    except ValueError:
        return 1.0


async def _refusal(answer: aiohttp.ClientResponse) -> ApiError:
    phrase = answer.reason or str(answer.status)
    try:
        status = json.loads(await answer.read())
        return ApiError(answer.status, str(status.get("reason") or phrase), str(status.get("message") or ""))
    except (ValueError, AttributeError):
        return ApiError(answer.status, phrase)
