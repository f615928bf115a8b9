"""SQLite clones against MySQL clones of the same site, in one run: time to Ready, memory, front page speed.

    .venv/bin/python -m bench.bench_sqlite [--rounds 3] [--rows-mib 5] [--uploads-mib 10] [--pages 30]

Starts the whole local stack (the real node), a seeded site on the node bridge's gateway with
bench_transfer's reference content added, and the operator copying in Jobs (a SQLite clone's database
file is written by its copy Job). Then, round after round, a clone of each engine (spec.database.engine)
applied, timed from apply to Ready; while it is Ready: its pod's memory (working set, from the kubelet's
summary), the size of its database (the MySQL clone's tables on the shared server, data and indexes; the
SQLite clone's file), and its front page fetched --pages times through the ingress (after two warm-up
fetches); then deleted. The MySQL clone's share of the shared MySQL server's memory is not in its pod's
figure. No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from typing import Any

import httpx

from bench.bench_clone_pod import copies_in_jobs, stack_with_a_source
from bench.bench_transfer import MIB, build_reference_site
from testenv import network, node, stack, wordpress
from tests.helpers import clone_wp_content
from wpclone_engine.sqlite_dropin import DATABASE_FILE

NAMESPACE = "bench-sqlite"
ENGINES = ("mysql", "sqlite")


def pod_memory_mib(running: stack.Stack, name: str) -> float | None:
    """The working set of the clone's WordPress pod, as the kubelet reports it (a new pod's figures come
    with its next stats collection: waited for, up to 60 s)."""
    for _ in range(60):
        found = _summary_memory_mib(running, name)
        if found is not None:
            return found
        time.sleep(1)
    return None


def _summary_memory_mib(running: stack.Stack, name: str) -> float | None:
    raw = running.control_plane.kubectl("get", "--raw", f"/api/v1/nodes/{node.NAME}/proxy/stats/summary",
                                        check=False)
    try:
        pods = json.loads(raw).get("pods", [])
    except ValueError:
        return None
    for pod in pods:
        reference = pod.get("podRef", {})
        if reference.get("namespace") == NAMESPACE and reference.get("name", "").startswith(f"{name}-") \
                and not reference["name"].startswith(f"{name}-copy"):
            working_set = (pod.get("memory") or {}).get("workingSetBytes")
            return working_set / MIB if working_set else None
    return None


def database_mib(running: stack.Stack, name: str, engine: str) -> float:
    if engine == "sqlite":
        folder = clone_wp_content(running.control_plane, NAMESPACE, name, "database")
        return (folder / DATABASE_FILE).stat().st_size / MIB
    secret = json.loads(running.control_plane.kubectl("get", "secret", "-n", NAMESPACE, f"{name}-db", "-o", "json"))
    database = base64.b64decode(secret["data"]["database"]).decode()
    size = running.database.sql("SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES "
                                f"WHERE TABLE_SCHEMA = '{database}'")
    return int(size or 0) / MIB


def front_page_ms(url: str, pages: int) -> list[float]:
    timings = []
    with httpx.Client(timeout=60) as browser:
        for number in range(pages + 2):
            begin = time.perf_counter()
            answer = browser.get(url + "/")
            answer.raise_for_status()
            if number >= 2:
                timings.append((time.perf_counter() - begin) * 1000)
    return timings


def clone_round(running: stack.Stack, source: wordpress.WordPressSite, name: str, engine: str,
                pages: int) -> dict[str, Any]:
    plane = running.control_plane
    clone = {"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": name},
             "spec": {"source": {"url": source.url, "credentialsSecretRef": {"name": "source-login"}},
                      "database": {"engine": engine}}}
    begin = time.perf_counter()
    plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps(clone))
    plane.kubectl("wait", "-n", NAMESPACE, f"wpc/{name}", "--for=condition=Ready", "--timeout=600s")
    ready = time.perf_counter() - begin
    url = json.loads(plane.kubectl("get", "wpc", "-n", NAMESPACE, name, "-o", "json"))["status"]["url"]
    timings = front_page_ms(url, pages)  # then its memory, as a WordPress that has served pages
    figures = {"ready": ready, "memory": pod_memory_mib(running, name), "database": database_mib(running, name, engine),
               "page_median": statistics.median(timings),
               "page_p90": statistics.quantiles(timings, n=10)[-1] if len(timings) > 1 else timings[0]}
    plane.kubectl("delete", "-n", NAMESPACE, "wpc", name, "--wait=true", "--timeout=180s")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows-mib", type=int, default=5)
    parser.add_argument("--uploads-mib", type=int, default=10)
    parser.add_argument("--pages", type=int, default=30)
    chosen = parser.parse_args()
    with stack_with_a_source("wpclone-bench-sqlite-", host=network.GATEWAY) as (running, source, _):
        build_reference_site(running.database, source, chosen.rows_mib, chosen.uploads_mib)
        copies_in_jobs(running, source, NAMESPACE)
        print(f"source: the seeded site with {chosen.rows_mib} MiB of rows and {chosen.uploads_mib} MiB of uploads "
              f"added; {chosen.rounds} rounds, each engine once per round")
        seen: dict[str, list[dict[str, Any]]] = {engine: [] for engine in ENGINES}
        for number in range(1, chosen.rounds + 1):
            for engine in ENGINES if number % 2 else reversed(ENGINES):
                figures = clone_round(running, source, f"{engine}-{number}", engine, chosen.pages)
                seen[engine].append(figures)
                memory = "n/a" if figures["memory"] is None else f"{figures['memory']:.0f} MiB"
                print(f"round {number} {engine:6}: apply to Ready {figures['ready']:.1f} s, pod working set {memory}, "
                      f"database {figures['database']:.1f} MiB, front page median {figures['page_median']:.0f} ms "
                      f"(p90 {figures['page_p90']:.0f} ms)")
        for engine in ENGINES:
            runs = seen[engine]
            memories = [run["memory"] for run in runs if run["memory"] is not None]
            print(f"{engine:6} median: Ready {statistics.median(run['ready'] for run in runs):.1f} s, pod "
                  f"{statistics.median(memories) if memories else float('nan'):.0f} MiB, database "
                  f"{statistics.median(run['database'] for run in runs):.1f} MiB, front page "
                  f"{statistics.median(run['page_median'] for run in runs):.0f} ms")
        ratio = (statistics.median(run["ready"] for run in seen["sqlite"])
                 / statistics.median(run["ready"] for run in seen["mysql"]))
        page = (statistics.median(run["page_median"] for run in seen["sqlite"])
                / statistics.median(run["page_median"] for run in seen["mysql"]))
        print(f"sqlite / mysql: time to Ready {ratio:.2f}, front page {page:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
