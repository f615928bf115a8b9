"""Copies in Jobs vs copies in the operator: N clones of the reference site at once, each way, in one run.

    .venv/bin/python -m bench.bench_copy_jobs [--clones 8] [--rows-mib 20] [--uploads-mib 40]

Starts the whole local stack (the real node) and the reference site of bench_transfer on the node
bridge's gateway (where pods reach it). Then, twice, `--clones` clones of it requested at once through
the API (bench_scale's burst: success rate, time to the last Ready, the operator's CPU-seconds and
memory, CPU by command), deleted at once:
1. with WPCLONE_COPY_IN=operator: every byte through the operator process;
2. with WPCLONE_COPY_IN=job: one copy Job per clone (at most --clones at once), the operator only
   creating and reading Jobs; each Job's own CPU-seconds, from its log.
Ends with a paper estimate for 50 clones of 1 GB sites, from the measured CPU-seconds and bytes per copy.
No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.bench_scale import burst
from bench.bench_transfer import MIB, build_reference_site, folder_bytes, table_bytes
from testenv import images, network, node, stack, wordpress
from tests.integration.transfer_fixtures import install_migrator_as_mu_plugin
from wpclone_operator import copy_jobs

JOB_LOG = re.compile(r"copied; ([0-9.]+) CPU-seconds, ([0-9.]+) s")


def finished_jobs(running: stack.Stack, namespace: str) -> list[tuple[float, float, float]]:
    """(CPU-seconds and seconds of its copy, as its runner logged them, and seconds from the Job's start to
    its completion: the pod's start besides) of each finished copy Job."""
    jobs = json.loads(running.control_plane.kubectl("get", "jobs", "-n", namespace, "-o", "json"))["items"]
    finished = []
    for job in jobs:
        log = running.control_plane.kubectl("logs", "-n", namespace, f"job/{job['metadata']['name']}", check=False)
        finished += [(float(cpu), float(copying), copy_jobs.seconds(job)) for cpu, copying in JOB_LOG.findall(log)]
    return finished


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=int, default=8)
    parser.add_argument("--rows-mib", type=int, default=20)
    parser.add_argument("--uploads-mib", type=int, default=40)
    chosen = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wpclone-bench-jobs-"))
    running = stack.start_stack(base, site_count=0, with_wpclone=True)
    try:
        (source,) = wordpress.create_sites(1, running.database, base / "sites", host=network.GATEWAY)
        install_migrator_as_mu_plugin(source.docroot)
        running.sites.append(source)
        build_reference_site(running.database, source, chosen.rows_mib, chosen.uploads_mib)
        site_bytes = table_bytes(running.database, source.db_name) + folder_bytes(source.docroot)
        print(f"reference site: {table_bytes(running.database, source.db_name) / MIB:.0f} MiB of table data, "
              f"{folder_bytes(source.docroot) / MIB:.0f} MiB of files; {chosen.clones} clones each way")
        images.import_into(node.ctr(), ["wpclone"])
        assert running.operator is not None and running.api is not None
        for mode in ("operator", "job"):
            running.operator.env.update({"WPCLONE_COPY_IN": mode, "WPCLONE_CONCURRENCY": str(chosen.clones),
                                         "WPCLONE_MAX_COPY_JOBS": str(chosen.clones),
                                         "WPCLONE_COPY_IMAGE": images.ref("wpclone")})  # the one imported
            running.operator.restart()
            print(f"=== copies in the {mode}")
            if mode == "job":
                # The Jobs' logs before the burst's deletes take them: read them as the clones turn Ready.
                asyncio.run(burst(running, source, chosen.clones, prefix="job",
                                  before_delete=lambda: report_jobs(running, site_bytes, chosen.clones)))
            else:
                asyncio.run(burst(running, source, chosen.clones, prefix="in-operator"))
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def report_jobs(running: stack.Stack, site_bytes: int, clones: int) -> None:
    assert running.api is not None
    finished = finished_jobs(running, running.api.namespace)
    if not finished:
        print("  no copy Job logged its CPU-seconds")
        return
    cpu, wall = statistics.median(c for c, _, _ in finished), statistics.median(w for _, w, _ in finished)
    job = statistics.median(j for _, _, j in finished)
    print(f"  copy Jobs: {len(finished)} of {clones} finished; per copy of {site_bytes / MIB:.0f} MiB: median "
          f"{cpu:.1f} CPU-seconds (slowest {max(c for c, _, _ in finished):.1f}), the copy {wall:.1f} s (slowest "
          f"{max(w for _, w, _ in finished):.1f} s), the Job from its start to its end {job:.0f} s (slowest "
          f"{max(j for _, _, j in finished):.0f} s: its pod's start besides), {clones} copies sharing the machine")
    # A paper estimate for 50 clones of 1 GiB sites: a copy's CPU grows with its bytes (taken as linear, an
    # upper bound: a part of each is the runner's start); one copy per core (its CPU limit), as fast as its
    # CPU lets it when its source keeps up (here the copies' time went waiting on one shared PHP source).
    per_copy_cpu = cpu * 1024 * MIB / site_bytes
    print(f"  50 clones of 1 GiB: {per_copy_cpu:.0f} CPU-seconds per copy, {50 * per_copy_cpu / 3600:.2f} CPU-hours "
          f"in the copy Jobs (the sources' PHP and the shared MySQL server besides)")
    for nodes, cores in ((1, 1), (1, 2), (3, 4), (10, 8)):
        rounds = -(-50 // (nodes * cores))
        print(f"    {nodes} node(s) x {cores} core(s): {min(50, nodes * cores)} copies at once, {rounds} round(s), "
              f"at least {rounds * per_copy_cpu / 60:.1f} min for all 50")


if __name__ == "__main__":
    sys.exit(main())
