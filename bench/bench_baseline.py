"""What a merge baseline costs per row, against the md5s it cannot do without, in the same run.

    .venv/bin/python -m bench.bench_baseline [--rows-mib 50] [--rounds 5]

The rows are the reference site's of bench_transfer (posts whose content links to the site, and meta
holding serialized settings with its URL), built in memory as the source's export frames them, and as
they arrive in the clone (every row holds the URL, so every row is rewritten). The engine's side is
merge.TableBaseline.rows on those payloads, a batch of rows at a time; the floor is the md5 of every
record on both sides, the record boundaries already known (what any baseline of md5 fingerprints must
hash). Prints the best of --rounds for each table and both sides (per row and in all), and the ratio.
No thresholds: numbers to read.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable

from wpclone_engine import frames, merge

OLD, NEW = b"http://shop.test", b"https://clone-1234.clones.example.com"
MIB = 2**20
BATCH = 500  # rows per payload, as the export's frames hold them
POST_COLUMNS = ["ID", "post_author", "post_date", "post_date_gmt", "post_content", "post_title", "post_excerpt",
                "post_status", "comment_status", "ping_status", "post_password", "post_name", "to_ping", "pinged",
                "post_modified", "post_modified_gmt", "post_content_filtered", "post_parent", "guid", "menu_order",
                "post_type", "post_mime_type", "comment_count"]
META_COLUMNS = ["meta_id", "post_id", "meta_key", "meta_value"]


def post(seq: int) -> list[bytes]:
    digest = hashlib.md5(str(seq).encode()).hexdigest()
    links = "".join(f'Read <a href="{OLD.decode()}/p/{seq}/">more</a> {digest} ' for _ in range(20))
    content = f'<p>{links}<img src="{OLD.decode()}/wp-content/uploads/2024/01/f{seq % 500}.jpg"/></p>'
    when = "2026-01-01 00:00:00"
    values = [str(seq), "1", when, when, content, f"Post {seq}", "", "publish", "open", "open", "", f"post-{seq}",
              "", "", when, when, "", "0", f"{OLD.decode()}/?p={seq}", "0", "post", "", "0"]
    return [value.encode() for value in values]


def meta(seq: int) -> list[bytes]:
    url = f"{OLD.decode()}/p/{seq}"
    note = hashlib.md5(str(seq).encode()).hexdigest() * 8
    value = f'a:3:{{s:3:"url";s:{len(url)}:"{url}";s:4:"size";i:{seq};s:4:"note";s:256:"{note}";}}'
    return [str(seq).encode(), str(seq).encode(), b"_settings", value.encode()]


def rewritten(row: list[bytes]) -> list[bytes]:
    """The row as it arrives (the lengths inside serialized values are not fixed: this times fingerprints)."""
    return [value.replace(OLD, NEW) for value in row]


def payloads(make: Callable[[int], list[bytes]], count: int) -> list[tuple[bytes, bytes]]:
    """(as sent, as arrived) payloads of BATCH rows each."""
    batches = []
    for first in range(1, count + 1, BATCH):
        rows = [make(seq) for seq in range(first, min(first + BATCH, count + 1))]
        batches.append((b"".join(map(frames.encode_record, rows)),
                        b"".join(frames.encode_record(rewritten(row)) for row in rows)))
    return batches


def best(rounds: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-mib", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    chosen = parser.parse_args()
    # As bench_transfer.build_reference_site sizes them.
    tables = [("posts", POST_COLUMNS, payloads(post, chosen.rows_mib * MIB * 2 // 3 // 2300)),
              ("postmeta", META_COLUMNS, payloads(meta, chosen.rows_mib * MIB // 3 // 400))]
    engine_total = floor_total = 0.0
    for name, columns, batches in tables:
        table = merge.TableBaseline.of(f"wp_{name}", columns, [columns[0]], name)
        spans = [([(start, end) for start, end, _ in frames.record_spans(sent, len(columns))],
                  [(start, end) for start, end, _ in frames.record_spans(arrived, len(columns))])
                 for sent, arrived in batches]
        count = sum(len(sent_spans) for sent_spans, _ in spans)

        def engine(table: merge.TableBaseline = table, batches: list[tuple[bytes, bytes]] = batches) -> None:
            for sent, arrived in batches:
                table.rows(sent, arrived)

        def floor(batches: list[tuple[bytes, bytes]] = batches,
                  spans: list[tuple[list[tuple[int, int]], list[tuple[int, int]]]] = spans) -> None:
            md5 = hashlib.md5
            for (sent, arrived), (sent_spans, arrived_spans) in zip(batches, spans, strict=True):
                for start, end in sent_spans:
                    md5(sent[start:end]).digest()
                for start, end in arrived_spans:
                    md5(arrived[start:end]).digest()
        engine_seconds, floor_seconds = best(chosen.rounds, engine), best(chosen.rounds, floor)
        engine_total, floor_total = engine_total + engine_seconds, floor_total + floor_seconds
        print(f"{name}: {count} rows, baseline {engine_seconds:.3f} s ({engine_seconds / count * 1e6:.2f} µs a row), "
              f"md5s alone {floor_seconds:.3f} s ({floor_seconds / count * 1e6:.2f} µs), "
              f"ratio {engine_seconds / floor_seconds:.2f}")
    print(f"both tables: baseline {engine_total:.3f} s, md5s alone {floor_total:.3f} s, "
          f"ratio {engine_total / floor_total:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
