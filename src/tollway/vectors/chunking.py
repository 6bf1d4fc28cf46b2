"""How ``VectorStore.add`` cuts texts into chunks before embedding them.

The default: chunks of at most 3,200 characters (about 800 tokens of English at ~4
characters a token) with 400 characters of overlap, cut on the largest boundary that
fits: paragraphs (a blank line), then lines, then sentences (``. ! ?`` followed by
space), then spaces, and only as a last resort inside a word. Overrides: ``chunking:
{size, overlap}`` of a store in tollway.yaml, or ``chunking=Chunker(...)`` /
``chunking={"size": ..., "overlap": ...}`` / ``chunking=False`` (one chunk per text) on
one ``add``. Managed backends chunk on their side and ignore this.

Pure functions over strings: no tokenizer, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_SIZE", "Chunker", "chunk_text"]

DEFAULT_SIZE = 3200
DEFAULT_OVERLAP = 400

_SEPARATORS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\n[ \t]*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?])\s+"),
    re.compile(r"\s+"),
)


@dataclass(slots=True, frozen=True)
class Chunker:
    """``size``: most characters in a chunk; ``overlap``: characters of the previous
    chunk's end repeated at the start of the next (on a word boundary when there is
    one), so a sentence cut at a boundary is still found whole."""

    size: int = DEFAULT_SIZE
    overlap: int = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ValueError(f"chunk size must be at least 16 characters, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(
                f"chunk overlap must be in [0, size): got {self.overlap} for size {self.size}")

    def split(self, text: str) -> list[str]:
        return chunk_text(text, self.size, self.overlap)


def chunk_text(text: str, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[str]:
    """Cut ``text`` into chunks of at most ``size`` characters (see the module doc).
    Whitespace-only text gives no chunk; text that fits is one chunk, stripped."""
    text = text.strip()
    if not text:
        return []
    if len(text) <= size:
        return [text]
    pieces = _pieces(text, size, 0)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > size:
            chunks.append(current.strip())
            current = _tail(current, overlap)
            if len(current) + len(piece) > size:
                current = ""
        current += piece
    if current.strip():
        chunks.append(current.strip())
    return [c for c in chunks if c]


def _pieces(text: str, size: int, level: int) -> list[str]:
    """``text`` as consecutive pieces each at most ``size`` long, keeping every
    separator attached to the piece before it (joining the pieces gives ``text``)."""
    if len(text) <= size:
        return [text]
    if level == len(_SEPARATORS):
        return [text[i:i + size] for i in range(0, len(text), size)]
    out: list[str] = []
    start = 0
    for match in _SEPARATORS[level].finditer(text):
        if match.end() > start:
            out.append(text[start:match.end()])
            start = match.end()
    out.append(text[start:])
    result: list[str] = []
    for piece in out:
        if not piece:
            continue
        result.extend(_pieces(piece, size, level + 1) if len(piece) > size else [piece])
    return result


def _tail(text: str, overlap: int) -> str:
    """The last ``overlap`` characters of ``text``, started at a word boundary."""
    if overlap <= 0:
        return ""
    tail = text[-overlap:]
    space = re.search(r"\s", tail)
    if space is not None and space.end() < len(tail):
        tail = tail[space.end():]
    return tail
