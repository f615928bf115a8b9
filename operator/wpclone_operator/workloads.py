"""The clones' Deployments and pods as watches show them.

The observe timer looks at every clone every few seconds; a GET of its Deployment and a LIST of its pods
on each look made most of the apiserver's work at 50 clones (bench.bench_scale). The watches are filtered
by label on the server (only the clones' WordPress workloads), one per watched namespace, or one for all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wpclone_common import constants
from wpclone_common.apiserver import ApiServer
from wpclone_common.resources import WordPressClone
from wpclone_common.watched import Watched
from wpclone_operator import children

SELECTOR = f"{constants.LABEL_MANAGED_BY}=wpclone,{constants.LABEL_COMPONENT}=wordpress"


class Workloads:
    def __init__(self, server: ApiServer, namespaces: list[str]) -> None:
        self._server = server
        scopes: list[str | None] = list(namespaces) or [None]
        self._deployments = {scope: Watched("apps/v1", "Deployment", scope, SELECTOR) for scope in scopes}
        self._pods = {scope: Watched("v1", "Pod", scope, SELECTOR) for scope in scopes}
        self._tasks = [asyncio.create_task(watched.follow(server), name=f"watch-{watched.kind}-{watched.namespace}")
                       for watched in (*self._deployments.values(), *self._pods.values())]

    @classmethod
    def connect(cls, namespaces: list[str]) -> Workloads:
        """Watches over connections of their own: each watch holds one for as long as it runs."""
        return cls(ApiServer.connect(connections=2 * max(1, len(namespaces)) + 2), namespaces)

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
