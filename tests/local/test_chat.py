"""The OpenAI-body side of the local provider that needs no model: stop sequences,
messages for chat templates, error bodies, and which file a deployment names."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

import tollway
from tollway.core.dialects.openai_chat import DIALECT
from tollway.core.errors import (
    BadRequestError,
    ConfigError,
    ContextWindowExceededError,
    NotFoundError,
)
from tollway.local.chat import (
    LocalRequestError,
    StopScanner,
    answered_calls,
    repeats,
    template_messages,
)
from tollway.local.engine import EngineSettings, LocalExtraMissingError
from tollway.local.tools import ParsedCall
from tollway.local.transport import is_default, model_path


def _scan(stops: list[str], pieces: list[str]) -> tuple[list[str], bool, str]:
    scanner = StopScanner(stops)
    shown = [scanner.feed(p) for p in pieces]
    return shown, scanner.stopped, scanner.flush()


def test_stop_sequence_cuts_the_text_and_is_never_shown() -> None:
    shown, stopped, rest = _scan(["\nObservation:"], ["Thought: x", "\nObs", "ervation: y"])
    assert "".join(shown) == "Thought: x"
    assert shown[1] == ""  # the possible start of the stop sequence was held back
    assert stopped and rest == ""


def test_stop_scanner_releases_a_held_prefix_that_was_not_a_stop() -> None:
    shown, stopped, rest = _scan(["END"], ["the EN", "D-GAME? no: EN", "TRY"])
    assert "".join(shown) == "the "
    assert stopped
    shown, stopped, rest = _scan(["END"], ["the EN", "TRY is E"])
    assert "".join(shown) + rest == "the ENTRY is E"
    assert not stopped


def test_stop_scanner_cuts_at_the_earliest_of_several_stops() -> None:
    shown, stopped, _ = _scan(["zzz", "b"], ["a b c zzz"])
    assert shown == ["a "] and stopped


def test_without_stops_text_passes_unchanged() -> None:
    assert _scan([], ["a", "b"]) == (["a", "b"], False, "")


def test_template_messages_flattens_text_parts_and_parses_tool_call_arguments() -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Oslo?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert template_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]


def test_template_messages_refuses_images_with_a_400_the_dialect_maps() -> None:
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    with pytest.raises(LocalRequestError) as info:
        template_messages(messages)
    error = DIALECT.parse_error(info.value.status, info.value.body(), {})
    assert isinstance(error, BadRequestError)
    assert "text only" in str(error)


def test_a_context_overflow_body_becomes_context_window_exceeded() -> None:
    exc = LocalRequestError("too long", code="context_length_exceeded")
    assert isinstance(DIALECT.parse_error(exc.status, exc.body(), {}), ContextWindowExceededError)


def test_api_base_names_the_default_model_or_a_gguf_file(tmp_path: Path) -> None:
    assert all(is_default(b) for b in ("local://", "local://default", "", None, "local:"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 16)
    assert model_path(str(gguf)) == gguf
    assert model_path(gguf.as_uri()) == gguf
    assert not is_default(str(gguf))


def test_a_missing_model_file_is_a_not_found_error(tmp_path: Path) -> None:
    model = tollway.Model("local/mine", api_base=str(tmp_path / "absent.gguf"), ledger=False, config=False)
    with pytest.raises(NotFoundError, match=r"absent\.gguf"):
        model.complete("hi")


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("<html>not a model</html>")
    model = tollway.Model("local/mine", api_base=str(bogus), ledger=False, config=False)
    with pytest.raises(ConfigError, match="not a GGUF"):
        model.complete("hi")


def test_missing_llama_cpp_says_how_to_install_and_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "fresh.gguf"  # a path no test loaded, so the engine is built now
    gguf.write_bytes(b"GGUF" + b"\0" * 16)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what an absent package looks like
    model = tollway.Model("local/mine", api_base=str(gguf), ledger=False, config=False)
    with pytest.raises(LocalExtraMissingError) as info:
        model.complete("hi")
    message = str(info.value)
    assert "uv sync --extra local" in message and "tollway[local]" in message
    assert "GGML_NATIVE=OFF" in message


def test_engine_settings_read_threads_and_context_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLLWAY_LOCAL_THREADS", "3")
    monkeypatch.setenv("TOLLWAY_LOCAL_CTX", "2048")
    assert EngineSettings.from_env() == EngineSettings(threads=3, ctx=2048)
    monkeypatch.delenv("TOLLWAY_LOCAL_THREADS")
    monkeypatch.delenv("TOLLWAY_LOCAL_CTX")
    assert EngineSettings.from_env() == EngineSettings(len(os.sched_getaffinity(0)), 4096)
    monkeypatch.setenv("TOLLWAY_LOCAL_THREADS", "many")
    with pytest.raises(ConfigError, match="TOLLWAY_LOCAL_THREADS"):
        EngineSettings.from_env()


def test_error_bodies_are_openai_error_objects() -> None:
    body = json.loads(LocalRequestError("bad", param="stop").body())
    assert body == {"error": {"message": "bad", "type": "invalid_request_error", "param": "stop", "code": None}}


def test_answered_calls_are_those_with_results_since_the_last_user_message() -> None:
    conversation = template_messages([
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "tool_calls": [
            {"id": "a", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "and the time there?"},
        {"role": "assistant", "tool_calls": [
            {"id": "b", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}},
            {"id": "c", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "b", "content": "12:00"},
    ])
    assert answered_calls(conversation) == (("get_time", {"zone": "CET"}),)


def test_a_call_is_a_repeat_when_it_agrees_with_an_answered_call_on_shared_arguments() -> None:
    answered = (("get_weather", {"city": "Oslo"}), ("ping", {}))
    assert repeats(ParsedCall("get_weather", '{"city":"Oslo"}'), answered)
    assert repeats(ParsedCall("get_weather", '{"city":"Oslo","unit":"celsius"}'), answered)
    assert repeats(ParsedCall("ping", "{}"), answered)
    assert not repeats(ParsedCall("get_weather", '{"city":"Bergen"}'), answered)
    assert not repeats(ParsedCall("get_weather", '{"unit":"celsius"}'), answered)
    assert not repeats(ParsedCall("get_time", '{"city":"Oslo"}'), answered)
    assert not repeats(ParsedCall("get_weather", '{"city":"Oslo"}'), ())
