"""The API's namespace: its apiserver, and its WordPressClones and CloneRestores as a watch last showed them.

Job status and quota counts read them here instead of listing on every request: a consistent LIST of a
kind no one wrote lately waits ~90 ms for the apiserver's own cache, and any LIST costs as much as all
the objects it returns (a tenant's every clone, for one quota count). Until a kind's first list has
arrived, or while its watch is being restarted, lookups answer None and callers ask the apiserver.
Everything runs on the event loop: a watch is a task, a waiting v1 call is a suspended coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from wpclone_common import constants
from wpclone_common.apiserver import ApiServer

log = logging.getLogger("wpclone.api")


class Objects:
    """One kind's objects by name: events in, lookups out (no I/O)."""

    def __init__(self) -> None:
        self._by_name: dict[str, dict[str, Any]] = {}
        self._synced = False

    def replace(self, items: list[dict[str, Any]]) -> None:
        """A full list: what the watch shows from now on starts from it."""
        self._by_name = {item["metadata"]["name"]: item for item in items}
        self._synced = True

    def apply(self, kind: str, item: dict[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED; a BOOKMARK carries no object of ours)."""
        name = (item.get("metadata") or {}).get("name")
        if name is None or kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        if kind == "DELETED":
            self._by_name.pop(name, None)
        else:
            self._by_name[name] = item

    def lost(self) -> None:
        """The watch broke off: until the next full list, lookups go to the apiserver."""
        self._synced = False

    def named(self, name: str) -> dict[str, Any] | None:
        """The object called `name`, or None (also when not synced: then nothing is known)."""
        return self._by_name.get(name) if self._synced else None

    def labelled(self, label: str, value: str) -> list[dict[str, Any]] | None:
        """The objects whose `label` is `value` (read-only), or None when not synced."""
        if not self._synced:
            return None
        return [item for item in self._by_name.values()
                if (item["metadata"].get("labels") or {}).get(label) == value]


class Namespace:
    """Where the API keeps its jobs: the apiserver to write to, the watched objects to read from."""

    def __init__(self, server: ApiServer, name: str) -> None:
        self.server, self.name = server, name
        self.clones, self.restores = Objects(), Objects()
        self._changed = asyncio.Event()
        self._watches: list[asyncio.Task[None]] = []

    def kind_objects(self, kind: str) -> Objects:
        return self.clones if kind == constants.CLONE_KIND else self.restores

    async def labelled(self, kind: str, label: str, value: str, *, cached: bool) -> list[dict[str, Any]]:
        """The objects whose `label` is `value`: `cached`, from the watch when it is synced (else from the
        apiserver's cache); otherwise consistently, from the apiserver."""
        if cached:
            found = self.kind_objects(kind).labelled(label, value)
            if found is not None:
                return found
        return await self.server.list_objects(constants.API_VERSION, kind, self.name, f"{label}={value}",
                                              cached=cached)

    async def next_change(self, timeout: float) -> None:
        """Returns when the watch shows a change, or after `timeout` seconds (no watch: always then)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def watch(self) -> None:
        """Follows both kinds in the namespace, until `stop`."""
        self._watches = [asyncio.create_task(self._follow(kind), name=f"watch-{kind}")
                         for kind in (constants.CLONE_KIND, constants.RESTORE_KIND)]

    async def stop(self) -> None:
        for task in self._watches:
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)

    def _announce(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _follow(self, kind: str) -> None:
        objects = self.kind_objects(kind)
        while True:
            try:
                items, version = await self.server.list_with_version(constants.API_VERSION, kind, self.name)
                objects.replace(items)
                self._announce()
                async for event_kind, item in self.server.watch_objects(constants.API_VERSION, kind, self.name,
                                                                        version):
                    objects.apply(event_kind, item)
                    self._announce()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - expired version (410), connection: list again
                log.warning("watching %s again after: %s", kind, type(error).__name__)
                objects.lost()
                await asyncio.sleep(1.0)
