"""The engine's pure parts: what a copy includes, and how frames are cut into numbered import chunks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_children import make_clone
from wpclone_common.resources import RestoreInclude
from wpclone_engine import frames
from wpclone_engine.import_chunks import ChunkedImport, FilesImport, TablesImport
from wpclone_engine.transfer import Include, TransferError, chosen_tables
from wpclone_engine.wordpress import ImportJob, SiteInfo, TableInfo
from wpclone_operator import children, cloning, restoring
from wpclone_operator.inputs import Mounted
from wpclone_operator.settings import Settings

JOB = ImportJob("0123456789ab", max_request_bytes=8192)


class RecordingDestination:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []

    async def send_chunk(self, kind: str, body: list[bytes]) -> dict[str, Any]:
        self.chunks.append((kind, b"".join(body)))
        return {}


def chunk_frames(body: bytes) -> list[frames.Frame]:
    reader = frames.FrameReader()
    found = reader.feed(body)
    reader.close()
    return found


def numbered(destination: RecordingDestination, kind: str) -> list[list[frames.Frame]]:
    """The frames of each chunk of `kind`, checking each is within the size limit and numbered 1, 2, ..."""
    chunks = [chunk_frames(body) for sent, body in destination.chunks if sent == kind]
    assert all(len(body) <= JOB.max_request_bytes for _, body in destination.chunks)
    assert [chunk[0].json() for chunk in chunks] == [{"job": JOB.id, "seq": seq} for seq in range(1, len(chunks) + 1)]
    return [chunk[1:] for chunk in chunks]


async def test_tables_are_cut_into_numbered_chunks_at_row_boundaries() -> None:
    destination = RecordingDestination()
    tables = TablesImport(ChunkedImport(destination, JOB, "database"))  # type: ignore[arg-type]
    rows = [[str(i).encode(), b"x" * 300] for i in range(100)]
    await tables.begin_table("wp_posts", "CREATE TABLE `wp_posts` (...)", ["ID", "post_content"])
    await tables.rows(b"".join(frames.encode_record(row) for row in rows))
    await tables.end_table("wp_posts", 100)
    sent = await tables.chunks.close()

    chunks = numbered(destination, "database")
    assert len(chunks) == sent > 3
    kinds = [frame.kind for chunk in chunks for frame in chunk]
    assert kinds[0] == frames.TABLE and kinds[-1] == frames.TABLE_END and set(kinds[1:-1]) == {frames.ROWS}
    assert [row for chunk in chunks for frame in chunk if frame.kind == frames.ROWS
            for row in frames.decode_records(frame.payload, 2)] == rows


async def test_files_become_pieces_that_say_where_they_belong() -> None:
    destination = RecordingDestination()
    files = FilesImport(ChunkedImport(destination, JOB, "files", parallel=2))  # type: ignore[arg-type]
    content = bytes(range(256)) * 80  # larger than a chunk: cut into pieces
    await files.begin_file(frames.encode_record([b"uploads/a.bin", str(len(content)).encode(), b"7", b"420"]))
    await files.data(content[:5000])
    await files.data(content[5000:])
    await files.begin_file(frames.encode_record([b"uploads/empty.txt", b"0", b"7", b"420"]))
    await files.close()

    pieces = [frames.decode_single_record(frame.payload, 6) for chunk in numbered(destination, "files")
              for frame in chunk]
    assert all(frame.kind == frames.PIECE for chunk in numbered(destination, "files") for frame in chunk)
    rebuilt = bytearray(len(content))
    for path, offset, size, mtime, mode, data in pieces:
        if path == b"uploads/a.bin":
            assert (size, mtime, mode) == (str(len(content)).encode(), b"7", b"420")
            rebuilt[int(offset or 0):int(offset or 0) + len(data or b"")] = data or b""
    assert bytes(rebuilt) == content and len(pieces) > 3
    assert [b"uploads/empty.txt", b"0", b"0", b"7", b"420", b""] in pieces


async def test_a_file_shorter_or_longer_than_announced_is_a_broken_stream() -> None:
    files = FilesImport(ChunkedImport(RecordingDestination(), JOB, "files"))  # type: ignore[arg-type]
    await files.begin_file(frames.encode_record([b"uploads/a.txt", b"3", b"0", b"420"]))
    with pytest.raises(frames.StreamError, match="more data than the 3 bytes"):
        await files.data(b"four")
    await files.data(b"ab")
    with pytest.raises(frames.StreamError, match="2 of 3 bytes arrived"):
        await files.close()


def test_include_names_the_folders_it_carries() -> None:
    assert Include().folders == ["uploads", "themes", "plugins"]
    assert Include(themes=False, plugins=False).folders == ["uploads"]
    assert Include(mu_plugins=True).folders == ["uploads", "themes", "plugins", "mu-plugins"]


async def test_a_clone_copies_the_sources_mu_plugins_and_a_restore_leaves_productions_alone(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copies: list[Include] = []

    async def copy_site(source: object, destination: object, *, include: Include, **_: object) -> None:
        copies.append(include)

    @contextlib.asynccontextmanager
    async def site_session(*_: object, **__: object) -> AsyncIterator[None]:
        yield None

    async def ignore(*_: object) -> None:
        return None

    clone = make_clone()
    secret = {"username": "admin", "password": "pw", "database": "db", "host": "db:3306", "migrator-token": "t"}
    for name in (clone.spec.source.credentialsSecretRef.name, children.db_secret_name(clone),
                 children.admin_secret_name(clone)):  # as a copy Job has them: files the kubelet mounted
        (tmp_path / "secrets" / name).mkdir(parents=True)
        for key, value in secret.items():
            (tmp_path / "secrets" / name / key).write_text(value)
    monkeypatch.setattr(cloning, "site_session", site_session)
    monkeypatch.setattr(cloning, "copy_site", copy_site)
    monkeypatch.setattr(cloning, "until_answering", ignore)
    settings = Settings(mysql_admin_dsn="mysql://admin:pw@db:3306/")  # type: ignore[arg-type]
    await cloning.copy_into_clone(clone, settings, Mounted(tmp_path), progress=ignore)
    assert copies == [Include(mu_plugins=True, content=True)]
    assert restoring.include_for(RestoreInclude(), "wp_").folders == ["uploads", "themes", "plugins", "content"]


def test_tables_to_copy_must_exist_on_the_source() -> None:
    info = SiteInfo(home="http://a.test", siteurl="http://a.test", table_prefix="wp_",
                    tables={"wp_posts": TableInfo("wp_posts", 1), "wp_options": TableInfo("wp_options", 1)},
                    options={}, mode="plugin", max_request_bytes=1, backups=[], versions={})
    assert chosen_tables(info, Include()) == ["wp_options", "wp_posts"]
    assert chosen_tables(info, Include(tables=("wp_posts",))) == ["wp_posts"]
    with pytest.raises(TransferError, match="has no table wp_nope") as failure:
        chosen_tables(info, Include(tables=("wp_posts", "wp_nope")))
    assert failure.value.reason == "UnknownTable"
