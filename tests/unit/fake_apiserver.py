"""An apiserver in memory for the API's unit tests: the calls the API makes, and a watch of them."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

from wpclone_common.apiserver import ApiError


class FakeKube:
    """The apiserver's few calls the API makes, on a dict; every call is recorded (verb, kind) to compare paths."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.not_cached_yet: set[str] = set()  # names the apiserver's watch cache has not seen yet
        self.watchers: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}

    async def close(self) -> None:
        """Nothing to let go of."""

    async def create(self, manifest: dict[str, Any], *, read: bool = True) -> dict[str, Any]:
        self.calls.append(("create", manifest["kind"]))
        key = (manifest["kind"], manifest["metadata"]["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists")
        stored = copy.deepcopy(manifest)
        stored["metadata"]["uid"] = uuid.uuid4().hex
        stored["metadata"]["creationTimestamp"] = "2026-12-01T10:00:00Z"
        self.objects[key] = stored
        self._show("ADDED", stored)
        return copy.deepcopy(stored) if read else {}

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", manifest["kind"]))
        self.objects[(manifest["kind"], manifest["metadata"]["name"])] = copy.deepcopy(manifest)
        return manifest

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind))
        return copy.deepcopy(self.objects.get((kind, name)))

    async def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        self.calls.append(("get", "Secret"))
        secret = self.objects.get(("Secret", name))
        return dict(secret["stringData"]) if secret else None

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", kind))
        gone = self.objects.pop((kind, name), None)
        if gone is not None:
            self._show("DELETED", gone)
        return gone is not None

    async def list_objects(self, api_version: str, kind: str, namespace: str, label_selector: str, *,
                           cached: bool = False) -> list[dict[str, Any]]:
        self.calls.append(("list" if not cached else "cached list", kind))
        return self.stored(kind, label_selector, cached=cached)

    def stored(self, kind: str, label_selector: str, *, cached: bool = False) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in label_selector.split(",") if term)
        return [copy.deepcopy(item) for (item_kind, name), item in self.objects.items() if item_kind == kind
                and wanted.items() <= (item["metadata"].get("labels") or {}).items()
                and not (cached and name in self.not_cached_yet)]

    async def merge_patch(self, api_version: str, kind: str, namespace: str, name: str,
                          patch: dict[str, Any]) -> dict[str, Any]:
        """Merges `patch` one level into each top-level field (what the API patches: spec, metadata)."""
        self.calls.append(("patch", kind))
        stored = self.objects.get((kind, name))
        if stored is None:
            raise ApiError(404, "NotFound")
        for field, value in patch.items():
            stored.setdefault(field, {}).update(value)
        self._show("MODIFIED", stored)
        return copy.deepcopy(stored)

    async def patch_metadata(self, api_version: str, kind: str, namespace: str, name: str,
                             metadata: dict[str, Any]) -> None:
        self.calls.append(("patch", kind))
        self.objects[(kind, name)]["metadata"].update(metadata)
        self._show("MODIFIED", self.objects[(kind, name)])

    async def list_with_version(self, api_version: str, kind: str, namespace: str | None,
                                label_selector: str = "") -> tuple[list[dict[str, Any]], str]:
        self.calls.append(("list", kind))
        self.watchers[kind] = asyncio.Queue()  # from this list on, every change is shown
        return self.stored(kind, label_selector), "1"

    async def watch_objects(self, api_version: str, kind: str, namespace: str | None, resource_version: str,
                            label_selector: str = "") -> AsyncIterator[tuple[str, dict[str, Any]]]:
        while True:
            yield await self.watchers[kind].get()

    def _show(self, event: str, item: dict[str, Any]) -> None:
        """To the watch of its kind, if one follows it (an object without a kind is the tests' own)."""
        queue = self.watchers.get(item.get("kind", ""))
        if queue is not None:
            queue.put_nowait((event, copy.deepcopy(item)))

    def of_kind(self, kind: str) -> list[str]:
        return sorted(name for item_kind, name in self.objects if item_kind == kind)

    def make_ready(self, name: str) -> str:
        """What the operator does: the clone serves, its admin login is in its Secret."""
        clone = self.objects[("WordPressClone", name)]
        clone["status"] = {"phase": "Ready", "url": f"https://{name}.clones.example",
                           "adminSecretRef": {"name": f"{name}-admin"}}
        self.objects[("Secret", f"{name}-admin")] = {
            "kind": "Secret", "metadata": {"name": f"{name}-admin"},
            "stringData": {"username": "admin", "password": f"generated-for-{name}", "migrator-token": "m"}}
        self._show("MODIFIED", clone)
        return str(clone["status"]["url"])
