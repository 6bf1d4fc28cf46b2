"""Sans-I/O server-sent-events decoder (the WHATWG event-stream format).

Feed it bytes as they arrive; it returns complete events. Handles CRLF / CR / LF line
ends (Gemini uses CRLF), multi-line ``data:``, ``event:`` and ``id:`` fields, comment
lines (``: ping``) and a field with no space after the colon.
"""

from __future__ import annotations

import codecs

from tollway.core.dialects.base import SSEEvent

_utf8 = codecs.getincrementaldecoder("utf-8")


class SSEDecoder:
    __slots__ = ("_buffer", "_data", "_event", "_id", "_pending_cr", "_utf8")

    def __init__(self) -> None:
        self._utf8 = _utf8(errors="replace")
        self._buffer = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._pending_cr = False

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        text = self._utf8.decode(chunk) if isinstance(chunk, bytes) else chunk
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = text.endswith("\r")
        buffer = self._buffer + text
        if "\r" in buffer:
            buffer = buffer.replace("\r\n", "\n").replace("\r", "\n")
        events: list[SSEEvent] = []
        start = 0
        while True:
            end = buffer.find("\n", start)
            if end < 0:
                break
            self._line(buffer[start:end], events)
            start = end + 1
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line still counts."""
        events: list[SSEEvent] = []
        self._buffer += self._utf8.decode(b"", final=True)
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = ""
        self._line("", events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data or self._event is not None:
                events.append(SSEEvent("\n".join(self._data), self._event, self._id))
            self._data = []
            self._event = None
            return
        if line[0] == ":":
            return
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        # "retry" and unknown fields are ignored, as the spec says.
