"""The clones' Deployments and pods, and the copy Jobs' outcome ConfigMaps, as watches show them.

The observe timer looks at every clone every few seconds; a GET of its Deployment and a LIST of its pods
on each look made most of the apiserver's work at 50 clones (bench.bench_scale). The watches are filtered
by label on the server (only the clones' WordPress workloads, only copy Jobs' ConfigMaps), one per watched
namespace, or one for all. The outcome watch lets a look at a copying clone wait for its copy's end and
see it as it is written, rather than at the next look; the workload watches let a look at a starting
clone wait for its pod to serve (woken by that clone's own events only).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from wpclone_common import constants
from wpclone_common.apiserver import ApiServer
from wpclone_common.resources import WordPressClone
from wpclone_common.watched import Watched
from wpclone_operator import children, copy_jobs

SELECTOR = f"{constants.LABEL_MANAGED_BY}=wpclone,{constants.LABEL_COMPONENT}=wordpress"
COPY_SELECTOR = f"{constants.LABEL_MANAGED_BY}=wpclone,{constants.LABEL_COMPONENT}={constants.COPY_COMPONENT}"


class Workloads:
    def __init__(self, server: ApiServer, namespaces: list[str]) -> None:
        self._server = server
        scopes: list[str | None] = list(namespaces) or [None]
        self._deployments = {scope: Watched("apps/v1", "Deployment", scope, SELECTOR) for scope in scopes}
        self._pods = {scope: Watched("v1", "Pod", scope, SELECTOR) for scope in scopes}
        self._outcomes = {scope: Watched("v1", "ConfigMap", scope, COPY_SELECTOR) for scope in scopes}
        self._outcome_changed = asyncio.Event()
        self._workload_changed: dict[tuple[str, str], asyncio.Event] = {}  # by namespace and workload name
        self._tasks = [asyncio.create_task(watched.follow(server, self._wake_workload),
                                           name=f"watch-{watched.kind}-{watched.namespace}")
                       for watched in (*self._deployments.values(), *self._pods.values())]
        self._tasks += [asyncio.create_task(watched.follow(server, self._wake), name=f"watch-outcomes-{scope}")
                        for scope, watched in self._outcomes.items()]

    @classmethod
    def connect(cls, namespaces: list[str]) -> Workloads:
        """Watches over connections of their own: each watch holds one for as long as it runs."""
        return cls(ApiServer.connect(connections=3 * max(1, len(namespaces)) + 2), namespaces)

    def _wake(self, _: dict[str, Any] | None) -> None:
        """A copy's ConfigMap changed: whoever waits for an outcome looks again."""
        changed, self._outcome_changed = self._outcome_changed, asyncio.Event()
        changed.set()

    async def until_outcome(self, namespace: str, name: str, seconds: float) -> bool:
        """Waits up to `seconds` for copy Job `name`'s runner to write its outcome: True once it has; False
        at the end of the wait, or at once while the watch is not synced (then nothing is known)."""
        watched = self._outcomes.get(namespace if namespace in self._outcomes else None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while watched is not None and watched.synced:
            if copy_jobs.OUTCOME_KEY in ((watched.named(name, namespace) or {}).get("data") or {}):
                return True
            try:
                await asyncio.wait_for(self._outcome_changed.wait(), deadline - loop.time())
            except TimeoutError:
                return False
        return False

    def _wake_workload(self, item: dict[str, Any] | None) -> None:
        """A clone's Deployment or pod changed (None: a whole list came): whoever waits for it looks again.
        Only its waiter: with hundreds of clones starting at once, each pod event waking every waiting
        look would be hundreds of looks per event."""
        if item is None:
            woken = list(self._workload_changed)
        else:
            metadata = item.get("metadata") or {}
            labels = metadata.get("labels") or {}
            woken = [(str(metadata.get("namespace") or ""), str(labels.get(constants.LABEL_CLONE)))]
        for key in woken:
            event = self._workload_changed.pop(key, None)
            if event is not None:
                event.set()

    async def until_workload_changes(self, clone: WordPressClone, seconds: float) -> None:
        """Waits up to `seconds` for a change of the clone's Deployment or pods, as the watches show them."""
        changed = self._workload_changed.setdefault((clone.namespace, children.workload_name(clone)), asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.close()

    def of(self, clone: WordPressClone) -> tuple[dict[str, Any] | None, list[dict[str, Any]]] | None:
        """The clone's Deployment (None: not made yet) and pods, or None while a watch is not synced."""
        scope = clone.namespace if clone.namespace in self._deployments else None
        deployments, pods = self._deployments.get(scope), self._pods.get(scope)
        if deployments is None or pods is None or not deployments.synced or not pods.synced:
            return None
        name = children.workload_name(clone)
        return (deployments.named(name, clone.namespace),
                pods.labelled(constants.LABEL_CLONE, name, clone.namespace) or [])
