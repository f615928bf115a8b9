"""The operator at scale: many clones requested at once through the API, on the real node, then deleted at once.

    .venv/bin/python -m bench.bench_scale [--clones 50] [--objects 1000] [--concurrency 4] [--clone-cpu 50m]
                                          [--pool 50]

Starts the whole local stack (control plane, the real node, MariaDB, the ingress router, the operator, the
API) and one small seeded WordPress site; the operator copies `--concurrency` clones at a time and gives
each clone pod `--clone-cpu` and `--clone-memory` as requests (what decides how many fit on the node). Then:
1. `--clones` clones of it requested at once through `POST /api/v2/clone`, each followed through its
   job-status until completed or failed: success rate, time to the first and last Ready, the operator's
   and the API's memory (RSS now, and its peak). With `--pool N`, a warm pool of N slots is made and
   filled first (its fill time printed, not counted) and every request names it: how many took a slot.
2. All of them deleted at once through `DELETE /api/v2/delete/{id}`: time until every WordPressClone is
   gone and no clone database or MySQL user is left.
3. `--objects` WordPressClones present at once, recorded as Expired (made while the operator is
   stopped, so that none provisions a pod), the operator started on them: its memory once it has
   resumed them all. No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from bench.bench_api import raw_client
from bench.bench_clone_pod import stack_with_a_source
from bench.machine import cpu_seconds, memory_mib
from testenv import stack, wordpress
from wpclone_common import constants
from wpclone_common.apiserver import collection_path

POLL_SECONDS = 0.5
GIVE_UP_SECONDS = 900  # a clone that never gets a pod must not hold the bench forever


def memory(pid: int) -> str:
    """RSS and peak RSS of a process, in words."""
    rss, peak = memory_mib(pid)
    return f"RSS {rss:.0f} MiB (peak {peak:.0f} MiB)"


def cpu_by_command() -> dict[str, float]:
    """CPU seconds used so far per command name, over every process alive now, with what its reaped children
    used (a short-lived runc or PHP process is counted in its parent's)."""
    ticks, used = os.sysconf("SC_CLK_TCK"), dict[str, float]()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        command, fields = text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()
        if stat.parent.name == "1":  # the machine's init: its children's part is the exited orphans' (shims)
            command = "pid 1 and orphans it reaped"
        used[command] = used.get(command, 0.0) + sum(int(value) for value in fields[11:15]) / ticks
    return used


class Outcomes:
    """When each clone first reached Ready or Failed, from one watch of the WordPressClones: the bench
    learns it at once without 50 clients polling the API (which cost the API and the bench 25 CPU-seconds
    of the machine's 280 at 50 clones, polling each job every 0.5 s)."""

    def __init__(self) -> None:
        self.ended: dict[str, asyncio.Event] = {}
        self.seconds: dict[str, float] = {}
        # Each clone's phases as they came (and when), to show what became of one that did not complete.
        self.phases: dict[str, list[tuple[str | None, float]]] = {}

    def event(self, name: str) -> asyncio.Event:
        return self.ended.setdefault(name, asyncio.Event())

    async def follow(self, kubeconfig: Path, namespace: str, begin: float) -> None:
        path = collection_path(constants.API_VERSION, constants.CLONE_KIND, namespace)
        watch = {"watch": "1", "timeoutSeconds": str(GIVE_UP_SECONDS + 60)}
        async with raw_client(kubeconfig, 1) as http, \
                http.get(path, params=watch, timeout=aiohttp.ClientTimeout(total=None)) as answer:
            async for line in answer.content:
                clone = json.loads(line)["object"]
                name, phase = clone["metadata"]["name"], (clone.get("status") or {}).get("phase")
                seen = self.phases.setdefault(name, [])
                if not seen or seen[-1][0] != phase:
                    seen.append((phase, time.perf_counter() - begin))
                if phase in (constants.PHASE_READY, constants.FAILED) \
                        and name not in self.seconds:
                    self.seconds[name] = time.perf_counter() - begin
                    self.event(name).set()


async def one_clone(http: aiohttp.ClientSession, source: wordpress.WordPressSite, name: str,
                    outcomes: Outcomes, pool: str | None = None) -> tuple[str, str, float]:
    """(clone id, final job status as the API tells it, seconds from the burst's start to Ready or Failed)."""
    body = {"source_url": source.url, "source_username": source.admin_user, "source_password": source.admin_password,
            "customer_id": name, "ttl_minutes": 60, **({"pool": pool} if pool else {})}
    async with http.post("/api/v2/clone", json=body) as answer:
        accepted = await answer.json()
        if answer.status != 202:
            return name, f"refused {answer.status}: {accepted}", 0.0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(outcomes.event(name).wait(), GIVE_UP_SECONDS)
    # The API's own watch shows the change a moment after the bench's: ask until it does (or 30 s).
    for _ in range(60):
        async with http.get(f"/api/v2/job-status/{accepted['job_id']}") as answer:
            job = await answer.json()
        if job["status"] in ("completed", "failed", "expired"):
            break
        await asyncio.sleep(POLL_SECONDS)
    state = job["status"] if job["status"] == "completed" else f"{job['status']}: {job['error']}"
    return job["clone_id"], state, outcomes.seconds.get(name, GIVE_UP_SECONDS)


def pod_timeline(running: stack.Stack, namespace: str) -> str:
    """Where the clone pods' time went: median and slowest from the pod's creation to its scheduling (which
    waits for its volume to be provisioned), and from then to Ready."""
    pods = json.loads(running.control_plane.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    waits: dict[str, list[float]] = {"scheduled": [], "ready": []}
    for pod in pods:
        created = datetime.datetime.fromisoformat(pod["metadata"]["creationTimestamp"])
        when = {c["type"]: datetime.datetime.fromisoformat(c["lastTransitionTime"])
                for c in pod["status"].get("conditions") or [] if c.get("status") == "True"}
        if "PodScheduled" in when and "Ready" in when:
            waits["scheduled"].append((when["PodScheduled"] - created).total_seconds())
            waits["ready"].append((when["Ready"] - when["PodScheduled"]).total_seconds())
    return "; ".join(f"to {step}: median {statistics.median(seconds):.0f} s, slowest {max(seconds):.0f} s"
                     for step, seconds in waits.items() if seconds)


def leftovers(running: stack.Stack) -> tuple[int, int, int]:
    """(WordPressClones, clone databases, clone MySQL users) still present."""
    clones = len(json.loads(running.control_plane.kubectl("get", "wpc", "-A", "-o", "json"))["items"])
    databases = running.database.sql(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'wpc\\_%'")
    users = running.database.sql("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'wpc\\_%'")
    return clones, int(databases.split()[-1]), int(users.split()[-1])


async def burst(running: stack.Stack, source: wordpress.WordPressSite, count: int,
                before_delete: Callable[[], None] | None = None, prefix: str = "scale",
                pool: str | None = None) -> None:
    """`prefix`: of the clones' names; a second burst takes another (a deleted clone's children may linger).
    `pool`: every request names it."""
    assert running.api is not None and running.operator is not None and running.operator.server is not None
    async with aiohttp.ClientSession(running.api.url, headers={"Authorization": f"Bearer {running.api.token}"},
                                     connector=aiohttp.TCPConnector(limit=count),
                                     timeout=aiohttp.ClientTimeout(total=1800)) as http:
        operator_pid = running.operator.server.process.pid
        commands_before = cpu_by_command()
        begin, machine_before, operator_before = time.perf_counter(), cpu_seconds(), cpu_seconds(operator_pid)
        outcomes = Outcomes()
        watching = asyncio.create_task(outcomes.follow(running.control_plane.kubeconfig, running.api.namespace, begin))
        done = await asyncio.gather(*(one_clone(http, source, f"{prefix}-{number}", outcomes, pool)
                                      for number in range(count)))
        watching.cancel()
        wall, machine, operator = (time.perf_counter() - begin, cpu_seconds() - machine_before,
                                   cpu_seconds(operator_pid) - operator_before)
        ready = sorted(seconds for _, state, seconds in done if state == "completed")
        print(f"--- {count} clones requested at once through the API")
        print(f"completed {len(ready)}/{count} ({100 * len(ready) / count:.0f} %)"
              + (f"; first Ready after {ready[0]:.1f} s, median {statistics.median(ready):.1f} s, last after "
                 f"{ready[-1]:.1f} s" if ready else ""))
        cores = os.cpu_count() or 1
        print(f"CPU: the machine busy {machine:.0f} s of {wall * cores:.0f} core-seconds "
              f"({100 * machine / (wall * cores):.0f} %), the operator {operator:.0f} s")
        commands_after = cpu_by_command()
        spent = sorted(((commands_after[name] - commands_before.get(name, 0.0), name) for name in commands_after),
                       reverse=True)
        print("  by command: " + ", ".join(f"{name} {seconds:.1f} s" for seconds, name in spent[:12] if seconds >= 0.5))
        if pool:
            clones = json.loads(running.control_plane.kubectl("get", "wpc", "-n", running.api.namespace, "-o", "json"))
            took = sum(1 for clone in clones["items"] if (clone.get("status") or {}).get("slot"))
            print(f"  {took} of {count} took a slot of pool {pool}")
        print(f"  the clone pods, from creation {pod_timeline(running, running.api.namespace)}")
        for name, state, _ in done:
            if state != "completed":
                phases = ", ".join(f"{phase} at {seconds:.1f} s" for phase, seconds in outcomes.phases.get(name, []))
                print(f"  {name}: {state} (phases: {phases})")
        print(f"operator {memory(running.operator.server.process.pid)}; "
              f"API {memory(running.api.server.process.pid)}")

        if before_delete is not None:
            before_delete()
        present = leftovers(running)
        begin = time.perf_counter()
        answers = await asyncio.gather(*(http.delete(f"/api/v2/delete/{name}") for name, _, _ in done))
        refused = [answer.status for answer in answers if answer.status != 202]
        left = leftovers(running)
        while any(left) and time.perf_counter() - begin < 600:
            await asyncio.sleep(POLL_SECONDS)
            left = leftovers(running)
        print(f"--- {count} deletes at once: {len(refused)} refused; {'all gone' if not any(left) else 'NOT all gone'}"
              f" after {time.perf_counter() - begin:.1f} s (clones, databases, users: {present} before, {left} left)")


async def many_objects(running: stack.Stack, source: wordpress.WordPressSite, count: int) -> None:
    """`count` Expired WordPressClones made while the operator is stopped; its memory once it resumed them."""
    assert running.operator is not None
    running.operator.stop()
    plane = running.control_plane
    assert running.api is not None
    path = collection_path(constants.API_VERSION, constants.CLONE_KIND, running.api.namespace)
    async with raw_client(plane.kubeconfig, 20) as http:
        async def one(number: int) -> None:
            body = {"apiVersion": constants.API_VERSION, "kind": constants.CLONE_KIND,
                    "metadata": {"name": f"idle-{number}"},
                    "spec": {"source": {"url": source.url, "credentialsSecretRef": {"name": "absent"}}}}
            async with http.post(path, json=body) as answer:
                assert answer.status == 201, await answer.text()
            async with http.patch(f"{path}/idle-{number}/status", data=json.dumps({"status": {"phase": "Expired"}}),
                                  headers={"Content-Type": "application/merge-patch+json"}) as answer:
                assert answer.status == 200, await answer.text()

        for start in range(0, count, 20):
            await asyncio.gather(*(one(number) for number in range(start, min(count, start + 20))))
    running.operator.start()
    assert running.operator.server is not None
    print(f"--- {count} WordPressClones present (Expired), after the operator's start:")
    started = time.perf_counter()
    for seconds in (10, 30, 60):  # every object resumed, and its timers (if any) run several times
        await asyncio.sleep(seconds - (time.perf_counter() - started))
        print(f"  {seconds} s: operator {memory(running.operator.server.process.pid)}")


POOL = "warm"


def pool_state(running: stack.Stack, namespace: str) -> dict[str, object]:
    found = json.loads(running.control_plane.kubectl("get", "wpcpool", POOL, "-n", namespace, "-o", "json",
                                                     "--ignore-not-found") or "{}")
    return dict(found.get("status") or {})


def fill_pool(running: stack.Stack, namespace: str, slots: int) -> None:
    """A warm pool of `slots` blank clones, waited for until all are ready."""
    running.control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": constants.API_VERSION, "kind": constants.POOL_KIND, "metadata": {"name": POOL},
        "spec": {"replicas": slots}}))
    begin = time.perf_counter()
    while pool_state(running, namespace).get("ready") != slots:
        if time.perf_counter() - begin > GIVE_UP_SECONDS:
            raise SystemExit(f"the pool is not ready after {GIVE_UP_SECONDS} s: {pool_state(running, namespace)}")
        time.sleep(1)
    print(f"pool of {slots} slots ready after {time.perf_counter() - begin:.1f} s (not counted below)")


