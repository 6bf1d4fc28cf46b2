"""The real openai / anthropic SDK clients, driven sync or async with one call shape, so
every gateway behaviour test runs on both drivers."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai

DRIVERS = ("sync", "async")


def openai_call(driver: str, base_url: str, key: str, method: str, **kwargs: Any) -> Any:
    """``client.<method>(**kwargs)`` (``method`` dotted: ``chat.completions.create``); a
    stream is consumed into a list of chunks."""
    if driver == "sync":
        with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0) as client:
            target: Any = client
            for name in method.split("."):
                target = getattr(target, name)
            result = target(**kwargs)
            return list(result) if kwargs.get("stream") else result

    async def run() -> Any:
        async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0) as client:
            target: Any = client
            for name in method.split("."):
                target = getattr(target, name)
            result = await target(**kwargs)
            if kwargs.get("stream"):
                return [chunk async for chunk in result]
            return result

    return asyncio.run(run())


def anthropic_call(driver: str, base_url: str, key: str, method: str, **kwargs: Any) -> Any:
    if driver == "sync":
        with anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0) as client:
            target: Any = client
            for name in method.split("."):
                target = getattr(target, name)
            result = target(**kwargs)
            return list(result) if kwargs.get("stream") else result

    async def run() -> Any:
        async with anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0) as client:
            target: Any = client
            for name in method.split("."):
                target = getattr(target, name)
            result = await target(**kwargs)
            if kwargs.get("stream"):
                return [event async for event in result]
            return result

    return asyncio.run(run())


def anthropic_stream_message(driver: str, base_url: str, key: str, **kwargs: Any) -> tuple[Any, list[str]]:
    """``messages.stream(...)``: the SDK's accumulated final message and the text deltas."""
    if driver == "sync":
        client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)
        with client, client.messages.stream(**kwargs) as stream:
            texts = list(stream.text_stream)
            return stream.get_final_message(), texts

    async def run() -> tuple[Any, list[str]]:
        client = anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0)
        async with client, client.messages.stream(**kwargs) as stream:
            texts = [text async for text in stream.text_stream]
            return await stream.get_final_message(), texts

    return asyncio.run(run())
