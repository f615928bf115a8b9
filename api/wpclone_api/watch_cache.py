"""The API's namespace's WordPressClones and CloneRestores as a watch last showed them.

Job status and quota counts read them here instead of listing on every request: a consistent LIST of a
kind no one wrote lately waits ~90 ms for the apiserver's own cache, and any LIST costs as much as all
the objects it returns (a tenant's every clone, for one quota count). Until a kind's first list has
arrived, or while its watch is being restarted, lookups answer None and callers ask the apiserver.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from wpclone_common import constants, kube

log = logging.getLogger("wpclone.api")


class Objects:
    """One kind's objects by name: events in, lookups out (no I/O)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, dict[str, Any]] = {}
        self._synced = False

    def replace(self, items: list[dict[str, Any]]) -> None:
        """A full list: what the watch shows from now on starts from it."""
        with self._lock:
            self._by_name = {item["metadata"]["name"]: item for item in items}
            self._synced = True

    def apply(self, kind: str, item: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED; a BOOKMARK carries no object of ours)."""
        name = (item.get("metadata") or {}).get("name")
        if name is None or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        with self._lock:
            if kind == "DELETED":
                self._by_name.pop(name, None)
            else:
                self._by_name[name] = item

    def lost(self) -> None:
        """The watch broke off: until the next full list, lookups go to the apiserver."""
        with self._lock:
            self._synced = False

    def labelled(self, label: str, value: str) -> list[dict[str, Any]] | None:
        """The objects whose `label` is `value` (read-only), or None when not synced."""
        with self._lock:
            if not self._synced:
                return None
            return [item for item in self._by_name.values()
                    if (item["metadata"].get("labels") or {}).get(label) == value]


CLONES = Objects()
RESTORES = Objects()


def labelled(objects: Objects, kind: str, namespace: str, label: str, value: str, *,
             cached: bool) -> list[dict[str, Any]]:
    """The objects whose `label` is `value`: `cached`, from the watch when it is synced (else from the
    apiserver's cache); otherwise consistently, from the apiserver."""
    if cached:
        found = objects.labelled(label, value)
        if found is not None:
            return found
    return kube.list_objects(constants.API_VERSION, kind, namespace, f"{label}={value}", cached=cached)


def start(namespace: str) -> threading.Event:
    """Follows both kinds in the namespace in background threads, until the returned event is set."""
    stop = threading.Event()
    for kind, objects in ((constants.CLONE_KIND, CLONES), (constants.RESTORE_KIND, RESTORES)):
        threading.Thread(target=_follow, args=(kind, objects, namespace, stop), name=f"watch-{kind}",
                         daemon=True).start()
    return stop


def _follow(kind: str, objects: Objects, namespace: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            items, version = kube.list_with_version(constants.API_VERSION, kind, namespace)
            objects.replace(items)
            for event_kind, item in kube.watch_objects(constants.API_VERSION, kind, namespace, version):
                objects.apply(event_kind, item)
                if stop.is_set():
                    return
        except Exception as error:  # noqa: BLE001 - expired version (410), connection: list again
            log.warning("watching %s again after: %s", kind, type(error).__name__)
            objects.lost()
            stop.wait(1.0)
