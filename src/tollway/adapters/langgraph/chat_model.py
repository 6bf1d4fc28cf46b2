"""TollwayChatModel: a LangChain chat model whose calls go through a tollway Model.

Bind one to each LangGraph node (``TollwayChatModel(model="smart")``) and every call is
routed, priced, budget-checked and written to the ledger with the node name, the graph
run / thread id and the model's org / project / user. Sync and async paths call
tollway's own sync and async transports (no thread-pool hops); streaming yields tokens
and tool-call chunks and ends with one chunk carrying usage, cost and metadata.

tollway errors surface unchanged (``BudgetExceededError``, ``RateLimitError``...):
LangChain has no error hierarchy of its own to translate them into.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from operator import itemgetter
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, model_validator

from tollway.adapters.langgraph.connection import TollwayConnection, collect_model_kwargs
from tollway.adapters.langgraph.context import run_scope
from tollway.adapters.langgraph.convert import to_messages, to_openai_tools, to_tools
from tollway.adapters.langgraph.output import (
    ChunkBuilder,
    chunk_text,
    generation_info,
    to_ai_message,
)
from tollway.core.errors import BadRequestError
from tollway.core.inputs import build_request, to_response_format
from tollway.core.model import Model
from tollway.core.types import Request

StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]

_REQUEST_KEYS = frozenset({
    "tools", "tool_choice", "response_format", "temperature", "top_p", "max_tokens", "stop",
    "seed", "parallel_tool_calls", "reasoning", "extra_headers",
})
_LANGCHAIN_KEYS = frozenset({"stream", "ls_structured_output_format", "structured_output_format",
                             "strict"})
"""Call kwargs LangChain uses for its own bookkeeping: never sent to the provider."""
_CHOICE_WORDS = frozenset({"auto", "none", "required", "any"})


class TollwayChatModel(TollwayConnection, BaseChatModel):
    """``TollwayChatModel(model="smart")`` (an alias from tollway.yaml) or
    ``TollwayChatModel(model="openai/gpt-4o-mini", api_key=..., org="acme")``, or
    ``TollwayChatModel(client=tollway.Model(...))`` to share one configured Model.

    Keyword arguments that are not fields (``frequency_penalty=...``) go into
    ``model_kwargs`` and are sent to the provider untouched. ``tags`` become tollway
    attribution tags (``{"team": "search"}`` or ``["team=search"]``) as well as
    LangChain tracing tags.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    reasoning: str | dict[str, Any] | None = None
    """Reasoning effort (``"low"``...) or ``{"effort": ..., "budget_tokens": ...}``."""
    streaming: bool = False
    """Stream even from ``invoke`` (LangChain convention)."""
    # ------------------------------------------------------------------ construction

    @model_validator(mode="before")
    @classmethod
    def _collect_options(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        tags = values.get("tags")
        if isinstance(tags, Mapping):
            values["tags"] = [f"{k}={v}" for k, v in tags.items()]
        return collect_model_kwargs(values, set(cls.model_fields) | {"stop_sequences"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connect()  # outside pydantic validation, so tollway's typed errors surface

    def _connect(self) -> None:
        self._client = self._tollway_client("TollwayChatModel")
        self._defaults = self._attribution_defaults(self.tags)
        if self.profile is None:  # LangChain's own validator found none
            self.profile = self._tollway_profile()

    def _tollway_profile(self) -> ModelProfile:
        """What create_agent reads to pick provider-native structured output."""
        return ModelProfile(
            tool_calling=True,
            tool_choice=True,
            tool_call_streaming=True,
            structured_output=self._native_structured_output,
            text_inputs=True,
            text_outputs=True,
        )

    @property
    def _native_structured_output(self) -> bool:
        """Every tollway dialect takes a JSON-schema response_format (a dialect may
        declare ``native_response_format = False`` to opt out)."""
        deployments = self._client.deployments
        return all(getattr(d.dialect, "native_response_format", True) for d in deployments)

    @property
    def tollway_model(self) -> Model:
        """The tollway Model this chat model calls."""
        return self._client

    @property
    def model_name(self) -> str:
        """The provider's model name of the first deployment (what LangChain's
        create_agent inspects), else the configured target."""
        deployments = self._client.deployments
        return deployments[0].model if deployments else str(self.model)

    @property
    def _llm_type(self) -> str:
        return "tollway"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model}
        for name in ("temperature", "max_tokens", "top_p", "seed", "reasoning"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        return params

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        deployments = self._client.deployments
        params["ls_provider"] = deployments[0].provider.name if deployments else "tollway"
        params["ls_model_name"] = self.model_name
        return params

    # ------------------------------------------------------------------ requests

    def _request(self, messages: list[BaseMessage], stop: list[str] | None,
                 kwargs: Mapping[str, Any]) -> Request:
        params: dict[str, Any] = {
            name: value
            for name in ("temperature", "max_tokens", "top_p", "seed", "reasoning")
            if (value := getattr(self, name)) is not None
        }
        extra = dict(self.model_kwargs)
        for key, value in kwargs.items():
            if key in _REQUEST_KEYS:
                params[key] = value
            elif key not in _LANGCHAIN_KEYS:
                extra[key] = value
        params["stop"] = stop if stop is not None else params.get("stop", self.stop)
        if params.get("tools"):
            params["tools"] = to_tools(params["tools"])
        fmt = params.get("response_format")
        if fmt is not None:
            params["response_format"] = to_response_format(fmt)
        if extra:
            params["extra"] = extra
        return build_request(to_messages(messages), **params)

    def _scope(self, run_manager: Any) -> AbstractContextManager[None]:
        """Attribution and trace id for one call (``context.run_scope``: this model's
        defaults under the caller's scope under the graph's node, run and thread)."""
        return run_scope(self._defaults, run_manager)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        request = self._request(messages, stop, kwargs)
        with self._scope(run_manager):
            response = self._client.complete(request)
        return ChatResult(generations=[
            ChatGeneration(message=to_ai_message(response),
                           generation_info=generation_info(response))
        ])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = [c async for c in self._astream(messages, stop, run_manager, **kwargs)]
            return generate_from_stream(iter(chunks))
        request = self._request(messages, stop, kwargs)
        with self._scope(run_manager):
            response = await self._client.acomplete(request)
        return ChatResult(generations=[
            ChatGeneration(message=to_ai_message(response),
                           generation_info=generation_info(response))
        ])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        with self._scope(run_manager):  # attribution is captured when the call is made
            stream = self._client.stream(request)
        builder = ChunkBuilder()
        with stream:
            for event in stream:
                message = builder.chunk(event)
                if message is None:
                    continue
                chunk = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    run_manager.on_llm_new_token(chunk_text(message), chunk=chunk)
                yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        request = self._request(messages, stop, kwargs)
        with self._scope(run_manager):
            stream = self._client.astream(request)
        builder = ChunkBuilder()
        async with stream:
            async for event in stream:
                message = builder.chunk(event)
                if message is None:
                    continue
                chunk = ChatGenerationChunk(message=message)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk_text(message), chunk=chunk)
                yield chunk

    # ------------------------------------------------------------------ tools & output

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools of any LangChain shape. ``tool_choice``: ``"auto"``, ``"none"``,
        ``"any"`` / ``"required"`` / True (must call one), or a tool name; every dialect
        maps these to its own wire form."""
        formatted = to_openai_tools(tools, strict=strict)
        if tool_choice is not None and tool_choice is not False:
            _check_choice(tool_choice, [t["function"]["name"] for t in formatted])
            kwargs["tool_choice"] = tool_choice
        elif tool_choice is False:
            kwargs["tool_choice"] = "none"
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredMethod | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Structured output: ``json_schema`` (the provider's native structured output;
        the default when every deployment supports it), ``function_calling`` (a forced
        tool call) or ``json_mode`` (any JSON object)."""
        if kwargs:
            raise ValueError(f"Received unsupported arguments {kwargs}")
        method = method or ("json_schema" if self._native_structured_output
                            else "function_calling")
        is_model = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, strict=strict,
                                  ls_structured_output_format=trace)
            parser = (PydanticToolsParser(tools=[cast(Any, schema)], first_tool_only=True)
                      if is_model
                      else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True))
        elif method in ("json_schema", "json_mode"):
            fmt = (_json_schema_format(schema, strict) if method == "json_schema"
                   else {"type": "json_object"})
            llm = self.bind(response_format=fmt, ls_structured_output_format=trace)
            parser = (PydanticOutputParser(pydantic_object=schema) if is_model  # type: ignore[arg-type]
                      else JsonOutputParser())
        else:
            raise ValueError(
                f"method must be 'json_schema', 'function_calling' or 'json_mode'; got {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [fallback], exception_key="parsing_error"
        )


