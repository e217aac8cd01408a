"""Per-partition progress, stored in the lake itself: the source of truth.

``_state/<group>/<topic>/<partition>.json`` holds

* ``next_offset`` C: every record of the partition below C is in a stored
  file (or was dead-lettered, or skipped as already stored);
* ``covered``: per buffer key, the offset ranges ``[first, last]`` of stored
  files that reach C or beyond (older ranges are pruned). Records at or above
  C inside a covered range of their key are already in the lake: a replay
  skips them;
* ``generation``: bumped by every new owner of the partition; with
  conditional writes it fences a previous owner's late state writes.

See docs/architecture.md for why this gives exactly-once files.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.sink.layout import BufferKey

Range = tuple[int, int]


@dataclass(slots=True)
class PartitionState:
    next_offset: int | None = None
    covered: dict[BufferKey, list[Range]] = field(default_factory=dict)
    generation: int = 0

    def is_covered(self, key: BufferKey, offset: int) -> bool:
        ranges = self.covered.get(key)
        if not ranges:
            return False
        i = bisect.bisect_right(ranges, (offset, 1 << 62)) - 1
        return i >= 0 and ranges[i][0] <= offset <= ranges[i][1]

    def record(self, key: BufferKey, first: int, last: int) -> None:
        """Note a stored file holding ``key``'s records from ``first`` to ``last``."""
        ranges = self.covered.setdefault(key, [])
        bisect.insort(ranges, (first, last))

    def advance(self, next_offset: int) -> None:
        """Move C forward and forget ranges entirely below it."""
        self.next_offset = max(next_offset, self.next_offset or 0)
        c = self.next_offset
        for key in list(self.covered):
            kept = [r for r in self.covered[key] if r[1] >= c]
            if kept:
                self.covered[key] = kept
            else:
                del self.covered[key]

    def to_json(self, *, topic: str, partition: int, writer: str) -> bytes:
        body: dict[str, Any] = {
            "version": 1,
            "topic": topic,
            "partition": partition,
            "next_offset": self.next_offset,
            "covered": {
                k.state_key(): [list(r) for r in v] for k, v in sorted(self.covered.items())
            },
            "generation": self.generation,
            "writer": writer,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        return orjson.dumps(body, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> PartitionState:
        body = orjson.loads(data)
        covered = {
            BufferKey.from_state_key(k): sorted((int(a), int(b)) for a, b in v)
            for k, v in body.get("covered", {}).items()
        }
        return cls(body.get("next_offset"), covered, int(body.get("generation", 0)))
