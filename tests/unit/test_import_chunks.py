"""Import chunks in flight: database chunks side by side, each applied in its order by the migrator."""

from __future__ import annotations

import asyncio

from wpclone_engine import frames, reasons
from wpclone_engine.import_chunks import ChunkedImport
from wpclone_engine.wordpress import ImportJob, WordPressError


class OrderedSite:
    """A migrator's database import as seen from the engine: a chunk applied only after the one before it,
    one that comes first refused as not yet. The first chunk is held back until the second has overtaken it."""

    def __init__(self) -> None:
        self.applied: list[int] = []
        self.refused: list[int] = []
        self._overtaken = asyncio.Event()

    async def send_chunk(self, kind: str, body: list[bytes]) -> dict[str, object]:
        seq = frames.FrameReader().feed(body[0])[0].json()["seq"]
        if seq == 1:
            await self._overtaken.wait()
        if seq != len(self.applied) + 1:
            self.refused.append(seq)
            self._overtaken.set()
            raise WordPressError(reasons.CHUNK_EARLY, f"database chunk {seq} came before chunk {len(self.applied) + 1}")
        self.applied.append(seq)
        return {"seq": seq}


async def test_a_chunk_that_overtook_the_one_before_is_sent_again_once_that_one_is_answered() -> None:
    site = OrderedSite()
    chunks = ChunkedImport(site, ImportJob("0123456789ab", max_request_bytes=1 << 20), "database",  # type: ignore[arg-type]
                           parallel=2, max_bytes=2048)
    for number in range(4):  # each one more than a chunk holds: four chunks
        await chunks.add(frames.encode_frame(frames.ROWS, bytes([number]) * 900))
    assert await asyncio.wait_for(chunks.close(), 10) == 4
    assert (site.applied, site.refused) == ([1, 2, 3, 4], [2])
