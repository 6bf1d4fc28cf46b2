"""Embeddings and images for the framework adapter tests, in OpenAI's wire shape.

The embeddings the fake provider answers with are not random: :func:`text_vector` is a
bag of hashed words (stop words dropped, normalised), so texts that share words are
close and texts that share none are orthogonal. A retriever over them really retrieves:
"capital of Norway" finds the Oslo document and not the Paris one, and a test can tell
a retriever that embedded the wrong text (or nothing) from one that works.

:class:`MediaScript` answers ``/embeddings`` from the request itself (any number, any
order) and plays scripted chat and image replies in order for every other path, so a
framework that embeds at times of its own choosing (CrewAI embeds crew knowledge when
the crew is built) cannot shift the chat script.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import zlib
from collections import deque
from typing import Any

from tests.fakes.server import FakeProvider, Received, Reply

EMBED_TARGET = "openai/text-embedding-3-small"
IMAGE_TARGET = "openai/gpt-image-1"
DIMENSIONS = 64
_STOP = frozenset({
    "a", "an", "and", "are", "at", "be", "by", "for", "from", "how", "in", "is", "it", "of",
    "on", "or", "the", "to", "what", "which", "who",
})


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]


def text_vector(text: str, dims: int = DIMENSIONS) -> list[float]:
    """A unit vector: each kept word adds 1 to the bucket its hash picks."""
    vector = [0.0] * dims
    for word in words(text):
        vector[int(hashlib.sha1(word.encode()).hexdigest(), 16) % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def token_count(texts: list[str]) -> int:
    """What the fake reports as ``prompt_tokens``: one per word, stop words included."""
    return sum(len(re.findall(r"\w+", t)) for t in texts)


def embeddings_reply(texts: list[str], *, model: str = "text-embedding-3-small") -> Reply:
    """OpenAI's ``/embeddings`` answer for ``texts``, vectors from :func:`text_vector`."""
    tokens = token_count(texts)
    return Reply(200, {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": text_vector(t)}
                 for i, t in enumerate(texts)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


def tiny_png(rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid 2x2 PNG (real bytes an image library opens)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    row = b"\x00" + bytes(rgb) * 2
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * 2)) + chunk(b"IEND", b""))


IMAGE_USAGE = {"input_tokens": 17, "output_tokens": 272, "text_tokens": 17}


def image_reply(data: bytes | None = None, *, revised_prompt: str | None = None) -> Reply:
    """OpenAI's ``/images/generations`` answer from gpt-image-1: base64 bytes and token
    usage (text input tokens, image output tokens)."""
    item: dict[str, Any] = {"b64_json": base64.b64encode(data or tiny_png()).decode()}
    if revised_prompt:
        item["revised_prompt"] = revised_prompt
    u = IMAGE_USAGE
    return Reply(200, {
        "created": 1_764_000_000,
        "data": [item],
        "background": "opaque", "output_format": "png", "quality": "low", "size": "1024x1024",
        "usage": {
            "input_tokens": u["input_tokens"],
            "input_tokens_details": {"text_tokens": u["text_tokens"], "image_tokens": 0},
            "output_tokens": u["output_tokens"],
            "total_tokens": u["input_tokens"] + u["output_tokens"],
        },
    })


class MediaScript:
    """``fake.default``: ``/embeddings`` answered from the request, everything else from
    the scripted replies in order (599 when they run out, like the bare fake)."""

    def __init__(self, fake: FakeProvider) -> None:
        self.replies: deque[Reply] = deque()
        self.embedded: list[list[str]] = []
        fake.default = self
        self.fake = fake

    def add(self, *replies: Reply) -> MediaScript:
        self.replies.extend(replies)
        return self

    def __call__(self, received: Received) -> Reply:
        if received.path.endswith("/embeddings"):
            texts = received.json["input"]
            texts = [texts] if isinstance(texts, str) else texts
            self.embedded.append(texts)
            return embeddings_reply(texts)
        if self.replies:
            return self.replies.popleft()
        return Reply(599, {"error": {"message": "fake provider: no scripted reply"}})

    def paths(self) -> list[str]:
        return [r.path for r in self.fake.requests]
