"""The hot path's JSON: orjson when installed, the standard library else, and the
standard library's results and errors wherever the two differ."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from tollway.core import json_codec


class Color(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@pytest.fixture(params=["orjson", "stdlib"])
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test runs on both paths: orjson (installed in the dev environment) and the
    standard library alone (as without orjson)."""
    pytest.importorskip("orjson")
    saved = json_codec._fast
    if request.param == "stdlib":
        json_codec._fast = False
    else:
        json_codec._fast = None  # found again on first use
    try:
        yield request.param
    finally:
        json_codec._fast = saved


COMPLETION = (
    '{"id":"chatcmpl-1","object":"chat.completion","created":1754432618,"model":"gpt-4o",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"Grüße, 世界 🚦",'
    '"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},'
    '"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":25,'
    '"completion_tokens":6,"total_tokens":31,"prompt_tokens_details":{"cached_tokens":0}},'
    '"service_tier":"default","x":[1.5,-0.0,1e-07,true,false]}'
)


def test_reads_what_the_standard_library_reads(codec: str) -> None:
    expected = json.loads(COMPLETION)
    assert json_codec.loads(COMPLETION) == expected
    assert json_codec.loads(COMPLETION.encode()) == expected
    texts: list[str | bytes] = ["NaN", "[Infinity, -Infinity]", "1e400", '"\\ud800"',
                                b'\xef\xbb\xbf{"a": 1}', ' {"a" : [1, 2]} ']
    for text in texts:
        got, want = json_codec.loads(text), json.loads(text)
        assert repr(got) == repr(want), text  # repr: nan == nan is False


@pytest.mark.parametrize("text", ["", "{", '{"a": 1,}', "[1, 2", "nul", '{"a": "\x01"}'])
def test_bad_json_fails_exactly_as_the_standard_library_fails(codec: str, text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as want:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        json_codec.loads(text)
    assert (got.value.msg, got.value.pos) == (want.value.msg, want.value.pos)


def test_bytes_that_are_not_utf8_fail_as_the_standard_library_fails(codec: str) -> None:
    with pytest.raises(UnicodeDecodeError):
        json.loads(b'{"a": "\xff"}')
    with pytest.raises(UnicodeDecodeError):
        json_codec.loads(b'{"a": "\xff"}')


def test_writes_compact_utf8_that_reads_back_the_same(codec: str) -> None:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Grüße, 世界 🚦 \"quoted\"\n"}],
        "temperature": 0.2, "n": 1, "stream": False, "stop": None, "tuple": (1, 2),
    }
    data = json_codec.dumps(body)
    assert isinstance(data, bytes)
    assert b" " not in data.replace(b"Gr\xc3\xbc\xc3\x9fe, ", b"").split(b'"content"')[0]
    assert "世界".encode() in data  # not \u-escaped
    assert json.loads(data) == {**body, "tuple": [1, 2]}


def test_values_orjson_leaves_alone_are_written_by_the_standard_library(codec: str) -> None:
    value = {"big": 2**70, "color": Color.RED, "level": Level.HIGH, 7: "int key",
             None: "none key"}
    assert json.loads(json_codec.dumps(value)) == json.loads(
        json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def test_what_no_json_can_hold_is_a_type_error(codec: str) -> None:
    with pytest.raises(TypeError):
        json_codec.dumps({"x": object()})
    with pytest.raises(TypeError):
        json_codec.dumps({"x": {1, 2}})


def test_not_a_number_is_written_as_json_can_read_it(codec: str) -> None:
    data = json_codec.dumps({"x": math.nan})
    if codec == "orjson":
        assert json.loads(data) == {"x": None}
    else:
        assert data == b'{"x":NaN}'  # the standard library's own output, as before


def test_import_tollway_does_not_load_orjson() -> None:
    import subprocess
    import sys

    code = "import sys, tollway; from tollway import Model; print('orjson' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False"]
