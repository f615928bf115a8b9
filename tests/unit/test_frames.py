"""The stream format: Python and the PHP plugin must read what the other writes, however it is cut."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wpclone_engine import frames
from wpclone_engine.migrator import PLUGIN_DIR

values = st.none() | st.binary(max_size=40)
records = st.lists(st.lists(values, min_size=3, max_size=3), max_size=8)
frame_lists = st.lists(st.tuples(st.sampled_from([frames.ROWS, frames.DATA, frames.FILE]), st.binary(max_size=300)),
                       max_size=10)


@given(records)
def test_records_read_back_as_written(rows: list[list[bytes | None]]) -> None:
    payload = b"".join(frames.encode_record(row) for row in rows)
    assert list(frames.decode_records(payload, 3)) == rows


@given(frame_lists, st.lists(st.integers(1, 97), min_size=1, max_size=20))
def test_frames_come_out_whole_however_the_stream_is_cut(sent: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(frames.encode_frame(kind, payload) for kind, payload in sent)
    reader, received, at = frames.FrameReader(), [], 0
    while at < len(stream):
        step = cuts[len(received) % len(cuts)]
        received += reader.feed(stream[at:at + step])
        at += step
    reader.close()
    assert [(frame.kind, frame.payload) for frame in received] == sent


@given(records, st.integers(8, 200))
def test_split_records_cuts_only_between_records_and_keeps_pieces_small(rows: list[list[bytes | None]],
                                                                        limit: int) -> None:
    encoded = [frames.encode_record(row) for row in rows]
    pieces = list(frames.split_records(b"".join(encoded), 3, limit))
    assert b"".join(piece for piece, _ in pieces) == b"".join(encoded)
    assert [row for piece, _ in pieces for row in frames.decode_records(piece, 3)] == rows
    assert all(count == len(list(frames.decode_records(piece, 3))) for piece, count in pieces)
    assert all(len(piece) <= limit or count == 1 for piece, count in pieces)


def test_a_frame_longer_than_allowed_is_refused_before_it_is_buffered() -> None:
    reader = frames.FrameReader(max_frame_bytes=1000)
    with pytest.raises(frames.StreamError, match="announces 1001 bytes"):
        reader.feed(frames.encode_frame(frames.ROWS, b"x" * 1001)[:10])


def test_a_stream_cut_inside_a_frame_is_an_error() -> None:
    reader = frames.FrameReader()
    reader.feed(frames.encode_frame(frames.ROWS, b"abcdef")[:-2])
    with pytest.raises(frames.StreamError, match="middle of a frame"):
        reader.close()


@pytest.mark.parametrize("payload", [b"\x00\x00\x00", b"\x00\x00\x00\x05ab\x00\x00\x00\x00\x00\x00\x00\x00"],
                         ids=["short-lengths", "value-too-long"])
def test_malformed_records_are_errors(payload: bytes) -> None:
    with pytest.raises(frames.StreamError):
        list(frames.decode_records(payload, 3))


async def _chunks(*pieces: bytes):  # type: ignore[no-untyped-def]
    for piece in pieces:
        yield piece


async def test_an_export_that_reports_failure_raises_its_message() -> None:
    stream = frames.encode_frame(frames.ROWS, b"") + frames.encode_json(frames.ERROR, {"message": "disk on fire"})
    with pytest.raises(frames.StreamError, match="the exporter failed: disk on fire"):
        async for _ in frames.read_frames(_chunks(stream)):
            pass


async def test_an_export_without_its_end_frame_is_incomplete() -> None:
    with pytest.raises(frames.StreamError, match="before its end frame"):
        async for _ in frames.read_frames(_chunks(frames.encode_frame(frames.ROWS, b""))):
            pass


async def test_an_export_ends_at_its_end_frame() -> None:
    stream = frames.encode_frame(frames.ROWS, b"r") + frames.encode_json(frames.END, {"rows": 0})
    kinds = [frame.kind async for frame in frames.read_frames(_chunks(stream[:3], stream[3:]))]
    assert kinds == [frames.ROWS, frames.END]


# --- the same format in PHP (migrator_plugin/wpclone-migrator-stream.php) -------------------------

def _php(code: str, stdin: bytes = b"", *args: str) -> bytes:
    assert shutil.which("php") is not None, "php is not installed: run testenv/install-system-packages.sh"
    prelude = f"define('ABSPATH', '/'); require '{PLUGIN_DIR}/wpclone-migrator-stream.php'; "
    return subprocess.run(["php", "-r", prelude + code, "--", *args], input=stdin, capture_output=True,
                          check=True).stdout


def test_python_reads_the_frames_and_records_php_writes() -> None:
    written = _php("echo WPClone_Frames::frame('R', WPClone_Frames::record(['a', null, \"\\0\\xff\", '']))"
                   " . WPClone_Frames::json('E', ['name' => 'wp_posts', 'rows' => 1]);")
    received = frames.FrameReader().feed(written)
    assert list(frames.decode_records(received[0].payload, 4)) == [[b"a", None, b"\x00\xff", b""]]
    assert received[1].json() == {"name": "wp_posts", "rows": 1}


# No deadline: each example starts a php process, whose start-up on a loaded machine is not under test.
@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(values, min_size=2, max_size=2), min_size=1, max_size=5))
def test_php_reads_the_frames_and_records_python_writes(rows: list[list[bytes | None]]) -> None:
    body = frames.encode_json(frames.HEADER, {"job": "abc", "seq": 1}) + frames.encode_frame(
        frames.ROWS, b"".join(frames.encode_record(row) for row in rows))
    code = ("$out = []; foreach ((new WPClone_Frame_Reader(STDIN))->frames() as [$kind, $payload]) {"
            " $out[] = $kind === 'R' ? array_map(function ($row) { return array_map(function ($v) {"
            " return $v === null ? null : base64_encode($v); }, $row); },"
            " iterator_to_array(WPClone_Frames::records($payload, 2), false)) : $payload; } echo json_encode($out);")
    header, decoded = json.loads(_php(code, body))
    assert json.loads(header) == {"job": "abc", "seq": 1}
    assert [[None if value is None else base64.b64decode(value) for value in row] for row in decoded] == rows


# A request body read as a stream: each frame's first bytes read, the rest copied into a file, a block at
# a time (WPClone_Frame_Reader, how a file chunk is imported); then the refusal, if any.
_READ_AS_STREAM = ("$body = new WPClone_Frame_Reader(STDIN, (int) $argv[1]); $out = []; try {"
                   " while (($frame = $body->next()) !== null) { [$kind, $length] = $frame;"
                   " $head = $body->read(min($length, 3)); $copy = fopen('php://memory', 'w+b');"
                   " $body->copy($length - strlen($head), $copy); rewind($copy);"
                   " $out[] = [$kind, base64_encode($head . stream_get_contents($copy))]; }"
                   " } catch (WPClone_Error $error) { $out[] = [$error->reason, $error->getMessage()]; }"
                   " echo json_encode($out);")


def _read_as_stream(body: bytes, size: int | None) -> list[list[str]]:
    return json.loads(_php(_READ_AS_STREAM, body, str(size or sys.maxsize)))


def test_php_reads_a_body_as_a_stream_frame_by_frame_with_the_checks_of_a_whole_one() -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)  # more than one block
    sent = [frames.encode_json(frames.HEADER, {"job": "abc", "seq": 1}), frames.encode_frame(frames.PIECE, data),
            frames.encode_frame(frames.ROWS, b""), frames.encode_frame(frames.PIECE, b"xy")]
    body = b"".join(sent)
    expected = [[frame[:1].decode(), base64.b64encode(frame[5:]).decode()] for frame in sent]
    assert _read_as_stream(body, len(body)) == expected
    assert _read_as_stream(body, None) == expected  # no Content-Length: the same
    assert _read_as_stream(body + b"P\0\0", None)[-1] == [
        "malformed_stream", f"truncated frame header at byte {len(body)}"]
    cut = body[:-1]
    assert _read_as_stream(cut, len(cut))[-1] == [
        "malformed_stream", f"frame 'P' at byte {len(cut) - 6} announces 2 bytes but the request holds 1"]
    assert _read_as_stream(cut, None)[-1] == [  # not announced: found where the body ends
        "malformed_stream", f"the request ends at byte {len(cut)}, inside frame 'P'"]


# --- a database stream that breaks off goes on where its reader stopped ----------------------------

def _table(name: str, key: list[str]) -> frames.Frame:
    return frames.Frame(frames.TABLE, json.dumps({"name": name, "create": f"CREATE TABLE `{name}` (`id` int)",
                                                  "columns": ["id", "title"], "key": key}).encode())


def _rows(*ids: int) -> frames.Frame:
    return frames.Frame(frames.ROWS, b"".join(frames.encode_record([b"%d" % n, b"title %d" % n]) for n in ids))


def _end(name: str, rows: int) -> frames.Frame:
    return frames.Frame(frames.TABLE_END, json.dumps({"name": name, "rows": rows}).encode())


def test_a_stream_that_broke_off_in_a_table_goes_on_after_the_last_row_taken() -> None:
    point = frames.ResumePoint()
    for frame in (_table("wp_a", ["id"]), _rows(1, 2), _end("wp_a", 2), _table("wp_posts", ["id"]), _rows(3, 4, 5)):
        assert point.join(frame) is frame
        point.taken(frame)
    assert point.resumable
    assert point.resume() == {"resume_from": "wp_posts", "resume_after": [base64.b64encode(b"5").decode()]}
    assert point.join(_table("wp_posts", ["id"])) is None  # the repeat of its table's head
    assert point.join(rows := _rows(6)) is rows
    point.taken(rows)
    end = point.join(_end("wp_posts", 1))
    assert end is not None and end.json() == {"name": "wp_posts", "rows": 4}  # 3 before, 1 now
    point.taken(end)
    assert point.resume() == {"resume_past": "wp_posts"}
    assert point.join(next_table := _table("wp_z", [])) is next_table  # between tables: nothing repeated


@pytest.mark.parametrize("head", [_table("wp_other", ["id"]), _table("wp_posts", []), _rows(6)],
                         ids=["another-table", "another-key", "no-head"])
def test_a_stream_that_goes_on_otherwise_than_its_table_began_is_refused(head: frames.Frame) -> None:
    _refused_going_on(frames.ResumePoint, (_table("wp_posts", ["id"]), _rows(1)), "went on without table wp_posts",
                      head)


def _refused_going_on(point_type: type[frames.ResumePoint | frames.FilesResumePoint], taken: tuple[frames.Frame, ...],
                      refusal: str, head: frames.Frame) -> None:
    point = point_type()
    for frame in taken:
        point.taken(frame)
    point.resume()
    with pytest.raises(frames.StreamError, match=refusal):
        point.join(head)


def test_a_table_without_a_key_goes_on_only_from_its_beginning() -> None:
    point = frames.ResumePoint()
    point.taken(_table("wp_log", []))
    assert point.resumable and point.resume() == {"resume_from": "wp_log"}
    point = frames.ResumePoint()
    point.taken(_table("wp_log", []))
    point.taken(_rows(1))
    assert not point.resumable  # no key to go on after: the copy starts again


def _file(path: bytes, size: int, mtime: int = 1700000000) -> frames.Frame:
    return frames.Frame(frames.FILE, frames.encode_record([path, str(size).encode(), str(mtime).encode(), b"420"]))


def test_a_files_stream_that_broke_off_goes_on_in_its_file_at_the_byte_after_those_taken() -> None:
    point = frames.FilesResumePoint()
    assert not point.resumable  # nothing taken: the export starts again
    for frame in (_file(b"uploads/a.jpg", 3), frames.Frame(frames.DATA, b"abc"), _file(b"uploads/b.jpg", 10),
                  frames.Frame(frames.DATA, b"0123"), frames.Frame(frames.DATA, b"45")):
        assert point.join(frame) is frame
        point.taken(frame)
    assert point.resumable
    assert point.resume() == {"resume_file": "uploads/b.jpg", "resume_offset": 6}
    assert point.join(_file(b"uploads/b.jpg", 10)) is None  # its header again: the sink has it
    assert point.join(rest := frames.Frame(frames.DATA, b"6789")) is rest


@pytest.mark.parametrize("head", [_file(b"uploads/b.jpg", 11), _file(b"uploads/b.jpg", 10, mtime=1),
                                  _file(b"uploads/c.jpg", 10), frames.Frame(frames.DATA, b"6789")],
                         ids=["another-size", "another-time", "another-file", "no-header"])
def test_a_files_stream_that_goes_on_otherwise_than_its_file_began_is_refused(head: frames.Frame) -> None:
    _refused_going_on(frames.FilesResumePoint, (_file(b"uploads/b.jpg", 10), frames.Frame(frames.DATA, b"0123")),
                      "went on without b'uploads/b.jpg'", head)


def test_a_file_whose_name_is_not_utf8_is_not_gone_on_in() -> None:
    point = frames.FilesResumePoint()
    point.taken(_file(b"uploads/caf\xe9.jpg", 10))
    assert not point.resumable  # JSON cannot name it to the exporter: the copy starts again
