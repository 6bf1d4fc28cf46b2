"""The SSE decoder against the shapes providers actually send."""

from __future__ import annotations

from tollway.core.sse import SSEDecoder


def _decode(*chunks: bytes) -> list[tuple[str | None, str]]:
    decoder = SSEDecoder()
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.flush()
    return [(e.event, e.data) for e in events]


def test_lf_separated_data_events_decode_in_order() -> None:
    assert _decode(b"data: a\n\ndata: b\n\n") == [(None, "a"), (None, "b")]


def test_crlf_separators_as_gemini_sends_them() -> None:
    assert _decode(b"data: {\"x\":1}\r\n\r\ndata: {\"x\":2}\r\n\r\n") == [
        (None, '{"x":1}'),
        (None, '{"x":2}'),
    ]


def test_crlf_split_between_chunks_does_not_create_an_empty_event() -> None:
    assert _decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == [(None, "a"), (None, "b")]


def test_event_name_and_multiline_data_and_comments() -> None:
    raw = b": ping\nevent: message_start\ndata: line1\ndata: line2\nid: 7\n\n"
    decoder = SSEDecoder()
    (event,) = decoder.feed(raw)
    assert (event.event, event.data, event.id) == ("message_start", "line1\nline2", "7")


def test_field_without_space_after_colon() -> None:
    assert _decode(b"data:compact\n\n") == [(None, "compact")]


def test_event_split_mid_line_across_many_chunks() -> None:
    payload = b'data: {"choices":[{"delta":{"content":"hello"}}]}\n\n'
    chunks = [payload[i : i + 3] for i in range(0, len(payload), 3)]
    assert _decode(*chunks) == [(None, '{"choices":[{"delta":{"content":"hello"}}]}')]


def test_final_event_without_blank_line_is_flushed_at_end_of_stream() -> None:
    assert _decode(b"data: [DONE]") == [(None, "[DONE]")]


def test_utf8_split_inside_a_multibyte_character_is_kept_intact() -> None:
    text = "data: héllo\n\n".encode()
    cut = text.index(b"\xc3") + 1
    assert _decode(text[:cut], text[cut:]) == [(None, "héllo")]
