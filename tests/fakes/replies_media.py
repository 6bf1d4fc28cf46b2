"""Embeddings and image replies for the loopback fake server, in each provider's wire
shape (OpenAI ``/embeddings`` and ``/images/*``, Gemini ``embedContent`` /
``batchEmbedContents`` / image ``generateContent``, Vertex and Imagen ``:predict``).

Written by hand from the recorded traffic in ``../shared/corpus`` (A and C) and the
providers' documented shapes, not by tollway's code.

Vectors are hashed bags of words (:func:`hashed_vector`): texts sharing words are close
in cosine similarity, so a retriever over the fake gives meaningful answers (the right
document for a query) rather than random ones.

:class:`MediaResponder` is a ``fake.default`` that answers any embeddings or image
request in the dialect its path names, computing the vectors from the request's texts;
queue an :func:`tests.fakes.replies_openai.error_reply` /
:func:`tests.fakes.replies_gemini.error_reply` or a bad-JSON :class:`Reply` before it to
inject a fault.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.server import Received, Reply

EMBED_MODEL = "text-embedding-3-small"
DIMENSIONS = 256
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(["a", "an", "and", "are", "did", "do", "does", "is", "it", "of", "on", "or", "the", "to", "was", "what", "where", "which", "who"])


def hashed_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """A unit vector: each lower-cased word (stop words aside) adds 1 at a hash-chosen
    coordinate; a crude stem (a trailing ``s``) lets "cats" meet "cat"."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        word = word[:-1] if len(word) > 3 and word.endswith("s") else word
        slot = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "little") % dimensions
        vector[slot] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def float32_base64(vector: list[float]) -> str:
    """What ``encoding_format: base64`` sends: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def tokens_of(text: str) -> int:
    """A stand-in token count (words + 1), reported as the provider's usage."""
    return len(_WORD.findall(text)) + 1


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real (tiny) PNG, built with zlib: tests can check the bytes round-trip."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- OpenAI


def openai_embeddings_reply(
    texts: list[str], *, dimensions: int = DIMENSIONS, encoding: str = "float",
    model: str = EMBED_MODEL, reverse: bool = False, usage: bool = True,
) -> Reply:
    """``/embeddings`` answer; ``reverse`` lists the data in reverse index order (the
    client must order by ``index``); ``usage=False`` omits usage (some compatible
    servers do)."""
    data = []
    for index, text in enumerate(texts):
        vector = hashed_vector(text, dimensions)
        embedding: Any = float32_base64(vector) if encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    if reverse:
        data.reverse()
    body: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if usage:
        tokens = sum(tokens_of(t) for t in texts)
        body["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Reply(200, body, headers={"x-request-id": "req_" + hashlib.sha1(
        repr(texts).encode()).hexdigest()[:20]})


@dataclass
class ImageTokens:
    """gpt-image usage: text and image input tokens, image output tokens."""

    text_in: int = 18
    image_in: int = 0
    image_out: int = 1056


def openai_image_reply(
    n: int = 1, *, b64: bool = True, tokens: ImageTokens | None = None,
    size: str | None = "1024x1024", quality: str | None = "medium",
    revised_prompt: str | None = None, output_format: str = "png",
) -> Reply:
    """``/images/generations`` or ``/images/edits`` answer. gpt-image shape by default
    (``b64_json`` + ``usage``); ``b64=False, tokens=None`` gives the dall-e shape (a URL,
    no usage), as recorded."""
    image = png()
    data = []
    for i in range(n):
        item: dict[str, Any] = (
            {"b64_json": base64.b64encode(image).decode("ascii")} if b64
            else {"url": f"https://oaidalleapiprodscus.blob.core.windows.net/private/img-{i}.png"
                          "?sig=REDACTED"}
        )
        if revised_prompt is not None:
            item["revised_prompt"] = revised_prompt
        data.append(item)
    body: dict[str, Any] = {"created": 1_774_963_099, "data": data}
    if tokens is not None:
        body.update({"background": "opaque", "output_format": output_format,
                     "quality": quality, "size": size})
        body["usage"] = {
            "input_tokens": tokens.text_in + tokens.image_in,
            "input_tokens_details": {"text_tokens": tokens.text_in,
                                     "image_tokens": tokens.image_in},
            "output_tokens": n * tokens.image_out,
            "total_tokens": tokens.text_in + tokens.image_in + n * tokens.image_out,
        }
    return Reply(200, body)


# --------------------------------------------------------------------------- Google


def gemini_embed_reply(texts: list[str], *, dimensions: int = DIMENSIONS,
                       batch: bool | None = None) -> Reply:
    """``embedContent`` (one text) or ``batchEmbedContents`` answer (no usage: Gemini
    reports none, as recorded)."""
    vectors = [{"values": hashed_vector(t, dimensions)} for t in texts]
    if batch is None:
        batch = len(texts) > 1
    return Reply(200, {"embeddings": vectors} if batch else {"embedding": vectors[0]})


