"""Thin adapter around the kubernetes client: apply, read and delete objects (the operator's; the API
has its own async one, wpclone_common.apiserver).

The client is synchronous; callers in the event loop use these through asyncio.to_thread.
"""

from __future__ import annotations

import base64
import functools
from typing import Any, cast

from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "wpclone-operator"


@functools.cache
def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # The operator's handlers call it from many threads at once: enough connections for all of them.
    configuration.connection_pool_maxsize = 64
    return client.ApiClient(configuration)


@functools.cache
def _dynamic() -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client())


def _resource(api_version: str, kind: str) -> Any:
    return _dynamic().resources.get(api_version=api_version, kind=kind)


def discover(*kinds: tuple[str, str]) -> None:
    """Looks up the kinds' API paths now (the client's discovery: a few requests and their parsing), so that
    their first use later costs one request (a standing copy runner does this while it waits)."""
    for api_version, kind in kinds:
        _resource(api_version, kind)


def apply(manifest: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply: idempotent, and it converges whatever the object looks like now."""
    metadata = manifest["metadata"]
    result = _resource(manifest["apiVersion"], manifest["kind"]).server_side_apply(
        body=manifest, name=metadata["name"], namespace=metadata.get("namespace"),
        field_manager=FIELD_MANAGER, force_conflicts=True)
    return dict(result.to_dict())


def create(manifest: dict[str, Any]) -> dict[str, Any]:
    """Create one object; Secrets take the typed client's cheaper path."""
    namespace = manifest["metadata"]["namespace"]
    if manifest["apiVersion"] == "v1" and manifest["kind"] == "Secret":
        client.CoreV1Api(api_client()).create_namespaced_secret(namespace, cast(Any, manifest))  # takes dicts
        return manifest
    instance = _resource(manifest["apiVersion"], manifest["kind"]).create(body=manifest, namespace=namespace)
    return dict(instance.to_dict())


def create_if_missing(manifest: dict[str, Any]) -> bool:
    """Create the object unless it exists; an existing object is left exactly as it is."""
    try:
        create(manifest)
        return True
    except ApiException as error:
        if error.status == 409:
            return False
        raise


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(_resource(api_version, kind).get(name=name, namespace=namespace).to_dict())
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def delete(api_version: str, kind: str, namespace: str, name: str) -> bool:
    try:
        _resource(api_version, kind).delete(name=name, namespace=namespace,
                                            body={"propagationPolicy": "Background"})
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise


def read_secret(namespace: str, name: str) -> dict[str, str] | None:
    """The Secret's data, decoded; None when it does not exist."""
    secret = get("v1", "Secret", namespace, name)
    if secret is None:
        return None
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}


def list_objects(api_version: str, kind: str, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
    """The objects the selector matches (a consistent list); namespace None: in all namespaces."""
    found = _resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
    return [dict(item) for item in found.to_dict()["items"]]


def patch(api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
    """Merge-patch; a metadata.resourceVersion in `body` makes it fail with 409 if the object changed since."""
    _resource(api_version, kind).patch(name=name, namespace=namespace, body=body,
                                       content_type="application/merge-patch+json")


def patch_metadata(api_version: str, kind: str, namespace: str, name: str, metadata: dict[str, Any]) -> None:
    patch(api_version, kind, namespace, name, {"metadata": metadata})


def patch_status(api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any],
                 resource_version: str | None = None) -> None:
    """Merge-patch the status subresource at once (progress while a handler still runs); with
    `resource_version`, only if the object has not changed since (else 409)."""
    body: dict[str, Any] = {"status": status}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    _resource(api_version, kind).subresources["status"].patch(
        name=name, namespace=namespace, body=body, content_type="application/merge-patch+json")
