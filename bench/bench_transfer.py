"""How fast the copy engine moves a site, against the floor of this machine in the same run.

    .venv/bin/python -m bench.bench_transfer [--rows-mib 50] [--uploads-mib 200] [--rounds 2]

Builds a reference site (posts and meta holding the site URL, plain and serialized; random upload
files), then times, alternately, the engine (copy_site between two local WordPress sites, URL rewrite
included) and the floor (`mysqldump | mysql` of the same tables plus `tar | tar` of the same
folders). Prints each round, the best of each, the median of the per-round ratios and the engine's peak
memory (the bench process's peak RSS, reset once the reference site is built). No thresholds: numbers to
read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.machine import memory_mib
from testenv import wordpress
from testenv.mariadb import MariaDB, start_mariadb
from tests.integration.transfer_fixtures import install_migrator_as_mu_plugin
from wpclone_engine.transfer import copy_site
from wpclone_engine.wordpress import Migrator

MIB = 2**20
FOLDERS = ("uploads", "themes", "plugins")


def build_reference_site(mariadb: MariaDB, site: wordpress.WordPressSite, rows_mib: int, uploads_mib: int) -> None:
    """Rows: posts whose content links to the site, and meta holding serialized settings with its URL;
    uploads: incompressible files from 16 KiB to 2 MiB, as photos are."""
    db, url = f"`{site.db_name}`", site.url
    posts = rows_mib * MIB * 2 // 3 // 2300
    mariadb.sql(
        f"INSERT INTO {db}.wp_posts (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,"
        " post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, guid)"
        f" SELECT 1, NOW(), NOW(), CONCAT('<p>', REPEAT(CONCAT('Read <a href=\"{url}/p/', seq, '/\">more</a> ',"
        f" MD5(seq), ' '), 20), '<img src=\"{url}/wp-content/uploads/2024/01/f', seq % 500, '.jpg\"/></p>'),"
        f" CONCAT('Post ', seq), '', 'publish', CONCAT('post-', seq), '', '', NOW(), NOW(), '',"
        f" CONCAT('{url}/?p=', seq) FROM mysql.seq_1_to_{posts}")
    meta = rows_mib * MIB // 3 // 400
    serialized = (f"CONCAT('a:3:{{s:3:\"url\";s:', LENGTH(CONCAT('{url}/p/', seq)), ':\"{url}/p/', seq,"
                  f" '\";s:4:\"size\";i:', seq, ';s:4:\"note\";s:256:\"', REPEAT(MD5(seq), 8), '\";}}')")
    mariadb.sql(f"INSERT INTO {db}.wp_postmeta (post_id, meta_key, meta_value) SELECT seq, '_settings', {serialized}"
                f" FROM mysql.seq_1_to_{meta}")
    uploads = site.docroot / "wp-content" / "uploads"
    written, index = 0, 0
    while written < uploads_mib * MIB:
        size = (16 * 1024) << (index % 8)  # 16 KiB ... 2 MiB
        folder = uploads / f"{2018 + index % 7}" / f"{1 + index % 12:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.jpg").write_bytes(os.urandom(size))
        written += size
        index += 1


def table_bytes(mariadb: MariaDB, db: str) -> int:
    mariadb.sql(f"ANALYZE TABLE `{db}`.wp_posts, `{db}`.wp_postmeta")  # InnoDB's sizes are estimates until then
    return int(mariadb.sql(f"SELECT SUM(DATA_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'"))


def folder_bytes(docroot: Path) -> int:
    return sum(path.stat().st_size for folder in FOLDERS
               for path in (docroot / "wp-content" / folder).rglob("*") if path.is_file() and not path.is_symlink())


async def engine_round(source: wordpress.WordPressSite, target: wordpress.WordPressSite) -> float:
    async with httpx.AsyncClient() as http:
        begin = time.perf_counter()
        await copy_site(Migrator(http, source.url, login=source.admin_user, password=source.admin_password),
                        Migrator(http, target.url, login=target.admin_user, password=target.admin_password))
        return time.perf_counter() - begin


def floor_round(mariadb: MariaDB, source: wordpress.WordPressSite, scratch: Path) -> float:
    copy_db = "floor_copy"
    mariadb.sql(f"DROP DATABASE IF EXISTS {copy_db}; CREATE DATABASE {copy_db}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    client = f"--no-defaults --socket={mariadb.socket} --user=root"
    begin = time.perf_counter()
    subprocess.run(f"mariadb-dump {client} --single-transaction --quick {source.db_name} | mariadb {client} {copy_db}",
                   shell=True, check=True)
    subprocess.run(f"tar -C {source.docroot / 'wp-content'} -cf - {' '.join(FOLDERS)} | tar -C {scratch} -xf -",
                   shell=True, check=True)
    return time.perf_counter() - begin


def option_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows-mib", type=int, default=50)
    parser.add_argument("--uploads-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    return parser


def options(description: str) -> argparse.Namespace:
    return option_parser(description).parse_args()


@contextlib.contextmanager
def reference_sites(rows_mib: int, uploads_mib: int) -> Iterator[tuple[MariaDB, Path, wordpress.WordPressSite,
                                                                       wordpress.WordPressSite]]:
    """A private MariaDB and two sites with the migrator: the reference site, and an empty destination."""
    base = Path(tempfile.mkdtemp(prefix="wpclone-bench-"))
    mariadb = start_mariadb(base)
    sites: list[wordpress.WordPressSite] = []
    try:
        sites = wordpress.create_sites(2, mariadb, base / "sites")
        for site in sites:
            install_migrator_as_mu_plugin(site.docroot)
        build_reference_site(mariadb, sites[0], rows_mib, uploads_mib)
        print(f"reference site: {table_bytes(mariadb, sites[0].db_name) / MIB:.0f} MiB of table data, "
              f"{folder_bytes(sites[0].docroot) / MIB:.0f} MiB in {', '.join(FOLDERS)} "
              f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
        yield mariadb, base, sites[0], sites[1]
    finally:
        for site in sites:
            site.stop()
        mariadb.stop()
        shutil.rmtree(base, ignore_errors=True)


async def main() -> None:
    chosen = options(__doc__.splitlines()[0])
    with reference_sites(chosen.rows_mib, chosen.uploads_mib) as (mariadb, base, source, target):
        engine, floor = [], []
        Path("/proc/self/clear_refs").write_text("5")  # the peak RSS from here on (Linux)
        for round_number in range(1, chosen.rounds + 1):
            engine.append(await engine_round(source, target))
            floor.append(floor_round(mariadb, source, base / "floor"))
            print(f"round {round_number}: engine {engine[-1]:.2f} s, floor {floor[-1]:.2f} s, "
                  f"ratio {engine[-1] / floor[-1]:.2f}")
        # Each round's two runs share the machine's load of the moment: their ratio is the steadier figure.
        ratios = sorted(run / base_run for run, base_run in zip(engine, floor, strict=True))
        print(f"best: engine {min(engine):.2f} s (copy_site, URL rewritten), floor {min(floor):.2f} s "
              f"(mariadb-dump | mariadb + tar | tar); ratio of bests {min(engine) / min(floor):.2f}, "
              f"median ratio per round {statistics.median(ratios):.2f}; "
              f"the engine's peak RSS {memory_mib()[1]:.0f} MiB")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
