"""Source snapshots in the copy engine: a copy that records what it reads from a real seeded site, and
clones built from the recording with the site stopped (so nothing of it can be read), compared row by
row with the clone that read the site."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from testenv.mariadb import MariaDB
from testenv.wordpress import WordPressSite
from tests.integration import transfer_fixtures
from tests.integration.test_restore import hold_route
from tests.integration.test_sqlite_clone import mysql_rows
from tests.integration.transfer_fixtures import EmptyClone, SiteMaker, an_empty_clone, content_hashes
from wpclone_engine import reasons
from wpclone_engine.database_import import DatabaseTarget
from wpclone_engine.snapshot import (
    DATABASE,
    FILES,
    PUBLISHED,
    RecordedSite,
    Recording,
    SnapshotError,
    open_snapshot,
)
from wpclone_engine.transfer import CopyResult, DatabaseDestination, Include, TransferError, copy_site
from wpclone_engine.wordpress import Migrator

pytestmark = pytest.mark.integration

make_site = transfer_fixtures.make_site

# A must-use plugin on the source that counts its database exports (outside wp-content: never copied).
COUNT_EXPORTS = """<?php
add_filter('rest_pre_dispatch', function ($result, $server, $request) {
    if ($request->get_route() === '/wpclone/v1/export/database') {
        file_put_contents(ABSPATH . 'exports.count', "x", FILE_APPEND | LOCK_EX);
    }
    return $result;
}, 10, 3);
"""


def count_exports(site: WordPressSite) -> None:
    (site.docroot / "wp-content" / "mu-plugins" / "count-exports.php").write_text(COUNT_EXPORTS)


def exports(site: WordPressSite) -> int:
    counted = site.docroot / "exports.count"
    return len(counted.read_bytes()) if counted.exists() else 0


def source_migrator(http: httpx.AsyncClient, site: WordPressSite) -> Migrator:
    return Migrator(http, site.url, login=site.admin_user, password=site.admin_password, role="source")


def destination(http: httpx.AsyncClient, mariadb: MariaDB, clone: EmptyClone) -> DatabaseDestination:
    return DatabaseDestination(DatabaseTarget(mariadb.host, mariadb.port, clone.db_user, clone.db_password,
                                              clone.db_name, clone.table_prefix),
                               clone.url, files=Migrator(http, clone.url, token=clone.token, role="clone"))


def tables(mariadb: MariaDB, clone: EmptyClone) -> dict[str, list[tuple[bytes | None, ...]]]:
    """Each table's rows, the clone's own URL (and the serialized lengths that follow it) made neutral."""
    names = mariadb.sql(f"SHOW TABLES FROM `{clone.db_name}`").split()
    url = clone.url.encode()

    def neutral(value: bytes | None) -> bytes | None:
        if value is None:
            return None
        return re.sub(rb's:\d+:"', b's:?:"', value.replace(url, b"<clone>"))

    return {name: sorted((tuple(neutral(value) for value in row) for row in mysql_rows(mariadb, clone.db_name, name)),
                         key=repr) for name in names}


async def test_clones_from_a_snapshot_equal_the_clone_that_read_the_site_which_is_read_once(
        mariadb: MariaDB, make_site: SiteMaker, tmp_path: Path) -> None:
    production = make_site()
    count_exports(production)
    folder = tmp_path / "snapshot"
    with an_empty_clone(mariadb, tmp_path) as first, an_empty_clone(mariadb, tmp_path) as second:
        async with httpx.AsyncClient(timeout=60) as http:
            recording = Recording(source_migrator(http, production), folder)
            read = await copy_site(recording, destination(http, mariadb, first), include=Include(
                mu_plugins=True, content=True))
            manifest = recording.publish()
            production.stop()  # from here on, any read of the site would fail the copy
            replayed = await copy_site(RecordedSite.open(folder), destination(http, mariadb, second),
                                       include=Include(mu_plugins=True, content=True))
            made, read_rows = tables(mariadb, second), tables(mariadb, first)  # before a page load adds transients
            page = await http.get(second.url + "/first-steps/")

        assert exports(production) == 1
        assert manifest.bytes == sum(path.stat().st_size for path in (folder / PUBLISHED).glob("*.stream"))
        assert not list(folder.glob("incoming-*"))
        assert (replayed.tables, replayed.rows, replayed.files, replayed.bytes) == (
            read.tables, read.rows, read.files, read.bytes)
        # The checksums a restore compares production with are those of the read, not of the replay's time.
        assert replayed.source_checksums == read.source_checksums and read.source_checksums
        assert replayed.old_urls_left == 0 and replayed.destination_url == second.url
        assert made and {name: set(rows) ^ set(read_rows[name]) for name, rows in made.items()
                if rows != read_rows[name]} == {}
        assert page.status_code == 200 and f'href="{second.url}/sample-page/"' in page.text
        assert content_hashes(second.docroot) == content_hashes(first.docroot) == content_hashes(production.docroot)


async def test_a_damaged_snapshot_fails_the_copy_before_anything_is_swapped_in(
        mariadb: MariaDB, make_site: SiteMaker, tmp_path: Path) -> None:
    production = make_site()
    folder = tmp_path / "snapshot"
    with an_empty_clone(mariadb, tmp_path) as first, an_empty_clone(mariadb, tmp_path) as second:
        async with httpx.AsyncClient(timeout=60) as http:
            recording = Recording(source_migrator(http, production), folder)
            await copy_site(recording, destination(http, mariadb, first), include=Include(uploads=False))
            recording.publish()
            for name in (DATABASE, FILES):
                stream = folder / PUBLISHED / name
                recorded = stream.read_bytes()
                flipped = bytearray(recorded)
                flipped[len(flipped) // 2] ^= 0x01
                for damaged in (bytes(flipped), recorded[: len(recorded) // 2]):  # a bit changed; cut short
                    stream.write_bytes(damaged)
                    with pytest.raises(TransferError) as refused:
                        await copy_site(RecordedSite.open(folder), destination(http, mariadb, second),
                                        include=Include(uploads=False))
                    assert refused.value.reason == reasons.SNAPSHOT_UNUSABLE, (name, refused.value)
                    assert name in str(refused.value)
                    assert mariadb.sql(f"SHOW TABLES FROM `{second.db_name}`").split() == []
                stream.write_bytes(recorded)
            await copy_site(RecordedSite.open(folder), destination(http, mariadb, second),
                            include=Include(uploads=False))
        assert tables(mariadb, second)


async def test_a_copy_of_part_of_a_site_keeps_no_snapshot_and_a_snapshot_serves_only_what_it_holds(
        mariadb: MariaDB, make_site: SiteMaker, tmp_path: Path) -> None:
    production = make_site()
    folder = tmp_path / "snapshot"
    with an_empty_clone(mariadb, tmp_path) as first, an_empty_clone(mariadb, tmp_path) as second:
        async with httpx.AsyncClient(timeout=60) as http:
            site = source_migrator(http, production)
            partial = Recording(site, folder)
            await copy_site(partial, destination(http, mariadb, first), include=Include(
                tables=("wp_posts",), uploads=False, themes=False, plugins=False))
            with pytest.raises(SnapshotError):
                partial.publish()
            assert list(folder.iterdir()) == []
            whole = Recording(site, folder)
            await copy_site(whole, destination(http, mariadb, second), include=Include(themes=False))
            whole.publish()
            before = tables(mariadb, second)
            for other in (Include(), Include(themes=False, tables=("wp_posts",))):
                with pytest.raises(TransferError) as refused:
                    await copy_site(RecordedSite.open(folder), destination(http, mariadb, second), include=other)
                assert refused.value.reason == reasons.SNAPSHOT_UNUSABLE
            assert tables(mariadb, second) == before


HOLD_FILES_EXPORT = hold_route("export/files")


async def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_a_clone_asked_while_the_snapshot_is_recorded_follows_the_recording_and_ends_with_it(
        mariadb: MariaDB, make_site: SiteMaker, tmp_path: Path) -> None:
    production = make_site()
    count_exports(production)
    content = production.docroot / "wp-content"
    (content / "mu-plugins" / "hold-files-export.php").write_text(HOLD_FILES_EXPORT)
    folder = tmp_path / "snapshot"
    with an_empty_clone(mariadb, tmp_path) as first, an_empty_clone(mariadb, tmp_path) as second, \
            an_empty_clone(mariadb, tmp_path) as third:
        async with httpx.AsyncClient(timeout=120) as http:
            # The recording holds in the middle (its files export waits): one follower reads what is there
            # and waits for the rest; then the recording goes on, is published, and the follower ends.
            (content / "hold-imports").touch()
            recording = Recording(source_migrator(http, production), folder)

            async def record() -> CopyResult:
                result = await copy_site(recording, destination(http, mariadb, first), include=Include(mu_plugins=True))
                recording.publish()
                return result

            recorder = asyncio.ensure_future(record())
            await until(lambda: (content / "import-held").exists(), "the recording's files export held")
            follower = asyncio.ensure_future(copy_site(await open_snapshot(folder), destination(
                http, mariadb, second), include=Include(mu_plugins=True)))
            await asyncio.sleep(2)
            assert not follower.done() and not (folder / PUBLISHED).exists()
            (content / "hold-imports").unlink()
            read, followed = await recorder, await follower
            # A last clone asked afterwards reads the published snapshot.
            published = await copy_site(await open_snapshot(folder), destination(http, mariadb, third),
                                        include=Include(mu_plugins=True))

        assert exports(production) == 1
        assert (followed.tables, followed.rows, followed.files, followed.bytes) == (
            read.tables, read.rows, read.files, read.bytes) == (
            published.tables, published.rows, published.files, published.bytes)
        assert followed.source_checksums == read.source_checksums
        assert tables(mariadb, second) == tables(mariadb, first) == tables(mariadb, third)
        assert content_hashes(second.docroot) == content_hashes(first.docroot)


async def test_the_followers_of_an_abandoned_recording_fail_before_anything_is_swapped_in(
        mariadb: MariaDB, make_site: SiteMaker, tmp_path: Path) -> None:
    production = make_site()
    content = production.docroot / "wp-content"
    (content / "mu-plugins" / "hold-files-export.php").write_text(HOLD_FILES_EXPORT)
    folder = tmp_path / "snapshot"
    with an_empty_clone(mariadb, tmp_path) as first, an_empty_clone(mariadb, tmp_path) as second:
        async with httpx.AsyncClient(timeout=120) as http:
            (content / "hold-imports").touch()
            recording = Recording(source_migrator(http, production), folder)
            recorder = asyncio.ensure_future(copy_site(recording, destination(http, mariadb, first)))
            await until(lambda: (content / "import-held").exists(), "the recording's files export held")
            follower = asyncio.ensure_future(copy_site(await open_snapshot(folder), destination(
                http, mariadb, second)))
            await asyncio.sleep(1)
            recorder.cancel()  # its copy Job's pod killed: the copy is cancelled and its recording discarded
            with pytest.raises(asyncio.CancelledError):
                await recorder
            recording.discard()
            with pytest.raises(TransferError) as refused:
                await follower
            (content / "hold-imports").unlink()
        assert refused.value.reason == reasons.SNAPSHOT_UNUSABLE and "abandoned" in str(refused.value)
        assert mariadb.sql(f"SHOW TABLES FROM `{second.db_name}`").split() == []
