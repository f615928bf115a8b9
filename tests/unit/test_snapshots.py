"""Source snapshots as data: which copy a clone makes (record, replay, wait, fresh), what its Job mounts,
what a recorded snapshot says, and a snapshot folder read back (its manifest and digests)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_copy_jobs import CLONE_BODY, owner, settings
from wpclone_common import constants
from wpclone_common.resources import WordPressClone
from wpclone_engine.snapshot import (
    DATABASE,
    FILES,
    MANIFEST,
    PUBLISHED,
    FilesAsked,
    Manifest,
    RecordedSite,
    SnapshotError,
)
from wpclone_engine.transfer import CopyResult
from wpclone_operator import copy_jobs, snapshots, status
from wpclone_operator.copy_jobs import Plan
from wpclone_operator.snapshots import choose

NOW = status.parse_time("2026-06-01T12:00:00Z")
DIGEST = snapshots.login_digest("https://shop.example.com", {"username": "admin", "password": "pw"})


def clone(**spec: Any) -> WordPressClone:
    return WordPressClone.from_body({**CLONE_BODY, "spec": {**CLONE_BODY["spec"], **spec}})


def snapshot(name: str, phase: str | None, *, recorded_minutes_ago: float | None = None,
             recording_for: str | None = None, created_minutes_ago: float = 1,
             deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": status.format_time(
        NOW - timedelta(minutes=created_minutes_ago))}
    if recording_for:
        metadata["ownerReferences"] = [{"kind": "WordPressClone", "uid": recording_for, "name": "x"}]
    if deleting:
        metadata["deletionTimestamp"] = status.format_time(NOW)
    state: dict[str, Any] = {} if phase is None else {"phase": phase}
    if recorded_minutes_ago is not None:
        state["recordedAt"] = status.format_time(NOW - timedelta(minutes=recorded_minutes_ago))
    return {"metadata": metadata, "status": state}


def pick(*found: dict[str, Any], max_age: int = 30, digests: dict[str, str | None] | None = None,
         uid: str = "u-1") -> snapshots.Choice:
    body = clone()
    body = body.model_copy(update={"uid": uid})
    known = digests if digests is not None else {item["metadata"]["name"]: DIGEST for item in found}
    return choose(body, max_age, 3600, list(found), known, DIGEST, NOW)


def test_a_clone_records_a_snapshot_when_none_serves_and_replays_the_newest_young_enough() -> None:
    assert pick().action == "record" and pick().snapshot is None
    assert (pick(max_age=0).action, pick(snapshot("a", "Ready", recorded_minutes_ago=1), max_age=0).action) == (
        "fresh", "fresh")
    older, newer = snapshot("a", "Ready", recorded_minutes_ago=20), snapshot("b", "Ready", recorded_minutes_ago=5)
    assert pick(older, newer) == snapshots.Choice("replay", "b", pick(older, newer).message)
    assert pick(older, newer, max_age=10).snapshot == "b"
    assert pick(older, newer, max_age=4).action == "record"  # both too old for this clone
    assert pick(newer, digests={"b": "another login's"}).action == "record"
    assert pick(newer, digests={"b": None}).action == "record"  # no Secret: never made by the operator
    assert pick(snapshot("b", "Ready", recorded_minutes_ago=1, deleting=True)).action == "record"
    assert pick(snapshot("c", "Failed", recorded_minutes_ago=1)).action == "record"
    going = snapshot("d", "Ready", recorded_minutes_ago=1)
    going["status"]["expiresAt"] = status.format_time(NOW + timedelta(seconds=30))
    assert pick(going).action == "record"  # about to be deleted: not mounted by a new Job


def test_a_clone_follows_another_clones_recording_and_takes_its_own_claim_back() -> None:
    theirs = snapshot("r", "Recording", recording_for="u-other")
    assert (pick(theirs).action, pick(theirs).snapshot) == ("replay", "r")
    assert pick(snapshot("r", None, recording_for="u-other")).action == "replay"  # status not yet written
    mine = snapshot("r", "Recording", recording_for="u-1")
    assert pick(mine) == snapshots.Choice("record", "r", "recording snapshot r")
    # A recording older than a copy's deadline, or one whose clone is gone (no owner), is waited for no more.
    assert pick(snapshot("r", "Recording", recording_for="u-other", created_minutes_ago=61)).action == "record"
    assert pick(snapshot("r", "Recording")).action == "record"
    assert pick(snapshot("r", "Recording", recording_for="u-other"), digests={"r": "other"}).action == "record"


def test_a_snapshot_serves_only_clones_of_the_same_site_rules_and_engine() -> None:
    base = snapshots.key(clone())
    assert snapshots.key(clone(source={"url": "https://shop.example.com/", "credentialsSecretRef": {"name": "x"}})) \
        == base  # the login is the digest's to check, not the key's
    assert snapshots.key(clone(source={"url": "https://other.example.com", "credentialsSecretRef": {"name": "x"}})) \
        != base
    assert snapshots.key(clone(content={"exclude": ["uploads/2019"]})) != base
    assert snapshots.key(clone(database={"engine": "sqlite"})) != base
    assert snapshots.key(clone().model_copy(update={"tenant": "acme"})) != base  # the API's tenants share a namespace
    assert len(base) <= 63 and len(snapshots.snapshot_name(clone(), NOW)) <= 63


def test_the_snapshot_default_is_the_operators_and_a_copy_in_the_operator_takes_none() -> None:
    assert snapshots.max_age_minutes(clone(), settings()) == 0
    assert snapshots.max_age_minutes(clone(), settings(snapshot_max_age_minutes=15)) == 15
    assert snapshots.max_age_minutes(clone(snapshot={"maxAgeMinutes": 0}), settings(snapshot_max_age_minutes=15)) == 0
    assert snapshots.max_age_minutes(clone(snapshot={"maxAgeMinutes": 5}), settings(copy_in="operator")) == 0


def test_a_login_digest_differs_for_each_login_and_holds_neither_part() -> None:
    other = snapshots.login_digest("https://shop.example.com", {"username": "admin", "password": "pw2"})
    assert other != DIGEST and "pw" not in DIGEST and len(DIGEST) == 64


def test_the_snapshot_and_its_children_are_owned_as_they_must_be() -> None:
    body = snapshots.snapshot_body(clone(content={"dropIns": True}), "snapshot-x")
    (owner_ref,) = body["metadata"]["ownerReferences"]
    assert owner_ref["uid"] == "u-1" and "controller" not in owner_ref  # deleted with the clone while it records
    assert body["spec"] == {"source": {"url": "https://shop.example.com"},
                            "content": {"dropIns": True, "exclude": []}}
    assert body["metadata"]["labels"][snapshots.KEY_LABEL] == snapshots.key(clone(content={"dropIns": True}))
    secret = snapshots.digest_secret("team-a", "snapshot-x", "s-1", DIGEST)
    claim = snapshots.claim_body("team-a", "snapshot-x", "s-1", settings(storage_class="fast"))
    for child in (secret, claim):
        (reference,) = child["metadata"]["ownerReferences"]
        assert (reference["kind"], reference["uid"], reference["controller"]) == ("SourceSnapshot", "s-1", True)
    assert claim["spec"]["storageClassName"] == "fast" and claim["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_a_recorded_snapshot_says_when_the_site_was_read_and_when_it_goes() -> None:
    result = CopyResult("https://shop.example.com", "https://c.example", 12, 340, 56, 7890, 3, 0,
                        {"wp_posts": "123", "wp_odd": None})
    made = snapshots.recorded_status({"recordedAt": NOW.timestamp() - 90, "bytes": 9000}, result,
                                     settings(snapshot_retention_minutes=60), NOW)
    assert made["recordedAt"] == "2026-06-01T11:58:30Z" and made["expiresAt"] == "2026-06-01T12:58:30Z"
    assert (made["phase"], made["bytes"], made["tables"], made["rows"], made["files"]) == ("Ready", 9000, 12, 340, 56)
    assert made["checksums"] == {"wp_posts": "123", "wp_odd": None}
    assert snapshots.due({"status": {"expiresAt": "2026-06-01T11:59:59Z"}}, NOW)
    assert not snapshots.due({"status": {"expiresAt": "2026-06-01T12:00:01Z"}}, NOW)
    assert not snapshots.due({"status": {}}, NOW)


def test_a_copy_job_mounts_the_snapshot_read_only_to_replay_and_writable_to_record() -> None:
    for use, read_only in (("replay", True), ("record", False)):
        made = copy_jobs.job(owner(), Plan(kind=constants.CLONE_KIND, namespace="team-a", name="shop",
                                           outcome="shop-copy", clone=copy_jobs.plan_body(CLONE_BODY),
                                           snapshot="snapshot-x", snapshot_use=use),  # type: ignore[arg-type]
                             settings(), ["shop-db"], [])
        pod = made["spec"]["template"]["spec"]
        assert {"name": "snapshot", "persistentVolumeClaim": {"claimName": "snapshot-x"}} in pod["volumes"]
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "snapshot"]
        assert mount["mountPath"] == copy_jobs.SNAPSHOT_MOUNT and mount.get("readOnly", False) == read_only
        assert copy_jobs.snapshot_of(made) == ("snapshot-x", use) and copy_jobs.holds_a_clone_volume(made)
    plain = copy_jobs.job(owner(), Plan(kind=constants.CLONE_KIND, namespace="team-a", name="shop",
                                        outcome="shop-copy", clone=copy_jobs.plan_body(CLONE_BODY)), settings(), [], [])
    assert copy_jobs.snapshot_of(plain) == (None, None)


def published(folder: Path, database: bytes, files: bytes, **changes: Any) -> Path:
    site = folder / PUBLISHED
    site.mkdir(parents=True)
    (site / DATABASE).write_bytes(database)
    (site / FILES).write_bytes(files)
    info = {"home": "https://shop.example.com", "siteurl": "https://shop.example.com", "table_prefix": "wp_",
            "tables": {}, "options": {}, "mode": "plugin", "max_request_bytes": 1, "backups": [], "versions": {}}
    streams = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
               for name, data in ((DATABASE, database), (FILES, files))}
    manifest = Manifest("https://shop.example.com", NOW.timestamp(), info, streams,
                        FilesAsked(("uploads",), False, ()))
    text = manifest.to_json()
    for old, new in changes.items():
        text = text.replace(old, new)
    (site / MANIFEST).write_text(text)
    return folder


async def read_all(site: RecordedSite, name: str) -> bytes:
    opener = site.export_database(None, 1) if name == DATABASE else site.export_files(["uploads"], 1)
    async with opener as chunks:
        return b"".join([chunk async for chunk in chunks])


def test_a_snapshot_folder_gives_back_its_streams_and_refuses_a_changed_one(tmp_path: Path) -> None:
    big = bytes(range(256)) * 9000  # more than one read
    site = RecordedSite.open(published(tmp_path / "a", big, b"files"))
    assert asyncio.run(read_all(site, DATABASE)) == big and asyncio.run(read_all(site, FILES)) == b"files"
    assert asyncio.run(site.info()).home == "https://shop.example.com" and site.url == "https://shop.example.com"
    (tmp_path / "a" / PUBLISHED / FILES).write_bytes(b"filez")
    with pytest.raises(SnapshotError, match="not what was recorded"):
        asyncio.run(read_all(site, FILES))
    with pytest.raises(SnapshotError, match="no snapshot"):
        RecordedSite.open(tmp_path / "empty")
    for change in ({'"format":1': '"format":2'}, {'"home":': '"hom":'}, {'"bytes":5': '"bytes":"x"'}):
        with pytest.raises(SnapshotError, match="manifest"):
            RecordedSite.open(published(tmp_path / str(len(list(tmp_path.iterdir()))), b"db", b"files", **change))
