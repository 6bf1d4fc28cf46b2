"""OpenAI-compatible ``/v1/files``: documents a key uploads to put into vector stores.

    POST   /v1/files               multipart/form-data: ``file``, ``purpose``
    GET    /v1/files               the key's files (``purpose``, ``limit``, ``after``)
    GET    /v1/files/{id}          one
    GET    /v1/files/{id}/content  its bytes
    DELETE /v1/files/{id}          gone, and its chunks removed from every vector store
                                   it was put into, as OpenAI's does (the handler is
                                   :func:`tollway.gateway.vector_files.delete_file`)

Files live in a directory the gateway owns (``gateway.files_dir``, default
``<ledger>.files/`` next to the ledger): ``<id>`` holds the bytes, ``<id>.json`` the
metadata (name, purpose, size, owner, and what the file was ingested into). Ids are
random (``file-`` + 24 hex digits) and are the only thing a path is built from: a
client's file name is metadata, never a path. Size is bounded by the gateway's body
limit (``gateway.max_body_bytes``: larger uploads get 413). A file belongs to the key
that uploaded it: to any other key it does not exist (404). Every worker of one
machine sees the same directory; several machines need it on a shared volume.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tollway.core.errors import BadRequestError
from tollway.gateway.errors import GatewayError
from tollway.gateway.http import HttpRequest, JSONReply, dumps

if TYPE_CHECKING:
    from tollway.gateway.keys import VirtualKey
    from tollway.gateway.runtime import Gateway

__all__ = ["FileRecord", "FileStore", "create_file", "file_content", "get_file", "list_files",
           "not_found", "owned_file"]

PURPOSES = ("assistants", "user_data", "batch", "fine-tune", "vision", "evals")
_ID = re.compile(r"^file-[0-9a-f]{24}$")
_BATCH_ID = re.compile(r"^vsfb_[0-9a-f]{24}$")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(slots=True)
class FileRecord:
    """A stored file's metadata; ``attachments``: store name -> its vector-store file
    state (status, attributes, last_error, created_at, usage_bytes)."""

    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    owner: str | None
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": self.bytes,
                "created_at": self.created_at, "filename": self.filename,
                "purpose": self.purpose, "status": "processed", "status_details": None,
                "expires_at": None}

    @property
    def source(self) -> str:
        """The document name it is ingested under: unique (the id first), the client's
        name after it so a managed backend still sees the extension."""
        return f"{self.id}-{self.filename}"


def clean_filename(name: str | None) -> str:
    """The client's file name as metadata: its last path part, without control
    characters, at most 200 characters (``upload`` when nothing is left)."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = _UNSAFE.sub("", base).strip().lstrip(".")
    return base[:200] or "upload"


class FileStore:
    """Files on disk under ``root`` (created on first write). Blocking I/O of small
    files, run in a worker thread by the handlers."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _paths(self, file_id: str) -> tuple[Path, Path]:
        if not _ID.match(file_id):  # also what keeps every path inside root
            raise KeyError(file_id)
        return self.root / file_id, self.root / f"{file_id}.json"

    def put(self, filename: str, purpose: str, data: bytes, owner: str | None) -> FileRecord:
        self.root.mkdir(parents=True, exist_ok=True)
        record = FileRecord(f"file-{secrets.token_hex(12)}", filename, purpose, len(data),
                            int(time.time()), owner)
        _write(self._paths(record.id)[0], data)
        self.save(record)
        return record

    def save(self, record: FileRecord) -> None:
        _write(self._paths(record.id)[1], json.dumps(asdict(record)).encode())

    def update(self, file_id: str, owner: str | None,
               change: Callable[[FileRecord], None]) -> FileRecord | None:
        """Read, change and save a file's metadata under an exclusive lock, so workers
        attaching one file to two stores at once never lose each other's state (None:
        the file is gone)."""
        with self._locked(file_id):
            record = self.get(file_id, owner)
            if record is not None:
                change(record)
                self.save(record)
            return record

    @contextmanager
    def _locked(self, file_id: str) -> Iterator[None]:
        self._paths(file_id)  # checks the id
        try:
            import fcntl
        except ImportError:  # not POSIX: one worker per machine is safe without it
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{file_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get(self, file_id: str, owner: str | None) -> FileRecord | None:
        """The file if it exists and ``owner`` uploaded it, else None."""
        try:
            meta = self._paths(file_id)[1]
            record = FileRecord(**json.loads(meta.read_bytes()))
        except (KeyError, OSError, ValueError, TypeError):
            return None
        return record if record.owner == owner else None

    def content(self, record: FileRecord) -> bytes:
        return self._paths(record.id)[0].read_bytes()

    def delete(self, record: FileRecord) -> None:
        for path in (*self._paths(record.id), self.root / f".{record.id}.lock"):
            path.unlink(missing_ok=True)

    def put_batch(self, batch: dict[str, Any]) -> None:
        """Keep a vector-store file batch (``vsfb_`` id, its file ids and owner)."""
        if not _BATCH_ID.match(batch["id"]):
            raise KeyError(batch["id"])
        self.root.mkdir(parents=True, exist_ok=True)
        _write(self.root / f"{batch['id']}.json", json.dumps(batch).encode())

    def get_batch(self, batch_id: str, owner: str | None) -> dict[str, Any] | None:
        if not _BATCH_ID.match(batch_id):
            return None
        try:
            batch = json.loads((self.root / f"{batch_id}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return batch if isinstance(batch, dict) and batch.get("owner") == owner else None

    def owned_by(self, owner: str | None) -> list[FileRecord]:
        """``owner``'s files, newest first."""
        if not self.root.is_dir():
            return []
        out = []
        for meta in self.root.glob("file-*.json"):
            record = self.get(meta.name.removesuffix(".json"), owner)
            if record is not None:
                out.append(record)
        return sorted(out, key=lambda r: (r.created_at, r.id), reverse=True)


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all (another worker never reads half a file)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _owner(key: VirtualKey | None) -> str | None:
    return key.id if key is not None else None


