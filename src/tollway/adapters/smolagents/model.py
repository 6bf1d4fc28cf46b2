"""TollwayModel: a smolagents ``Model`` whose every call goes through ``tollway.Model``.

Works for ``ToolCallingAgent`` (native tool calls: ``tools_to_call_from`` becomes the
request's tools with ``tool_choice="required"``, as smolagents' API models send) and
``CodeAgent`` (text with code blocks, or ``response_format`` for its structured mode),
streamed or not. Usage is reported exactly: ``input_tokens`` counts every billed input
token (cache included), a stream reports usage once, at its end, and the tollway
Response (cost, cache and reasoning counts) is kept in ``ChatMessage.raw``.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from smolagents.models import REMOVE_PARAMETER, ChatMessage, ChatMessageStreamDelta
from smolagents.models import Model as SmolModel

from tollway.adapters._turns import ReasoningTurns
from tollway.adapters.smolagents._agent import calling_agent, run_scope
from tollway.adapters.smolagents._convert import (
    chat_message,
    messages_for_tollway,
    tool_call_delta,
    tools_for_tollway,
    usage_delta,
)
from tollway.adapters.smolagents._stop import (
    StopCutter,
    cut_at_stops,
    refuses_stop,
    rejects_stop,
    remember_refusal,
)
from tollway.adapters.smolagents._turns import with_remembered_turns
from tollway.core.cost.attribution import Attribution
from tollway.core.errors import ConfigError, TollwayError
from tollway.core.logs import logger
from tollway.core.model import Model, ResponseStream
from tollway.core.types import Response, StreamEnd, TextDelta, ToolCallDelta

log = logger("tollway.adapters.smolagents")

_REQUEST_KEYS = frozenset({
    "temperature", "top_p", "max_tokens", "seed", "parallel_tool_calls", "reasoning",
    "tool_choice", "response_format",
})
"""Keyword arguments that are fields of a tollway request; others go to ``extra``."""
_RENAMED = {"max_completion_tokens": "max_tokens", "reasoning_effort": "reasoning"}
_DROPPED = ("model", "stop", "stream", "stream_options", "messages", "tools")
"""Keys smolagents or a caller may pass that tollway sets itself."""


class TollwayModel(SmolModel):
    """A smolagents model over ``tollway.Model``: any provider, alias routing, exact
    cost, budgets and per-agent attribution.

    ``TollwayModel("smart")`` uses an alias from tollway.yaml; ``TollwayModel(
    "openai/gpt-4o-mini")`` a provider model directly; ``TollwayModel(model)`` wraps a
    ``tollway.Model`` you built. Options: ``api_base`` / ``api_key`` / ``timeout`` /
    ``ledger`` / ``guards`` / ``prices`` / ``config`` (passed to ``tollway.Model``);
    ``org`` / ``project`` / ``user`` / ``tags`` (attribution defaults; an enclosing
    ``tollway.attribute`` scope wins); ``agent`` (the ledger's agent name; by default
    the calling agent's ``name``, else its class name); ``supports_stop=False`` for a
    model known to refuse stop sequences (otherwise learned from the provider's first
    refusal, see ``_stop``). Other keyword arguments are request defaults, as with
    smolagents' models: ``temperature``, ``max_tokens``, ``reasoning_effort``... and
    anything else is sent to the provider untouched.
    """

    def __init__(
        self,
        model_id: str | Model,
        *,
        api_base: str | None = None,
        api_key: Any = None,
        timeout: Any = None,
        ledger: Any = None,
        guards: Sequence[Any] = (),
        prices: Any = None,
        config: Any = None,
        org: str | None = None,
        project: str | None = None,
        user: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        agent: str | None = None,
        supports_stop: bool | None = None,
        custom_role_conversions: dict[str, str] | None = None,
        flatten_messages_as_text: bool = False,
        **kwargs: Any,
    ) -> None:
        options: dict[str, Any] = {"api_key": api_key, "api_base": api_base, "timeout": timeout,
                                   "ledger": ledger, "prices": prices, "config": config}
        options = {k: v for k, v in options.items() if v is not None}
        if guards:
            options["guards"] = tuple(guards)
        if isinstance(model_id, Model):
            if options:
                raise ConfigError(
                    f"TollwayModel wraps the tollway.Model it was given, so "
                    f"{', '.join(options)} would be ignored: pass them to tollway.Model(...)"
                )
            client = model_id
        else:
            client = Model(model_id, **options)
        super().__init__(
            flatten_messages_as_text=flatten_messages_as_text, model_id=client.target, **kwargs
        )
        self.client = client
        self.custom_role_conversions = custom_role_conversions
        self.agent_name = agent
        self._supports_stop = supports_stop
        self._defaults = Attribution.of(org=org, project=project, user=user, tags=tags)
        self._turns = ReasoningTurns()

    # ------------------------------------------------------------------ capabilities

    @property
    def supports_stop_parameter(self) -> bool:
        """Whether stop sequences are sent to the provider: not when configured off,
        nor once a deployment of this model has refused them (then the text is cut
        locally instead). Replaces smolagents' guess from the model name."""
        if self._supports_stop is not None:
            return self._supports_stop
        return not any(
            refuses_stop(dep.provider.name, dep.model) for dep in self.client.deployments
        )

    # ------------------------------------------------------------------ calls

    def generate(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        agent = calling_agent()
        inputs, params = self._request(messages, response_format, tools_to_call_from, kwargs)
        send_stop = self._with_stop(params, stop_sequences)
        with self._scope(agent):
            try:
                response = self.client.complete(inputs, **params)
            except TollwayError as exc:
                if not self._drop_stop(params, exc):
                    raise
                send_stop = False
                response = self.client.complete(inputs, **params)
        self._turns.remember(response)
        text = response.text if send_stop else cut_at_stops(response.text, stop_sequences)
        return chat_message(response, text)

    def generate_stream(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> Generator[ChatMessageStreamDelta]:
        """Deltas as they arrive: text, tool-call fragments (index, id and name on the
        first, argument JSON to append), then one delta with the usage of the call."""
        agent = calling_agent()
        inputs, params = self._request(messages, response_format, tools_to_call_from, kwargs)
        send_stop = self._with_stop(params, stop_sequences)
        stream = self._open(inputs, params, agent)
        if stream is None:
            send_stop = False
            stream = self._open(inputs, params, agent)
            assert stream is not None
        cutter = None if send_stop or not stop_sequences else StopCutter(stop_sequences)
        with stream:
            for event in stream:
                if isinstance(event, TextDelta):
                    text = event.text if cutter is None else cutter.feed(event.text)
                    if text:
                        yield ChatMessageStreamDelta(content=text)
                elif isinstance(event, ToolCallDelta):
                    yield tool_call_delta(event)
                elif isinstance(event, StreamEnd):
                    self._turns.remember(event.response)
                    rest = cutter.flush() if cutter is not None else ""
                    if rest:
                        yield ChatMessageStreamDelta(content=rest)
                    yield usage_delta(event.response.usage)

    def _open(
        self, inputs: list[dict[str, Any]], params: dict[str, Any], agent: Any
    ) -> ResponseStream | None:
        """A stream opened up to its first token (so a refused ``stop`` shows here);
        None after dropping a refused ``stop`` from ``params``, to open again."""
        with self._scope(agent):
            stream = self.client.stream(inputs, **params)
        try:
            stream.__enter__()
        except TollwayError as exc:
            if self._drop_stop(params, exc):
                return None
            raise
        return stream

    # ------------------------------------------------------------------ steps

    def _scope(self, agent: Any) -> AbstractContextManager[None]:
        """This model's defaults under the caller's scope under the agent, in the agent
        run's trace (``_agent.run_scope``)."""
        return run_scope(agent, self.agent_name, self._defaults)

    def _request(
        self,
        messages: list[ChatMessage | dict[str, Any]],
        response_format: dict[str, Any] | None,
        tools: list[Any] | None,
        kwargs: dict[str, Any],
    ) -> tuple[list[Any], dict[str, Any]]:
        """The tollway messages and request parameters for one call. Precedence as in
        smolagents: the model's own defaults (``self.kwargs``) win over per-call kwargs;
        a default set to ``REMOVE_PARAMETER`` removes the parameter."""
        flatten = kwargs.pop("flatten_messages_as_text", self.flatten_messages_as_text)
        inputs = with_remembered_turns(
            messages, self._turns,
            lambda part: messages_for_tollway(part, self.custom_role_conversions, flatten),
        )
        params: dict[str, Any] = {}
        if tools:
            params["tools"] = tools_for_tollway(tools)
            params["tool_choice"] = "required"
        if response_format is not None:
            params["response_format"] = response_format
        extra: dict[str, Any] = {}
        for key, value in {**kwargs, **self.kwargs}.items():
            if key in _DROPPED:
                continue
            name = _RENAMED.get(key, key)
            if value is REMOVE_PARAMETER:
                params.pop(name, None)
                extra.pop(key, None)
            elif name in _REQUEST_KEYS:
                params[name] = value
            else:
                extra[key] = value
        if extra:
            params["extra"] = extra
        return inputs, params

    def _with_stop(self, params: dict[str, Any], stop_sequences: list[str] | None) -> bool:
        """Put the stop sequences in ``params`` if they are to be sent; whether they are."""
        if not stop_sequences or self.kwargs.get("stop") is REMOVE_PARAMETER:
            return False
        if not self.supports_stop_parameter:
            return False
        params["stop"] = list(stop_sequences)
        return True

    def _drop_stop(self, params: dict[str, Any], exc: TollwayError) -> bool:
        if "stop" not in params or not rejects_stop(exc):
            return False
        provider, model = remember_refusal(exc)
        del params["stop"]
        log.warning(
            "tollway: %s/%s refuses stop sequences; sending its calls without them and "
            "cutting the text at them locally (pass supports_stop=False to skip the "
            "refused attempt)", provider, model,
        )
        return True


def response_of(message: ChatMessage) -> Response | None:
    """The tollway Response behind a ChatMessage this model returned (cost, full usage)."""
    return message.raw if isinstance(message.raw, Response) else None
