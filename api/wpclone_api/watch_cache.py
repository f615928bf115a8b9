"""The API's namespace: its apiserver, and its WordPressClones and CloneRestores as a watch last showed them.

Job status and quota counts read them here instead of listing on every request: a consistent LIST of a
kind no one wrote lately waits ~90 ms for the apiserver's own cache, and any LIST costs as much as all
the objects it returns (a tenant's every clone, for one quota count). Until a kind's first list has
arrived, or while its watch is being restarted, lookups answer None and callers ask the apiserver.
A watch is a task, a waiting v1 call is a suspended coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from wpclone_common import constants
from wpclone_common.apiserver import ApiServer
from wpclone_common.watched import Watched


class Namespace:
    """Where the API keeps its jobs: the apiserver to write to, the watched objects to read from."""

    def __init__(self, server: ApiServer, name: str) -> None:
        self.server, self.name = server, name
        self.clones = Watched(constants.API_VERSION, constants.CLONE_KIND, name)
        self.restores = Watched(constants.API_VERSION, constants.RESTORE_KIND, name)
        self._changed = asyncio.Event()
        self._watches: list[asyncio.Task[None]] = []

    def kind_objects(self, kind: str) -> Watched:
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

    def tenant_counts(self, tenant: str) -> tuple[int, int] | None:
        """How many clones and restores the tenant has, as the watch shows them (None: not synced)."""
        clones, restores = (objects.count(constants.LABEL_TENANT, tenant) for objects in (self.clones, self.restores))
        return None if clones is None or restores is None else (clones, restores)

    async def next_change(self, timeout: float) -> None:
        """Returns when the watch shows a change, or after `timeout` seconds (no watch: always then)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def watch(self) -> None:
        """Follows both kinds in the namespace, until `stop`."""
        self._watches = [asyncio.create_task(objects.follow(self.server, self._announce), name=f"watch-{objects.kind}")
                         for objects in (self.clones, self.restores)]

    async def stop(self) -> None:
        for task in self._watches:
            task.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)

    def _announce(self, _: dict[str, Any] | None) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
