"""A per-process append-only spool beside a SQLite file: one ``write()`` per operation
instead of one transaction.

Why: a SQLite write transaction costs 20-45 µs of CPU (the lock, the WAL frames, the
shared-memory index), and a call that reserves, settles and writes its ledger row in
transactions pays that two or three times. Appending a framed record to a file costs
~3 µs and is exactly as durable against a killed process as a WAL commit at
``synchronous=NORMAL``: once ``write()`` returns, the bytes are in the operating
system's page cache and a SIGKILL, an OOM kill or a crash cannot take them back (an
operating-system crash can, as it can the WAL's last commits). The records are applied
to the database in batches, one transaction for many calls.

Exactly once: how far each spool file has been applied is a row of the database
(``spool_offsets``), advanced in the same transaction that applies the records. Any
process may apply any spool's records (the owner's flusher, a reader that wants
current figures, the recoverer of a dead owner): whoever commits first moves the offset,
the others find nothing left.

Liveness: each owner holds an exclusive ``flock`` on its ``<owner>.lock`` file for its
whole life (the kernel drops it when the process dies, however it dies). The lock file
is locked under a temporary name and then renamed into place, so no other process can
ever see it unlocked while its owner lives. A spool whose owner's lock can be taken
belongs to a dead process: its records are applied, what it had set aside is given
back, and its files are removed.

Frames: ``<length u32><crc32 u32><marshal payload>``. ``marshal`` reads and writes the
plain tuples of str / int / float / None a record is made of ten times faster than
JSON, and loads nothing executable. A frame that is short or fails its checksum ends
the readable part of a file (a write interrupted by a full disk; the writer truncates
such a tail before it writes again).
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Frames", "OwnerLock", "SpoolFile", "read_frames", "spool_dir", "spools"]

_HEADER = struct.Struct("<II")
DONE = -1
"""The offset of a spool file that was applied to its end and retired: never read again
(its file may still exist for a moment; it is removed after the commit)."""


def spool_dir(database: Path) -> Path:
    """Where the spools of ``database`` live: beside it, as SQLite keeps ``-wal``."""
    return database.with_name(database.name + "-spool")


def frame(record: tuple[Any, ...]) -> bytes:
    payload = marshal.dumps(record, 4)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass(slots=True)
class Frames:
    """The complete records of a spool file from an offset on, and the offset after
    the last of them."""

    records: list[tuple[Any, ...]]
    end: int


def read_frames(path: Path, offset: int, *, limit: int = 1 << 30) -> Frames:
    """The whole frames of ``path`` from ``offset`` (at most ``limit`` bytes' worth);
    a missing file has none."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
    except FileNotFoundError:
        return Frames([], offset)
    records: list[tuple[Any, ...]] = []
    position = 0
    size = len(data)
    header = _HEADER.size
    while position + header <= size:
        length, crc = _HEADER.unpack_from(data, position)
        start = position + header
        end = start + length
        if end > size:
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        record = marshal.loads(payload)
        if not isinstance(record, tuple) or not record:
            break
        records.append(record)
        position = end
    return Frames(records, offset + position)


class OwnerLock:
    """This process's claim on its spool files: an exclusive ``flock`` held while it
    lives. ``owner`` names the files; ``alive(owner)`` asks about another's."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.owner = f"{os.getpid()}-{secrets.token_hex(6)}"
        temporary = directory / f".{self.owner}.lock.new"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temporary, directory / f"{self.owner}.lock")
        self.fd = fd

    def release(self, *, remove: bool) -> None:
        if self.fd < 0:
            return
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.directory / f"{self.owner}.lock")
        os.close(self.fd)
        self.fd = -1

    def forget(self) -> None:
        """In a forked child: close the inherited descriptor (the lock stays the
        parent's) without touching the file."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1


@contextlib.contextmanager
def claim_if_dead(directory: Path, owner: str) -> Iterator[bool]:
    """Yields True, holding the dead owner's lock, when ``owner`` no longer lives (or
    left no lock file); False while it lives. Removes the lock file on a True exit."""
    path = directory / f"{owner}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


def spools(directory: Path) -> list[tuple[str, Path]]:
    """(owner, file) of every spool file in ``directory``, oldest generation first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        if name.endswith(".spool"):
            owner, _, generation = name[: -len(".spool")].rpartition(".")
            if owner and generation.isdigit():
                found.append((owner, int(generation), directory / name))
    found.sort()
    return [(owner, path) for owner, _, path in found]


class SpoolFile:
    """One generation of an owner's spool, open for appending."""

    __slots__ = ("fd", "name", "path", "size")

    def __init__(self, directory: Path, owner: str, generation: int) -> None:
        self.name = f"{owner}.{generation}.spool"
        self.path = directory / self.name
        self.fd = os.open(
            self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self.size = os.fstat(self.fd).st_size

    def append(self, data: bytes) -> None:
        """One ``write()``; a short one (a full disk) is cut off again and raised, so
        the file never holds a torn frame before a whole one."""
        try:
            written = os.write(self.fd, data)
        except OSError:
            self._cut()
            raise
        if written != len(data):
            self._cut()
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        self.size += written

    def _cut(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, self.size)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1