def _check_choice(choice: Any, names: list[str]) -> None:
    if choice is True or (isinstance(choice, str) and choice in _CHOICE_WORDS):
        return
    name = choice if isinstance(choice, str) else (
        (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(choice, Mapping) else None
    )
    if name is None:
        raise BadRequestError(
            f"tool_choice must be 'auto', 'none', 'any', 'required', True or a tool name; "
            f"got {choice!r}"
        )
    if name not in names:
        raise BadRequestError(
            f"tool_choice names {name!r}, which is not among the bound tools "
            f"({', '.join(names) or 'none'})"
        )


def _json_schema_format(schema: Any, strict: bool | None) -> dict[str, Any]:
    """The OpenAI-style response_format for a pydantic model, TypedDict, JSON schema or
    OpenAI tool/function dict (tollway's to_response_format reads it)."""
    if isinstance(schema, type) and is_basemodel_subclass(schema):
        model = cast(Any, schema)
        spec: dict[str, Any] = {"name": model.__name__, "schema": model.model_json_schema()}
        if schema.__doc__:
            spec["description"] = schema.__doc__.strip()
    else:
        fn = convert_to_openai_tool(schema)["function"]
        spec = {"name": fn["name"], "schema": fn.get("parameters") or {}}
        if fn.get("description"):
            spec["description"] = fn["description"]
    spec["strict"] = True if strict is None else strict
    return {"type": "json_schema", "json_schema": spec}