def vertex_embed_reply(texts: list[str], *, dimensions: int = DIMENSIONS) -> Reply:
    """Vertex ``:predict`` embeddings answer, a token count per prediction."""
    predictions = [
        {"embeddings": {"values": hashed_vector(t, dimensions),
                        "statistics": {"truncated": False, "token_count": tokens_of(t)}}}
        for t in texts
    ]
    chars = sum(len(t) for t in texts)
    return Reply(200, {"predictions": predictions, "metadata": {"billableCharacterCount": chars}})


def gemini_image_reply(*, text: str = "Here is your image.", prompt_tokens: int = 12,
                       image_tokens: int = 1290, model: str = "gemini-2.5-flash-image") -> Reply:
    """Image output through ``generateContent``: a text part and an ``inlineData`` part,
    usage with the IMAGE modality in ``candidatesTokensDetails``."""
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"text": text})
    parts.append({"inlineData": {"mimeType": "image/png",
                                 "data": base64.b64encode(png()).decode("ascii")}})
    text_tokens = tokens_of(text) if text else 0
    return Reply(200, {
        "candidates": [{"content": {"parts": parts, "role": "model"}, "finishReason": "STOP",
                        "index": 0}],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": image_tokens + text_tokens,
            "totalTokenCount": prompt_tokens + image_tokens + text_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
            "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": image_tokens}]
            + ([{"modality": "TEXT", "tokenCount": text_tokens}] if text_tokens else []),
        },
        "modelVersion": model,
        "responseId": hashlib.sha1(text.encode()).hexdigest()[:23],
    })


def imagen_reply(n: int = 1) -> Reply:
    """Imagen ``:predict`` answer: base64 PNGs, no usage (priced per image)."""
    image = base64.b64encode(png()).decode("ascii")
    return Reply(200, {"predictions": [
        {"bytesBase64Encoded": image, "mimeType": "image/png"} for _ in range(n)
    ]})


# --------------------------------------------------------------------------- responder


@dataclass
class MediaResponder:
    """``fake.default = MediaResponder()``: answers embeddings and image requests in the
    dialect the path names, from the request itself (its texts, its ``n``, its
    ``dimensions``). ``image_tokens`` shapes gpt-image usage; ``seen`` counts answers."""

    image_tokens: ImageTokens = field(default_factory=ImageTokens)
    seen: int = 0

    def __call__(self, received: Received) -> Reply:
        self.seen += 1
        path = received.path.split("?", 1)[0]
        if path.endswith("/images/edits"):
            n = int(_form_field(received.body, "n") or 1)
            return openai_image_reply(n, tokens=ImageTokens(
                self.image_tokens.text_in, 388, self.image_tokens.image_out))
        body = received.json or {}
        if path.endswith("/embeddings"):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            return openai_embeddings_reply(
                texts, dimensions=body.get("dimensions", DIMENSIONS),
                encoding=body.get("encoding_format", "float"), model=body["model"],
            )
        if path.endswith("/images/generations"):
            model = body.get("model", "")
            if model.startswith("dall-e"):
                return openai_image_reply(body.get("n", 1), b64=False, tokens=None)
            return openai_image_reply(body.get("n", 1), tokens=self.image_tokens,
                                      size=body.get("size", "1024x1024"),
                                      quality=body.get("quality", "medium"))
        if path.endswith(":embedContent"):
            text = body["content"]["parts"][0]["text"]
            return gemini_embed_reply([text], dimensions=body.get("outputDimensionality",
                                                                  DIMENSIONS), batch=False)
        if path.endswith(":batchEmbedContents"):
            texts = [r["content"]["parts"][0]["text"] for r in body["requests"]]
            dims = body["requests"][0].get("outputDimensionality", DIMENSIONS)
            return gemini_embed_reply(texts, dimensions=dims, batch=True)
        if path.endswith(":predict"):
            instances = body.get("instances", [])
            if instances and "content" in instances[0]:
                dims = (body.get("parameters") or {}).get("outputDimensionality", DIMENSIONS)
                return vertex_embed_reply([i["content"] for i in instances], dimensions=dims)
            return imagen_reply((body.get("parameters") or {}).get("sampleCount", 1))
        if path.endswith(":generateContent"):
            return gemini_image_reply()
        return Reply(404, {"error": {"message": f"fake media responder: no route {path}"}})


def _form_field(body: bytes, name: str) -> str | None:
    """A text field of a multipart body (enough for the fake to read ``n``)."""
    marker = f'name="{name}"\r\n\r\n'.encode()
    start = body.find(marker)
    if start < 0:
        return None
    start += len(marker)
    return body[start:body.find(b"\r\n", start)].decode()