def delete_pool(running: stack.Stack, namespace: str) -> None:
    """The pool and its slots (refilled since the burst), so that only the clones are left to delete."""
    running.control_plane.kubectl("delete", "wpcpool", POOL, "-n", namespace, "--wait=true", "--timeout=600s")
    while json.loads(running.control_plane.kubectl("get", "wpc", "-n", namespace, "-l",
                                                   f"{constants.LABEL_POOL}={POOL}", "-o", "json"))["items"]:
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=int, default=50)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="the operator's WPCLONE_CONCURRENCY")
    parser.add_argument("--clone-cpu", default="50m", help="each clone pod's CPU request")
    parser.add_argument("--clone-memory", default="128Mi", help="each clone pod's memory request")
    parser.add_argument("--pool", type=int, default=0, help="a warm pool of this many slots, filled first")
    chosen = parser.parse_args()
    with stack_with_a_source("wpclone-bench-scale-") as (running, source, _):
        assert running.operator is not None
        resources = {"requests": {"cpu": chosen.clone_cpu, "memory": chosen.clone_memory},
                     "limits": {"cpu": "1", "memory": "512Mi"}}
        running.operator.env.update({"WPCLONE_CONCURRENCY": str(chosen.concurrency),
                                     "WPCLONE_CLONE_RESOURCES": json.dumps(resources)})
        running.operator.restart()
        assert running.operator.server is not None
        print(f"operator concurrency {chosen.concurrency}, clone pods request {chosen.clone_cpu} CPU, "
              f"{chosen.clone_memory}; idle: operator {memory(running.operator.server.process.pid)}")
        if chosen.clones and chosen.pool:
            assert running.api is not None
            namespace = running.api.namespace
            fill_pool(running, namespace, chosen.pool)
            asyncio.run(burst(running, source, chosen.clones, pool=POOL,
                              before_delete=lambda: delete_pool(running, namespace)))
        elif chosen.clones:
            asyncio.run(burst(running, source, chosen.clones))
        if chosen.objects:
            asyncio.run(many_objects(running, source, chosen.objects))
    return 0


if __name__ == "__main__":
    sys.exit(main())
