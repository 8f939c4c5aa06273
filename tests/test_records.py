"""The one damage rule every file the node keeps is read with (rast_maelstrom.runtime.records):
an incomplete final record with nothing intact after it is a torn tail; everything else is damage.
Files written whole and renamed into place (snapshots) have no torn tail at all."""

from __future__ import annotations

import pytest

from rast_maelstrom.runtime.records import REC, DamagedFile, RecordReader, frame


def file_of(*payloads: bytes) -> bytes:
    out: list[bytes] = []
    for p in payloads:
        frame([p], out)
    return b"".join(out)


def read(raw: bytes, **kw):
    reader = RecordReader(memoryview(raw), "/data/f", **kw)
    return [bytes(p) for _, p in reader], reader


def test_every_intact_record_is_read_back() -> None:
    got, r = read(file_of(b"one", b"two", b"three"))
    assert got == [b"one", b"two", b"three"] and r.good_bytes == 3 * REC.size + 11 and r.torn_reason == ""


@pytest.mark.parametrize("cut", range(1, REC.size + 3))
def test_an_incomplete_final_record_is_a_torn_tail(cut: int) -> None:
    raw = file_of(b"one", b"two")
    got, r = read(raw[: len(raw) - cut])  # the last record lost its last `cut` bytes
    assert got == [b"one"] and r.good_bytes == REC.size + 3 and r.torn_reason.startswith("torn record")


def test_a_file_written_whole_has_no_torn_tail() -> None:
    raw = file_of(b"one", b"two")
    with pytest.raises(DamagedFile, match="never written in place") as exc:
        read(raw[:-1], torn_tail_ok=False)
    assert exc.value.offset == REC.size + 3


@pytest.mark.parametrize("damage,offset,why", [
    (lambda b: b[: REC.size] + b"X" + b[REC.size + 1:], 0, "checksum mismatch"),
    (lambda b: bytes(4) + b[4:], 0, "out of bounds"),
    (lambda b: b[:2] + b"\x01" + b[3:], 0, "an intact record follows"),  # length + 64 KiB: past the end
])
def test_damage_names_its_offset(damage, offset: int, why: str) -> None:
    raw = damage(file_of(b"one", b"two"))
    with pytest.raises(DamagedFile, match=why) as exc:
        read(raw)
    assert exc.value.offset == offset and str(exc.value).startswith(f"/data/f is damaged at offset {offset}")