def not_found(file_id: str) -> GatewayError:
    return GatewayError(404, f"No file found with id '{file_id}' (files belong to the key "
                             "that uploaded them: POST /v1/files)", code="file_not_found",
                        param="file_id")


async def owned_file(gw: Gateway, key: VirtualKey | None, file_id: str) -> FileRecord:
    record = await asyncio.to_thread(gw.files.get, file_id, _owner(key))
    if record is None:
        raise not_found(file_id)
    return record


# --------------------------------------------------------------------------- handlers


async def create_file(gw: Gateway, req: HttpRequest) -> JSONReply:
    from tollway.gateway.multipart import read_form

    form = read_form(req.body, req.headers.get("content-type", ""), what="the file and "
                     "its purpose")
    purpose = form.fields.get("purpose")
    if purpose not in PURPOSES:
        raise BadRequestError(f"'purpose' is one of {', '.join(PURPOSES)} (files for vector "
                              f"stores: assistants or user_data); got {purpose!r}")
    uploads = form.files.get("file") or []
    if len(uploads) != 1:
        raise BadRequestError("the form needs exactly one 'file' part (the document)")
    upload = uploads[0]
    record = await asyncio.to_thread(gw.files.put, clean_filename(upload.filename), purpose,
                                     upload.data, _owner(req.key))
    return JSONReply(200, dumps(record.to_openai()))


async def list_files(gw: Gateway, req: HttpRequest) -> JSONReply:
    query = {k: v[-1] for k, v in parse_qs(req.query).items()}
    try:
        limit = int(query.get("limit", 10000))
    except ValueError:
        raise BadRequestError("'limit' is a whole number from 1 to 10000") from None
    records = await asyncio.to_thread(gw.files.owned_by, _owner(req.key))
    if query.get("order") == "asc":
        records.reverse()
    if query.get("purpose"):
        records = [r for r in records if r.purpose == query["purpose"]]
    after = query.get("after")
    if after:
        ids = [r.id for r in records]
        records = records[ids.index(after) + 1:] if after in ids else []
    page = records[:max(1, min(limit, 10000))]
    data = [r.to_openai() for r in page]
    return JSONReply(200, dumps({"object": "list", "data": data,
                                 "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None,
                                 "has_more": len(records) > len(page)}))


async def get_file(gw: Gateway, req: HttpRequest) -> JSONReply:
    record = await owned_file(gw, req.key, req.params["id"])
    return JSONReply(200, dumps(record.to_openai()))


async def file_content(gw: Gateway, req: HttpRequest) -> JSONReply:
    record = await owned_file(gw, req.key, req.params["id"])
    try:
        data = await asyncio.to_thread(gw.files.content, record)
    except OSError:
        raise not_found(record.id) from None
    return JSONReply(200, data, content_type="application/octet-stream")
