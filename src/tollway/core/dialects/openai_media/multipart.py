"""``multipart/form-data`` bodies (RFC 7578), sans-I/O: what ``/images/edits`` takes.

Written here rather than borrowed from an HTTP library because the dialect must stay
free of I/O and of any client: it returns bytes and the content-type header.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FilePart", "encode_multipart"]


@dataclass(frozen=True, slots=True)
class FilePart:
    name: str
    filename: str
    data: bytes
    media_type: str


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


def encode_multipart(
    fields: Sequence[tuple[str, str]], files: Sequence[FilePart], boundary: str | None = None
) -> tuple[bytes, str]:
    """(body, content-type) for text ``fields`` and ``files``, in that order."""
    boundary = boundary or f"tollway-{secrets.token_hex(12)}"
    dash = f"--{boundary}\r\n".encode()
    chunks: list[bytes] = []
    for name, value in fields:
        chunks += [
            dash,
            f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode(),
            value.encode("utf-8"),
            b"\r\n",
        ]
    for part in files:
        chunks += [
            dash,
            (
                f'Content-Disposition: form-data; name="{_quote(part.name)}"; '
                f'filename="{_quote(part.filename)}"\r\n'
                f"Content-Type: {part.media_type}\r\n\r\n"
            ).encode(),
            part.data,
            b"\r\n",
        ]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
