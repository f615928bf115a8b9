"""Objects of one kind as a watch last showed them: listed once, then followed; listed again when the watch
breaks off. Lookups cost no request, so a caller that looks often (the API's job status, the operator's
timer on every clone) adds nothing to the apiserver's load. Everything runs on the event loop.

Until the first list has arrived, or while the watch is being restarted, lookups answer None: the caller
then asks the apiserver itself.

Each object is kept as one marshalled string and read back into dicts when looked up: thousands of
objects held as dicts and lists are what Python's garbage collector walked on every full collection,
stopping every request in flight for milliseconds to tens of milliseconds (the API's slowest requests);
a string is not walked at all, and takes about a seventh of the memory (a WordPressClone: 1.1 KB
instead of 7.7 KB).
"""

from __future__ import annotations

import asyncio
import logging
import marshal
from collections.abc import Callable
from typing import Any

from wpclone_common.apiserver import ApiServer

log = logging.getLogger("wpclone.watch")


class Watched:
    """One kind's objects (in a namespace, or in all), by namespace and name: events in, lookups out."""

    def __init__(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = "") -> None:
        self.api_version, self.kind, self.namespace, self.label_selector = api_version, kind, namespace, label_selector
        self._by_key: dict[tuple[str, str], bytes] = {}  # marshalled, see _kept
        self._labels: dict[tuple[str, str], dict[str, str]] = {}  # strings only: not walked by the collector
        # For each label looked up so far, value -> the keys of the objects carrying it (a dict for an
        # ordered set): a lookup costs the objects it finds, not all of the kind's (the API looks up a
        # job or a tenant on every request, the operator each clone's pods on every timer tick).
        self._index: dict[str, dict[str, dict[tuple[str, str], None]]] = {}
        self._synced = False

    def replace(self, items: list[dict[str, Any]]) -> None:
        """A full list: what the watch shows from now on starts from it."""
        keyed = [(key, item) for item in items if (key := self._key(item)) is not None]
        self._by_key = {key: _kept(item) for key, item in keyed}
        self._labels = {key: _labels(item) for key, item in keyed}
        self._index = {label: self._indexed(label) for label in self._index}
        self._synced = True

    def apply(self, event: str, item: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED; a BOOKMARK carries no object)."""
        key = self._key(item)
        if key is None or event not in ("ADDED", "MODIFIED", "DELETED"):
            return
        before = self._labels.pop(key, None)
        if before is not None:
            for label, index in self._index.items():
                _forget(index, before.get(label), key)
        if event == "DELETED":
            self._by_key.pop(key, None)
        else:
            labels = self._labels[key] = _labels(item)
            self._by_key[key] = _kept(item)
            for label, index in self._index.items():
                _remember(index, labels.get(label), key)

    def _indexed(self, label: str) -> dict[str, dict[tuple[str, str], None]]:
        index: dict[str, dict[tuple[str, str], None]] = {}
        for key, labels in self._labels.items():
            _remember(index, labels.get(label), key)
        return index

    def _key(self, item: dict[str, Any]) -> tuple[str, str] | None:
        metadata = item.get("metadata") or {}
        name = metadata.get("name")
        return None if name is None else (str(metadata.get("namespace") or self.namespace or ""), str(name))

    @property
    def synced(self) -> bool:
        """Whether lookups answer: a full list has arrived and the watch since has not broken off."""
        return self._synced

    def lost(self) -> None:
        """The watch broke off: until the next full list, nothing is known."""
        self._synced = False

    def named(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """A copy of the object (in the watched namespace unless told), or None (also when not synced: then
        nothing is known)."""
        kept = self._by_key.get((namespace or self.namespace or "", name)) if self._synced else None
        return None if kept is None else marshal.loads(kept)

    def labelled(self, label: str, value: str, namespace: str | None = None) -> list[dict[str, Any]] | None:
        """Copies of the objects whose `label` is `value` (in `namespace`, if given), or None when not synced."""
        if not self._synced:
            return None
        keys = self._index_of(label).get(value, ())
        if namespace is None:
            return [marshal.loads(self._by_key[key]) for key in keys]
        return [marshal.loads(self._by_key[key]) for key in keys if key[0] == namespace]

    def count(self, label: str, value: str) -> int | None:
        """How many objects (in every namespace watched) have `label` set to `value`, without listing them;
        None when not synced."""
        return len(self._index_of(label).get(value, ())) if self._synced else None

    def _index_of(self, label: str) -> dict[str, dict[tuple[str, str], None]]:
        index = self._index.get(label)
        if index is None:
            index = self._index[label] = self._indexed(label)
        return index

    async def follow(self, server: ApiServer,
                     changed: Callable[[dict[str, Any] | None], None] = lambda _: None) -> None:
        """List, then apply the watch's events, until cancelled; `changed` is called after each event with
        its object, and after each full list with None."""
        while True:
            try:
                items, version = await server.list_with_version(self.api_version, self.kind, self.namespace,
                                                                self.label_selector)
                self.replace(items)
                changed(None)
                async for event, item in server.watch_objects(self.api_version, self.kind, self.namespace, version,
                                                              self.label_selector):
                    self.apply(event, item)
                    changed(item)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - expired version (410), connection: list again
                log.warning("watching %s again after: %s", self.kind, type(error).__name__)
                self.lost()
                await asyncio.sleep(1.0)


def _kept(item: dict[str, Any]) -> bytes:
    """The object as it is kept: marshalled (see the module's docstring), without its managedFields (no
    reader here wants who wrote which field, and they were most of an object)."""
    (item.get("metadata") or {}).pop("managedFields", None)
    return marshal.dumps(item)


def _labels(item: dict[str, Any]) -> dict[str, str]:
    return {str(label): str(value) for label, value in (item["metadata"].get("labels") or {}).items()}


def _remember(index: dict[str, dict[tuple[str, str], None]], value: str | None, key: tuple[str, str]) -> None:
    if value is not None:
        index.setdefault(value, {})[key] = None


def _forget(index: dict[str, dict[tuple[str, str], None]], value: str | None, key: tuple[str, str]) -> None:
    if value is None or value not in index:
        return
    keys = index[value]
    keys.pop(key, None)
    if not keys:
        del index[value]
