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

JOB_CPU = re.compile(r"copied; ([0-9.]+) CPU-seconds")


def jobs_cpu(running: stack.Stack, namespace: str) -> list[float]:
    """Each finished copy Job's CPU-seconds, as its runner logged them."""
    jobs = json.loads(running.control_plane.kubectl("get", "jobs", "-n", namespace, "-o", "json"))["items"]
    used = []
    for job in jobs:
        log = running.control_plane.kubectl("logs", "-n", namespace, f"job/{job['metadata']['name']}", check=False)
        used += [float(seconds) for seconds in JOB_CPU.findall(log)]
    return used


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
                                         "WPCLONE_MAX_COPY_JOBS": str(chosen.clones)})
            running.operator.restart()
            print(f"=== copies in the {mode}")
            if mode == "job":
                # The Jobs' logs before the burst's deletes take them: read them as the clones turn Ready.
                asyncio.run(burst(running, source, chosen.clones,
                                  before_delete=lambda: report_jobs(running, site_bytes, chosen.clones)))
            else:
                asyncio.run(burst(running, source, chosen.clones))
    finally:
        running.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


def report_jobs(running: stack.Stack, site_bytes: int, clones: int) -> None:
    assert running.api is not None
    used = jobs_cpu(running, running.api.namespace)
    if not used:
        print("  no copy Job logged its CPU-seconds")
        return
    per_copy = statistics.median(used)
    per_gib = per_copy * 1024 * MIB / site_bytes
    print(f"  copy Jobs: {len(used)} of {clones} logged; CPU-seconds per copy median {per_copy:.1f}, "
          f"slowest {max(used):.1f} ({site_bytes / MIB:.0f} MiB site: {per_gib:.0f} CPU-seconds per GiB)")
    # The paper estimate: 50 copies of 1 GiB each need 50 x per_gib CPU-seconds; a copy runs on one core.
    total = 50 * per_gib
    for cores in (2, 16, 64):
        print(f"  50 clones of 1 GiB sites: {total / 3600:.1f} CPU-hours; on {cores} cores "
              f"(one copy per core): about {max(total / cores, per_gib) / 60:.0f} min")


if __name__ == "__main__":
    sys.exit(main())
