"""Checksummed records and the one damage rule for every file the node keeps.

What it owns
    The framing every Rast file uses (WAL segments today, snapshot files next)::

        u32 payload_length | u32 crc32(payload) | payload          (little-endian)

    and the rule that decides, when a file is read back, whether a bad record may be cut:

    * **torn tail** (may be cut): the file ends inside its final record, as a crash in the middle of
      a write leaves it. A write lands as a prefix (the header first, then part of the payload), so
      what is cut is a record that is *incomplete*: fewer than 8 bytes of header, or a header whose
      length reaches past the end of the file. Two checks make sure such an incomplete record is
      not a damaged complete one: no intact record starts anywhere after it (else the damage has
      data behind it), and no shorter length makes its checksum match (else it is a complete
      final record whose length field was damaged).
    * **damage** (never cut; `DamagedFile`): anything else. A record that fails its checksum
      although its bytes are all there, a length outside the bounds, a record that parses but
      makes no sense to its reader (`RecordReader.damaged`), an incomplete record followed by an
      intact one. Acknowledged data may sit after it or in it: cutting there would silently forget
      it, so the file is left untouched and the caller refuses to start.

    A file that is written whole and renamed into place (a snapshot) has no torn tail to cut:
    readers pass ``torn_tail_ok=False`` and an incomplete final record is damage too.

What it may not touch
    Any meaning of the payloads (the caller decodes them), file handles, the filesystem.

Bounds
    Scanning for intact records after a torn candidate and trying shorter lengths both look only
    at the bytes after it, which a torn record bounds (less than its claimed length); nothing is
    allocated per candidate.
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterator, Sequence

__all__ = ["DamagedFile", "RecordReader", "frame", "REC", "RECORD_BYTES_MAX"]

RECORD_BYTES_MAX = 16 * 1024 * 1024  # largest payload accepted; anything larger is damage
REC = struct.Struct("<II")  # payload_length, crc32(payload)


class DamagedFile(Exception):
    """A file the node keeps is damaged (not a torn tail): refuse to use it; it is left untouched."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path} is damaged at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


def frame(payload_parts: Sequence[bytes], out: list[bytes], payload_bytes_min: int = 1) -> int:
    """Append one framed record made of `payload_parts` to `out`; return its size in bytes."""
    length = 0
    crc = 0
    for part in payload_parts:
        length += len(part)
        crc = zlib.crc32(part, crc)
    assert payload_bytes_min <= length <= RECORD_BYTES_MAX, f"record payload {length} bytes out of bounds"
    out.append(REC.pack(length, crc))
    out.extend(payload_parts)
    return REC.size + length


class RecordReader:
    """Iterate the intact records of `buf` (a whole file) as (offset, payload view).

    The iteration stops at the end of the file or at a torn tail; then `good_bytes` is the end of
    the last intact record and `torn_reason` says what was incomplete ("" if nothing was). Damage
    raises `DamagedFile` from the iteration; a caller that finds a record meaningless raises
    `reader.damaged(offset, why)`. Payload views are only valid while `buf` is.
    """

    def __init__(self, buf: memoryview, path: str, *, payload_bytes_min: int = 1,
                 payload_bytes_max: int = RECORD_BYTES_MAX, torn_tail_ok: bool = True) -> None:
        assert 1 <= payload_bytes_min <= payload_bytes_max <= RECORD_BYTES_MAX
        self.buf = buf
        self.path = path
        self.payload_bytes_min = payload_bytes_min
        self.payload_bytes_max = payload_bytes_max
        self.torn_tail_ok = torn_tail_ok
        self.good_bytes = 0
        self.torn_reason = ""

    def damaged(self, offset: int, reason: str) -> DamagedFile:
        return DamagedFile(self.path, offset, reason)

    def __iter__(self) -> Iterator[tuple[int, memoryview]]:
        buf = self.buf
        size = len(buf)
        off = 0
        while off < size:
            left = size - off
            if left < REC.size:
                self._torn(off, f"torn record header ({left} of {REC.size} bytes)")
                return
            length, crc = REC.unpack_from(buf, off)
            if not self.payload_bytes_min <= length <= self.payload_bytes_max:
                raise self.damaged(off, f"record length {length} out of bounds")
            end = off + REC.size + length
            if end > size:
                self._torn(off, f"torn record ({length} byte payload, {left - REC.size} present)", crc)
                return
            payload = buf[off + REC.size:end]
            if zlib.crc32(payload) != crc:
                raise self.damaged(off, f"checksum mismatch in a complete {length} byte record")
            yield off, payload
            off = end
            self.good_bytes = off

    def _torn(self, off: int, reason: str, crc: int | None = None) -> None:
        """An incomplete final record at `off`: cut it only if nothing says it is damage instead."""
        if not self.torn_tail_ok:
            raise self.damaged(off, reason + " in a file that is never written in place")
        nxt = self._intact_record_after(off + 1)
        if nxt is not None:
            raise self.damaged(off, f"{reason}, but an intact record follows at offset {nxt}")
        if crc is not None and self._checksum_fits_shorter(off, crc):
            raise self.damaged(off, f"{reason}, but its checksum matches a shorter length: "
                                    "its length field is damaged")
        self.torn_reason = reason

    def _intact_record_after(self, start: int) -> int | None:
        """Offset of the first intact record starting at or after `start`, if any."""
        buf = self.buf
        size = len(buf)
        lo, hi = self.payload_bytes_min, self.payload_bytes_max
        unpack = REC.unpack_from
        for off in range(start, size - REC.size - lo + 1):
            length, crc = unpack(buf, off)
            if lo <= length <= hi and off + REC.size + length <= size:
                if zlib.crc32(buf[off + REC.size:off + REC.size + length]) == crc:
                    return off
        return None

    def _checksum_fits_shorter(self, off: int, crc: int) -> bool:
        """Does some prefix of the bytes after the header at `off` (within the length bounds) have
        checksum `crc`? One incremental pass over at most the file's remaining bytes."""
        buf = self.buf
        start = off + REC.size
        running = zlib.crc32(buf[start:start + self.payload_bytes_min - 1])
        for end in range(start + self.payload_bytes_min, len(buf) + 1):
            running = zlib.crc32(buf[end - 1:end], running)
            if running == crc:
                return True
        return False
