"""Production left no weaker by a restore, on the real stack: a clone's uploads holding PHP are refused
with ForbiddenFile and production is left exactly as it was; a restore that succeeds keeps its backup
outside the document root, leaves no migrator behind, and its files get 0644 whatever the clone had."""

from __future__ import annotations

import stat

import pytest

from testenv import cluster
from testenv.mariadb import MariaDB
from testenv.operator_process import OperatorProcess
from tests.helpers import apply, clone_wp_content
from tests.integration import transfer_fixtures
from tests.integration.test_restore import clone_of, restore_manifest, wait_restore
from tests.integration.transfer_fixtures import SiteMaker, backup_store, leftovers, snapshot

pytestmark = pytest.mark.integration
make_site = transfer_fixtures.make_site


def test_a_clones_uploaded_php_is_refused_and_production_is_left_as_it_was(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, namespace: str, make_site: SiteMaker) -> None:
    production = make_site()
    stage = clone_of(control_plane, namespace, production)
    uploads = clone_wp_content(control_plane, namespace, stage) / "uploads"
    (uploads / "evil.php").write_bytes(b"<?php system($_GET['c']);\n")
    (uploads / "from-the-clone.txt").write_bytes(b"media made on the clone\n")
    before = snapshot(mariadb, production)

    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}}))
    refused = wait_restore(control_plane, namespace, "push")

    assert refused["status"]["phase"] == "Failed", refused["status"]
    assert refused["status"]["conditions"][0]["reason"] == "ForbiddenFile"
    assert "uploads/evil.php" in refused["status"]["message"]
    assert snapshot(mariadb, production) == before
    assert leftovers(mariadb, production) == []
    assert not (production.docroot / "wp-content" / "uploads" / "evil.php").exists()


def test_a_restores_backup_is_kept_outside_the_document_root_and_its_files_are_not_executable(
        control_plane: cluster.ControlPlane, operator: OperatorProcess,
        mariadb: MariaDB, namespace: str, make_site: SiteMaker) -> None:
    production = make_site(migrator=False)  # installed for the clone and again for the restore
    stage = clone_of(control_plane, namespace, production)
    assert not (production.docroot / "wp-content" / "plugins" / "wpclone-migrator").exists()  # left after the clone
    note = clone_wp_content(control_plane, namespace, stage) / "uploads" / "from-the-clone.txt"
    note.write_bytes(b"media made on the clone\n")
    note.chmod(0o777)

    apply(control_plane, namespace, restore_manifest("push", production, source={"cloneRef": {"name": stage}}))
    done = wait_restore(control_plane, namespace, "push")
    assert done["status"]["phase"] == "Completed", done["status"]
    backup = done["status"]["backupId"]

    content = production.docroot / "wp-content"
    assert stat.S_IMODE((content / "uploads" / "from-the-clone.txt").stat().st_mode) == 0o644
    store = backup_store(production)
    for root in ("uploads", "themes", "plugins"):
        assert not (content / root / f".wpclone-backup-{backup}").exists(), root
        assert (store / backup / root / "site").is_dir(), root
    # The migrator was installed for the restore (production did not have it) and has left again.
    assert not (content / "plugins" / "wpclone-migrator").exists()
