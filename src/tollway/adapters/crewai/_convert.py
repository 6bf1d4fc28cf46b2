"""tollway values -> the shapes CrewAI's executor and its events read.

CrewAI speaks OpenAI chat-completions JSON on both sides of an LLM call: messages and
tools come in as OpenAI dicts (which :func:`tollway.core.types.build_request` already
accepts), and a native provider hands tool calls back as OpenAI-style tool calls that
``crewai.utilities.agent_utils.extract_tool_call_info`` understands. So the adapter
only needs these few translations.
"""

from __future__ import annotations

from typing import Any

from tollway.core.types import Response, ToolCall, Usage


def usage_for_crewai(usage: Usage) -> dict[str, int]:
    """Usage in the keys ``UsageMetrics.from_provider_dict`` reads.

    tollway's ``input_tokens`` already includes cache reads and writes (as OpenAI's
    ``prompt_tokens`` does), so it maps to ``prompt_tokens`` unchanged and CrewAI's
    ``crew.usage_metrics`` equals the ledger's token sums. No ``input_tokens`` key is
    sent: CrewAI would read it as Anthropic's uncached count and add the cache again.
    """
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cached_prompt_tokens": usage.cache_read_tokens,
        "cache_creation_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def tool_call_for_crewai(call: ToolCall, index: int) -> dict[str, Any]:
    """One tool call as the OpenAI dict CrewAI's native providers return when they leave
    execution to the executor (``arguments`` stays the model's raw JSON string)."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
        "index": index,
    }


def tool_calls_for_crewai(response: Response) -> list[dict[str, Any]]:
    return [tool_call_for_crewai(call, i) for i, call in enumerate(response.tool_calls)]


def tool_call_chunk(call_id: str | None, name: str, arguments: str, index: int) -> dict[str, Any]:
    """The ``tool_call`` payload of an ``LLMStreamChunkEvent`` (arguments so far)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
        "index": index,
    }
