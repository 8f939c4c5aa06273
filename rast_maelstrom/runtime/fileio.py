"""The file layer under the WAL (and, later, snapshot files): every call that changes a file.

What it owns
    `FileIO`: open, pwrite, fdatasync/fsync, ftruncate, rename, unlink and the directory fsync, as
    thin calls to `os`. The WAL does every mutating file operation through one of these objects,
    so a test (or the test-only `--disk-fault` flag of the node) can make any write or fsync fail.
    Reads (fstat, mmap) go straight to `os`: a failing read is not a durability question.

    `FaultyFileIO(FileIO)`: the same calls with planned failures. A `DiskFault` says which call
    fails: the n-th `write` or `fsync` (counted from 1 over the object's life; file and directory
    fsyncs count alike) raises `OSError(errno)`; a failing write first writes half of its bytes, as a
    disk that fills up part way through does. Every later call of that kind fails too (a disk that
    failed once is not trusted again).

What it may not touch
    The meaning of the bytes, records, Raft.
"""

from __future__ import annotations

import errno as errno_mod
import os
from dataclasses import dataclass

__all__ = ["DiskFault", "FaultyFileIO", "FileIO", "REAL"]


class FileIO:
    """Mutating file operations, straight to the OS."""

    def open(self, path: str, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags, mode)

    def pwrite(self, fd: int, data: memoryview | bytes, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, length: int) -> None:
        os.ftruncate(fd, length)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self.fsync(fd)
        finally:
            os.close(fd)


REAL = FileIO()

_KINDS = ("write", "fsync")


@dataclass(frozen=True)
class DiskFault:
    """The `nth` call of `kind` ("write" or "fsync") fails with `errno`."""

    kind: str
    nth: int
    errno: int

    @classmethod
    def parse(cls, text: str) -> "DiskFault":
        """"fsync:3:EIO", "write:10:ENOSPC" (errno by name or number)."""
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in _KINDS:
            raise ValueError(f"disk fault {text!r}: expected KIND:N:ERRNO with KIND write or fsync")
        kind, nth_s, err_s = parts
        try:
            nth = int(nth_s)
        except ValueError:
            raise ValueError(f"disk fault {text!r}: N must be an integer") from None
        if nth < 1:
            raise ValueError(f"disk fault {text!r}: N counts from 1")
        if err_s.isdigit():
            err = int(err_s)
        else:
            err = getattr(errno_mod, err_s.upper(), None)
            if not isinstance(err, int):
                raise ValueError(f"disk fault {text!r}: unknown errno {err_s!r}")
        return cls(kind, nth, err)


class FaultyFileIO(FileIO):
    """FileIO whose planned call fails (see the module docstring); counts every call by kind."""

    def __init__(self, *faults: DiskFault) -> None:
        self.faults = {f.kind: f for f in faults}
        self.calls = {k: 0 for k in _KINDS}
        self.failed = {k: 0 for k in _KINDS}  # calls that raised

    def _due(self, kind: str) -> DiskFault | None:
        self.calls[kind] += 1
        f = self.faults.get(kind)
        if f is not None and self.calls[kind] >= f.nth:
            self.failed[kind] += 1
            return f
        return None

    def pwrite(self, fd: int, data: memoryview | bytes, offset: int) -> int:
        f = self._due("write")
        if f is not None:
            half = len(data) // 2
            if half:
                os.pwrite(fd, memoryview(data)[:half], offset)
            raise OSError(f.errno, os.strerror(f.errno) + " (injected)")
        return super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        self._sync(fd, os.fdatasync)

    def fsync(self, fd: int) -> None:
        self._sync(fd, os.fsync)

    def _sync(self, fd: int, real) -> None:  # type: ignore[no-untyped-def]
        f = self._due("fsync")
        if f is not None:
            raise OSError(f.errno, os.strerror(f.errno) + " (injected)")
        real(fd)
