"""Many clones of one site at once: each reading production (cold) against one snapshot read once, in one run.

    .venv/bin/python -m bench.bench_snapshot [--clones 20] [--rows-mib 5] [--uploads-mib 10]

Starts the whole local stack (the real node), a seeded site on the node bridge's gateway with
bench_transfer's reference content added and a must-use plugin counting its database exports, and the
operator copying in Jobs. Then --clones clones applied at once that each read the site
(spec.snapshot.maxAgeMinutes 0: the cold path, the baseline), timed from apply to the last Ready, and
deleted; then as many asking for a snapshot (maxAgeMinutes 30): the first records it, the others wait for
it and copy from it. For each batch: time to the last Ready, the exports production served, the copy Jobs'
durations (start to completion) by kind (read, record, replay), and the bytes not read from production.
Then, one at a time with nothing else running, --single clones from the snapshot and as many that read
the site, alternating: apply to Ready and the copy Job's duration of each. No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from bench.bench_clone_pod import copies_in_jobs, stack_with_a_source
from bench.bench_transfer import MIB, build_reference_site
from testenv import network, stack, wordpress
from tests.integration.test_snapshot_copy import count_exports, exports
from wpclone_operator import copy_jobs

NAMESPACE = "bench-snapshot"


def batch(running: stack.Stack, source: wordpress.WordPressSite, prefix: str, clones: int,
          max_age: int, *, keep_snapshots: bool = False) -> dict[str, Any]:
    plane = running.control_plane
    names = [f"{prefix}-{number}" for number in range(clones)]
    before = exports(source)
    items = [{"apiVersion": "wpclone.dev/v1alpha1", "kind": "WordPressClone", "metadata": {"name": name},
              "spec": {"source": {"url": source.url, "credentialsSecretRef": {"name": "source-login"}},
                       "snapshot": {"maxAgeMinutes": max_age}}} for name in names]
    begin = time.perf_counter()
    plane.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                          "items": items}))
    ready: dict[str, float] = {}
    while len(ready) < clones:
        listed = json.loads(plane.kubectl("get", "wpc", "-n", NAMESPACE, "-o", "json"))["items"]
        for clone in listed:
            name, phase = clone["metadata"]["name"], (clone.get("status") or {}).get("phase")
            if name in names and name not in ready and phase in ("Ready", "Failed"):
                ready[name] = time.perf_counter() - begin
                if phase == "Failed":
                    raise SystemExit(f"clone {name} failed: {clone['status'].get('message')}")
        if time.perf_counter() - begin > 1800:
            raise SystemExit(f"only {len(ready)} of {clones} clones Ready after 30 minutes")
        time.sleep(0.5)
    jobs = json.loads(plane.kubectl("get", "jobs", "-n", NAMESPACE, "-o", "json"))["items"]
    durations: dict[str, list[float]] = {}
    for job in jobs:
        if job["metadata"]["name"].removesuffix("-copy") in names:
            use = copy_jobs.snapshot_of(job)[1] or "read"
            durations.setdefault(use, []).append(copy_jobs.seconds(job))
    snapshots = json.loads(plane.kubectl("get", "sourcesnapshots", "-n", NAMESPACE, "-o", "json"))["items"]
    snapshot_bytes = sum((item.get("status") or {}).get("bytes") or 0 for item in snapshots)
    plane.kubectl("delete", "-n", NAMESPACE, "wpc", "--all", "--wait=true", "--timeout=600s")
    if not keep_snapshots:
        plane.kubectl("delete", "-n", NAMESPACE, "sourcesnapshots", "--all", "--wait=true", "--timeout=300s")
    return {"last": max(ready.values()), "median": statistics.median(ready.values()),
            "exports": exports(source) - before, "durations": durations, "snapshot_bytes": snapshot_bytes}


def report(label: str, figures: dict[str, Any]) -> None:
    jobs = ", ".join(f"{use} {len(times)}× median {statistics.median(times):.1f} s"
                     for use, times in sorted(figures["durations"].items()))
    print(f"{label}: last Ready {figures['last']:.1f} s (median {figures['median']:.1f} s), production exports "
          f"{figures['exports']}, copy Jobs: {jobs}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=int, default=20)
    parser.add_argument("--rows-mib", type=int, default=5)
    parser.add_argument("--uploads-mib", type=int, default=10)
    parser.add_argument("--single", type=int, default=3)
    chosen = parser.parse_args()
    with stack_with_a_source("wpclone-bench-snapshot-", host=network.GATEWAY) as (running, source, _):
        build_reference_site(running.database, source, chosen.rows_mib, chosen.uploads_mib)
        count_exports(source)
        copies_in_jobs(running, source, NAMESPACE)
        print(f"source: the seeded site with {chosen.rows_mib} MiB of rows and {chosen.uploads_mib} MiB of uploads "
              f"added; {chosen.clones} clones at once, cold then from a snapshot")
        cold = batch(running, source, "cold", chosen.clones, 0)
        report("cold (each reads production)", cold)
        warm = batch(running, source, "snap", chosen.clones, 30, keep_snapshots=True)
        report("snapshot (read once)", warm)
        alone: dict[str, list[dict[str, Any]]] = {"snapshot": [], "cold": []}
        for number in range(chosen.single):
            for kind, max_age in (("snapshot", 30), ("cold", 0)):
                figures = batch(running, source, f"one-{kind}-{number}", 1, max_age, keep_snapshots=True)
                alone[kind].append(figures)
                report(f"one clone alone, {kind}", figures)
        if chosen.single:
            ready = {kind: statistics.median(run["last"] for run in runs) for kind, runs in alone.items()}
            copy = {kind: statistics.median(seconds for run in runs for seconds in
                                            (*run["durations"].get("replay", ()), *run["durations"].get("read", ())))
                    for kind, runs in alone.items()}
            print(f"one clone alone, median of {chosen.single}: Ready {ready['snapshot']:.1f} s from the snapshot, "
                  f"{ready['cold']:.1f} s from the site ({ready['snapshot'] / ready['cold']:.2f}); copy Job "
                  f"{copy['snapshot']:.1f} s against {copy['cold']:.1f} s ({copy['snapshot'] / copy['cold']:.2f})")
        not_read = warm["snapshot_bytes"] * (chosen.clones - warm["exports"])
        print(f"snapshot {warm['snapshot_bytes'] / MIB:.1f} MiB; bytes not read from production "
              f"{not_read / MIB:.1f} MiB; exports avoided {cold['exports'] - warm['exports']}")
        print(f"snapshot / cold: last Ready {warm['last'] / cold['last']:.2f}, median Ready "
              f"{warm['median'] / cold['median']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
