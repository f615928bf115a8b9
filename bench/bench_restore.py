"""How fast a restore pushes a site into production, backup included, against this machine's floor.

    .venv/bin/python -m bench.bench_restore [--rows-mib 50] [--uploads-mib 200] [--rounds 2]

The restore path is what the operator runs for a CloneRestore: the target's checksums and content
are read (the conflict check and the plan), then copy_site writes everything with backup=True (what
it replaces is kept on the target). Each round deletes that backup afterwards. The floor is the same
run's `mariadb-dump | mariadb` plus `tar | tar`. Prints figures and ratios; no thresholds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_transfer import FOLDERS, MIB, build_reference_site, floor_round, folder_bytes, table_bytes
from testenv import wordpress
from testenv.mariadb import start_mariadb
from tests.integration.transfer_fixtures import install_migrator_as_mu_plugin
from wpclone_operator.transfer import copy_site
from wpclone_operator.wordpress import Migrator


async def restore_round(clone: wordpress.WordPressSite, production: wordpress.WordPressSite) -> float:
    async with httpx.AsyncClient(timeout=600) as http:
        source = Migrator(http, clone.url, login=clone.admin_user, password=clone.admin_password)
        target = Migrator(http, production.url, login=production.admin_user, password=production.admin_password)
        begin = time.perf_counter()
        await target.info(checksums=True, content=True)
        result = await copy_site(source, target, backup=True)
        elapsed = time.perf_counter() - begin
        assert result.backup is not None
        await target.delete_backup(result.backup)
        return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-mib", type=int, default=50)
    parser.add_argument("--uploads-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="wpclone-bench-restore-"))
    mariadb = start_mariadb(base)
    sites: list[wordpress.WordPressSite] = []
    try:
        sites = wordpress.create_sites(2, mariadb, base / "sites")
        clone, production = sites
        for site in sites:
            install_migrator_as_mu_plugin(site.docroot)
        build_reference_site(mariadb, clone, options.rows_mib, options.uploads_mib)
        print(f"reference site: {table_bytes(mariadb, clone.db_name) / MIB:.0f} MiB of table data, "
              f"{folder_bytes(clone.docroot) / MIB:.0f} MiB in {', '.join(FOLDERS)}")
        restores, floors = [], []
        for round_number in range(1, options.rounds + 1):
            restores.append(await restore_round(clone, production))
            floors.append(floor_round(mariadb, clone, base / "floor"))
            print(f"round {round_number}: restore {restores[-1]:.2f} s, floor {floors[-1]:.2f} s, "
                  f"ratio {restores[-1] / floors[-1]:.2f}")
        ratios = [run / floor for run, floor in zip(restores, floors, strict=True)]
        print(f"best: restore {min(restores):.2f} s (checks + copy + backup), floor {min(floors):.2f} s; "
              f"median ratio per round {statistics.median(ratios):.2f} (goal: 2 or less)")
    finally:
        for site in sites:
            site.stop()
        mariadb.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
