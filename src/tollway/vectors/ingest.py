"""From ``add(texts, files=, metadata=)`` arguments to chunks: pure functions, no I/O
beyond reading the named files.

Chunk ids: ``<document id>#<n>``. A document's id is the caller's (``ids=``), the file
name for files (so adding a file again replaces its chunks), else a random one.
Every chunk's metadata is the caller's plus ``source`` and ``chunk_index``.
"""

from __future__ import annotations

import mimetypes
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tollway.vectors.backend import DocumentInput
from tollway.vectors.chunking import Chunker
from tollway.vectors.errors import VectorStoreError
from tollway.vectors.types import Chunk, Metadata

__all__ = ["Document", "chunker_of", "documents_of", "split_documents"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
RESERVED = ("source", "chunk_index")


@dataclass(slots=True, frozen=True)
class Document:
    """One text or file before chunking."""

    id: str
    source: str
    data: bytes | None
    text: str | None
    metadata: Metadata
    media_type: str = "text/plain"
    from_file: bool = False

    def as_input(self) -> DocumentInput:
        data = self.data if self.data is not None else (self.text or "").encode("utf-8")
        return DocumentInput(self.source, data, dict(self.metadata), self.media_type)

    def decoded(self, store: str | None) -> str:
        if self.text is not None:
            return self.text
        try:
            return (self.data or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise VectorStoreError(
                f"{self.source} is not UTF-8 text ({self.media_type}): this backend embeds "
                "text tollway chunks; extract the text first, or use a managed backend "
                "(openai, llama_stack) that parses files", store=store) from None


def documents_of(texts: str | Sequence[str] | None, files: Sequence[Any] | None,
                 metadata: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
                 ids: Sequence[str] | None, store: str | None) -> list[Document]:
    """Check and gather the inputs of one ``add``."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts or [])
    files = list(files or [])
    if not texts and not files:
        raise VectorStoreError("add needs texts or files=", store=store)
    count = len(texts) + len(files)
    metas = _metadata_list(metadata, count, store)
    if ids is not None and len(ids) != count:
        raise VectorStoreError(f"ids= has {len(ids)} ids for {count} documents", store=store)
    docs: list[Document] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise VectorStoreError(f"texts[{i}] is a {type(text).__name__}, not a str",
                                   store=store)
        doc_id = ids[i] if ids is not None else uuid.uuid4().hex
        docs.append(Document(doc_id, f"text:{doc_id}", None, text, metas[i]))
    for j, item in enumerate(files):
        name, data = _file(item, store)
        doc_id = ids[len(texts) + j] if ids is not None else name
        kind = mimetypes.guess_type(name)[0] or "text/plain"
        docs.append(Document(doc_id, name, data, None, metas[len(texts) + j], kind, True))
    return docs


def _file(item: Any, store: str | None) -> tuple[str, bytes]:
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        try:
            return path.name, path.read_bytes()
        except OSError as exc:
            raise VectorStoreError(f"cannot read {path}: {exc.strerror}", store=store) from None
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        data = item[1].encode("utf-8") if isinstance(item[1], str) else item[1]
        if isinstance(data, bytes | bytearray):
            return item[0], bytes(data)
    raise VectorStoreError(
        f"a file is a path or a (name, bytes | str) pair, got {type(item).__name__}",
        store=store)


def _metadata_list(metadata: Any, count: int, store: str | None) -> list[Metadata]:
    if metadata is None:
        return [{} for _ in range(count)]
    if isinstance(metadata, Mapping):
        checked = _check_metadata(metadata, store)
        return [dict(checked) for _ in range(count)]
    if isinstance(metadata, Sequence) and not isinstance(metadata, str | bytes):
        if len(metadata) != count:
            raise VectorStoreError(
                f"metadata= has {len(metadata)} entries for {count} documents (give one "
                "mapping for all, or one per document)", store=store)
        return [_check_metadata(m, store) for m in metadata]
    raise VectorStoreError("metadata= is a mapping or a list of mappings", store=store)


def _check_metadata(meta: Any, store: str | None) -> Metadata:
    if not isinstance(meta, Mapping):
        raise VectorStoreError(f"metadata must be a mapping, got {type(meta).__name__}",
                               store=store)
    out: Metadata = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise VectorStoreError(
                f"metadata key {key!r}: letters, digits, '_', '.', '-' (at most 128)",
                store=store)
        if key in RESERVED:
            raise VectorStoreError(f"metadata key {key!r} is set by tollway", store=store)
        if value is None or not isinstance(value, str | int | float | bool):
            raise VectorStoreError(
                f"metadata {key!r}: values are str, int, float or bool (every backend can "
                f"store and filter those), got {type(value).__name__}", store=store)
        out[key] = value
    return out


def chunker_of(value: Any, default: Chunker) -> Chunker | None:
    """A per-call ``chunking=`` override: None (the store's), False (no chunking), a
    Chunker or a mapping ``{size, overlap}``."""
    if value is None:
        return default
    if value is False:
        return None
    if isinstance(value, Chunker):
        return value
    if isinstance(value, Mapping):
        return Chunker(int(value.get("size", default.size)),
                       int(value.get("overlap", min(default.overlap,
                                                    int(value.get("size", default.size)) - 1))))
    raise TypeError("chunking= is None, False, a Chunker or {'size': ..., 'overlap': ...}")


def split_documents(docs: list[Document], chunker: Chunker | None,
                    store: str | None) -> list[Chunk]:
    chunks: list[Chunk] = []
    for doc in docs:
        text = doc.decoded(store)
        pieces = chunker.split(text) if chunker is not None else ([text.strip()]
                                                                  if text.strip() else [])
        for n, piece in enumerate(pieces):
            chunks.append(Chunk(f"{doc.id}#{n}", piece,
                                {**doc.metadata, "source": doc.source, "chunk_index": n},
                                doc.source))
    return chunks
