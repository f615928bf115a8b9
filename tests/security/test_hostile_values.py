"""Frames and values built to exhaust the operator: no columns, huge integers, deep JSON, deep or digit-laden
serialized data. Each is refused with a reason, or rewritten as text and counted, within a bounded time."""

from __future__ import annotations

import pytest

from tests.security.hostile_input import watchdog
from tests.unit.test_transfer import JOB, RecordingDestination
from wpclone_common import constants
from wpclone_engine import frames
from wpclone_engine.database_import import insert_statements
from wpclone_engine.import_chunks import ChunkedImport, FilesImport, TablesImport
from wpclone_engine.rewrite import MAX_STRING_DEPTH, Outcome, UrlRewrite

REWRITE = UrlRewrite("http://a.test", "http://b.test")
URL = b"http://a.test/x"


def serialized_string(text: bytes) -> bytes:
    return b's:%d:"%s";' % (len(text), text)


def nested_strings(depth: int) -> bytes:
    value = URL
    for _ in range(depth):
        value = serialized_string(value)
    return value


def test_records_of_no_columns_are_refused_instead_of_read_forever() -> None:
    with watchdog(2):
        for read in (lambda: list(frames.split_records(b"\x00" * 16, 0, 8)),
                     lambda: list(frames.decode_records(b"x", 0)),
                     lambda: list(insert_statements("t", [], b"x"))):
            with pytest.raises(frames.StreamError, match="records of 0 values") as refusal:
                read()
            assert refusal.value.reason == constants.MALFORMED_STREAM


async def test_a_table_without_columns_is_refused_at_its_frame() -> None:
    frame = frames.Frame(frames.TABLE, b'{"name": "wp_t0", "create": "", "columns": []}')
    with pytest.raises(frames.StreamError, match="1 to 4096 distinct column names"):
        frame.json()
    tables = TablesImport(ChunkedImport(RecordingDestination(), JOB, "database"))  # type: ignore[arg-type]
    with pytest.raises(frames.StreamError, match="records of 0 values"), watchdog(2):
        await tables.begin_table("wp_t0", "", [])
        await tables.rows(frames.encode_record([b"x"]))


@pytest.mark.parametrize("payload", [
    b'{"name": "wp_t0", "rows": 1' + b"0" * 5000 + b"}",  # more digits than Python converts
    b'{"name": "wp_t0", "rows": 1000000000000000000}',  # 10**18: more than either end holds
    b'{"name": "wp_t0", "rows": 1e999}',
    b'{"name": "wp_t0", "rows": "12"}',
    b'{"name": "wp_t0", "rows": true}',
    b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's recursion limit
    b'{"name": "wp_t0", "rows": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
], ids=["5000-digits", "10e18", "infinite", "text", "boolean", "deep-array", "deep-member"])
def test_an_end_frame_with_a_count_no_table_has_is_refused(payload: bytes) -> None:
    with pytest.raises(frames.StreamError) as refusal:
        frames.Frame(frames.TABLE_END, payload).json()
    assert refusal.value.reason == constants.MALFORMED_STREAM


@pytest.mark.parametrize("size", [b"1" + b"0" * 5000, b"1" + b"0" * 18, b"-1", b"", b"1e3", b"\xd9\xa3"],
                         ids=["5000-digits", "19-digits", "negative", "empty", "exponent", "arabic-digit"])
async def test_a_file_whose_size_is_not_a_plain_number_is_refused(size: bytes) -> None:
    files = FilesImport(ChunkedImport(RecordingDestination(), JOB, "files"))  # type: ignore[arg-type]
    with pytest.raises(frames.StreamError, match="not a number of at most 18 digits"):
        await files.begin_file(frames.encode_record([b"uploads/a.txt", size, b"0", b"420"]))


async def test_an_exporters_failure_message_is_cut_short() -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield frames.encode_json(frames.ERROR, {"message": "x" * 100_000})

    with pytest.raises(frames.StreamError) as refusal:
        async for _ in frames.read_frames(chunks()):
            pass
    assert refusal.value.reason == constants.BAD_STREAM
    assert len(str(refusal.value)) <= frames.MAX_MESSAGE_CHARS + 30


def test_an_unknown_frame_is_refused_before_its_payload_is_awaited() -> None:
    with pytest.raises(frames.StreamError, match="unknown frame kind b'Q'"):
        frames.FrameReader().feed(b"Q\x03\xff\xff\xff")


@pytest.mark.parametrize("value", [
    b"a:1:{i:0;" * 100_000 + serialized_string(URL) + b"}" * 100_000,
    nested_strings(MAX_STRING_DEPTH + 2),
    nested_strings(200),
    b"s:" + b"9" * 5000 + b':"' + URL + b'";',
    b"a:" + b"9" * 5000 + b":{i:0;" + serialized_string(URL) + b"}",
    b"a:2:{i:0;" + serialized_string(URL) + b"i:1;d:" + b"1" * 1_000_000 + b"x;}",
    b"a:2:{i:0;" + serialized_string(URL) + b"i:1;i:" + b"1" * 1_000_000 + b"x;}",
], ids=["arrays-100000-deep", "strings-just-too-deep", "strings-200-deep", "length-5000-digits",
        "count-5000-digits", "double-of-a-million-digits", "integer-of-a-million-digits"])
def test_hostile_serialized_values_are_rewritten_as_text_and_counted_in_bounded_time(value: bytes) -> None:
    with watchdog(5):
        rewritten, outcome = REWRITE.value(value)
    assert outcome is Outcome.UNPARSEABLE
    assert URL not in rewritten and rewritten.count(b"http://b.test/x") == value.count(URL)


def test_serialized_values_nested_as_deep_as_allowed_are_still_rewritten() -> None:
    rewritten, outcome = REWRITE.value(nested_strings(MAX_STRING_DEPTH + 1))
    assert outcome is Outcome.REWRITTEN and b"http://b.test/x" in rewritten and URL not in rewritten
