"""TollwayLLM: a native CrewAI LLM whose every call goes through ``tollway.Model``.

It follows the contract of CrewAI's own native providers (``crewai.llms.providers.
openai.completion``) step for step, so the executor cannot tell it apart from one:

1. ``llm_call_context()`` scopes the call (one ``call_id`` for all its events);
2. ``LLMCallStartedEvent``; the ``before_llm_call`` hooks (which may edit the messages
   or block the call);
3. the tollway call, streamed when CrewAI asks for streaming (``Crew(stream=True)`` or
   ``llm.stream_events``), relaying ``LLMStreamChunkEvent`` / ``LLMThinkingChunkEvent``;
4. usage into CrewAI's per-LLM counters (so ``crew.usage_metrics`` adds up), then
   either the tool calls for the executor to run (native function calling), the result
   of the first tool CrewAI handed over in ``available_functions``, a validated pydantic
   object (``response_model`` / ``Task(output_pydantic=...)``), or the text cut at the
   stop words and passed through the ``after_llm_call`` hooks;
5. ``LLMCallCompletedEvent``, or ``LLMCallFailedEvent`` / a denied event on error.

Every call runs inside ``tollway.attribute(framework="crewai", agent=<role>,
task=<task name>, crew=<crew name>)``, so the ledger row of each call names the agent
that made it, including the calls CrewAI makes without naming one (``_scope``), and
every row of one crew run shares its trace id.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any

from crewai.events.types.llm_events import LLMCallType
from crewai.hooks.dispatch import HookAborted
from crewai.llms.base_llm import BaseLLM, LLMCallBlockedError, llm_call_context
from crewai.llms.context_window import CONTEXT_WINDOW_USAGE_RATIO, DEFAULT_CONTEXT_WINDOW_SIZE
from pydantic import BaseModel, Field, PrivateAttr

from tollway.adapters._turns import ReasoningTurns
from tollway.adapters.crewai._convert import tool_calls_for_crewai, usage_for_crewai
from tollway.adapters.crewai._errors import is_denial, rejects_stop, translate
from tollway.adapters.crewai._scope import run_scope
from tollway.adapters.crewai._stream import ChunkRelay, arelay_stream, relay_stream
from tollway.core.cost.attribution import Attribution
from tollway.core.errors import ConfigError, TollwayError, ToolArgumentsError
from tollway.core.logs import logger
from tollway.core.model import Model

if TYPE_CHECKING:
    from crewai.agents.agent_builder.base_agent import BaseAgent
    from crewai.task import Task
    from crewai.utilities.types import LLMMessage

    from tollway.core.types import Response, ToolCall

log = logger("tollway.adapters.crewai")

_CHARS_PER_TOKEN = 4


class TollwayLLM(BaseLLM):
    """A CrewAI LLM over ``tollway.Model``: any provider, alias routing, exact cost,
    budgets and per-agent attribution.

    ``TollwayLLM("smart")`` uses an alias from tollway.yaml; ``TollwayLLM(
    "anthropic/claude-sonnet-4-5")`` a provider model directly; ``TollwayLLM(model)``
    wraps a ``tollway.Model`` you built. Keyword options: ``api_base`` / ``api_key``,
    ``org`` / ``project`` / ``user`` / ``tags`` (attribution defaults; an enclosing
    ``tollway.attribute`` scope wins), ``ledger``, ``guards``, ``prices``, ``config``,
    ``timeout`` (passed to ``tollway.Model``), the usual generation settings
    (``temperature``, ``max_tokens``, ``stop``, ``seed``...), ``reasoning_effort``,
    ``context_window`` (tokens; overrides the model's metadata), ``response_format``;
    anything else is sent to the provider untouched (CrewAI's ``additional_params``).

    Pass it wherever CrewAI takes an LLM: ``Agent(llm=...)``, ``Agent(
    function_calling_llm=...)``, ``Crew(planning_llm=...)``, ``Crew(manager_llm=...)``.
    Anything left unset there falls back to CrewAI's default, an OpenAI model.

    Retries belong to tollway's router (configure them on the alias in tollway.yaml):
    CrewAI's own rate-limit retry wrapper is not installed around ``call``/``acall``,
    so one 429 is never retried by two layers and every attempt is metered once.
    """

    llm_type: str = "tollway"
    api_base: str | None = None
    org: str | None = None
    project: str | None = None
    user: str | None = None
    tags: dict[str, str] | list[str] | None = None
    timeout: float | None = None
    reasoning_effort: str | None = None
    context_window: int | None = Field(default=None, gt=0)
    response_format: type[BaseModel] | dict[str, Any] | None = None
    client: Any = Field(default=None, exclude=True)
    """The ``tollway.Model`` every call goes through (built from the fields if not given)."""
    ledger: Any = Field(default=None, exclude=True)
    guards: list[Any] = Field(default_factory=list, exclude=True)
    prices: Any = Field(default=None, exclude=True)
    config: Any = Field(default=None, exclude=True)

    _stop_rejected: bool = PrivateAttr(default=False)
    _window: int | None = PrivateAttr(default=None)
    _turns: ReasoningTurns = PrivateAttr(default_factory=ReasoningTurns)

    def __init__(self, model: str | Model | None = None, /, **data: Any) -> None:
        if model is not None:
            data["model"] = model
        if isinstance(data.get("model"), Model):
            data["client"] = data.pop("model")
        if data.get("client") is not None:
            _no_client_options(data)
            data.setdefault("model", data["client"].target)
        super().__init__(**data)

    def model_post_init(self, context: Any, /) -> None:
        if self.client is None:
            self.client = self._build_client()
        deployments = self.client.deployments
        self.provider = deployments[0].provider.name if deployments else "tollway"

    def _build_client(self) -> Model:
        options: dict[str, Any] = {}
        if self.api_key is not None:
            options["api_key"] = self.api_key
        if self.api_base or self.base_url:
            options["api_base"] = self.api_base or self.base_url
        if self.timeout is not None:
            options["timeout"] = self.timeout
        if self.ledger is not None:
            options["ledger"] = self.ledger
        if self.prices is not None:
            options["prices"] = self.prices
        if self.guards:
            options["guards"] = tuple(self.guards)
        if self.config is not None:
            options["config"] = self.config
        return Model(self.model, **options)

    # ------------------------------------------------------------------ capabilities

    def supports_function_calling(self) -> bool:
        """Every tollway dialect speaks native tool calls."""
        return True

    def supports_stop_words(self) -> bool:
        """True until the provider has refused the ``stop`` parameter for this model;
        after that CrewAI stops sending stop words and the answer is cut locally."""
        return not self._stop_rejected

    def supports_multimodal(self) -> bool:
        return True

    def _multimodal_formatter_name(self) -> str:
        # tollway reads OpenAI-style content blocks and each dialect re-encodes them.
        return "openai"

    def get_context_window_size(self) -> int:
        """The usable window (CrewAI's 85% of the model's limit). The limit is
        ``context_window`` if set, else the model's ``context_window`` in tollway's
        price metadata (the smallest among an alias's deployments), else CrewAI's
        default of 8192 tokens."""
        if self._window is None:
            window = self.context_window or self._metadata_window() or DEFAULT_CONTEXT_WINDOW_SIZE
            self._window = int(window * CONTEXT_WINDOW_USAGE_RATIO)
        return self._window

    def _metadata_window(self) -> int | None:
        client: Model = self.client
        windows = []
        for dep in client.deployments:
            price = client.prices.model_price(dep.provider.name, dep.model, deployment=dep.name)
            if price is not None and price.context_window:
                windows.append(price.context_window)
        return min(windows) if windows else None

    def get_input_tokens_count(
        self,
        messages: str | list[LLMMessage],
        tools: list[dict[str, Any]] | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> int:
        """An estimate (four characters a token, tool schemas included) for CrewAI's
        context-window preflight. Same rule as CrewAI's fallback, without its warning
        on every call: tollway has no tokenizer, and the provider's count is in the
        ledger once the call is made."""
        from crewai.utilities.message_utils import message_content_text

        if isinstance(messages, str):
            chars = len(messages)
        else:
            chars = sum(len(message_content_text(message)) for message in messages)
        for tool in tools or ():
            chars += len(str(tool))
        if response_model is not None:
            chars += len(str(response_model.model_json_schema()))
        return -(-chars // _CHARS_PER_TOKEN)

    # ------------------------------------------------------------------ calls

    def call(
        self,
        messages: str | list[LLMMessage],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Task | None = None,
        from_agent: BaseAgent | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> str | Any:
        """One model call for CrewAI (module docstring). ``callbacks`` are LiteLLM-era
        token handlers; like CrewAI's native providers, this class reports usage
        through the LLM's own counters instead."""
        with llm_call_context():
            try:
                self._emit_call_started_event(
                    messages=messages, tools=tools, callbacks=callbacks,
                    available_functions=available_functions, from_task=from_task,
                    from_agent=from_agent,
                )
                formatted = self._format_messages(messages)
                self._invoke_before_llm_call_hooks(formatted, from_agent)
                with self._scope(from_task, from_agent):
                    response = self._send(formatted, tools, response_model, from_task, from_agent)
                return self._answer(
                    response, formatted, available_functions, from_task, from_agent,
                    response_model,
                )
            except (HookAborted, LLMCallBlockedError) as exc:
                self._emit_call_denied_event(exc, from_task, from_agent)
                raise
            except Exception as exc:
                crew_error = self._report_failure(exc, from_task, from_agent)
                if crew_error is None:
                    raise
                if isinstance(crew_error, HookAborted):
                    raise crew_error from None
                raise crew_error from exc

    call._crewai_rate_limit_wrapped = True  # type: ignore[attr-defined]

    async def acall(
        self,
        messages: str | list[LLMMessage],
        tools: list[dict[str, Any]] | None = None,
        callbacks: list[Any] | None = None,
        available_functions: dict[str, Any] | None = None,
        from_task: Task | None = None,
        from_agent: BaseAgent | None = None,
        response_model: type[BaseModel] | None = None,
    ) -> str | Any:
        """The async twin of :meth:`call` (``Crew.akickoff``, async flows)."""
        with llm_call_context():
            try:
                self._emit_call_started_event(
                    messages=messages, tools=tools, callbacks=callbacks,
                    available_functions=available_functions, from_task=from_task,
                    from_agent=from_agent,
                )
                formatted = self._format_messages(messages)
                self._invoke_before_llm_call_hooks(formatted, from_agent)
                with self._scope(from_task, from_agent):
                    response = await self._asend(
                        formatted, tools, response_model, from_task, from_agent
                    )
                return self._answer(
                    response, formatted, available_functions, from_task, from_agent,
                    response_model,
                )
            except (HookAborted, LLMCallBlockedError) as exc:
                self._emit_call_denied_event(exc, from_task, from_agent)
                raise
            except Exception as exc:
                crew_error = self._report_failure(exc, from_task, from_agent)
                if crew_error is None:
                    raise
                if isinstance(crew_error, HookAborted):
                    raise crew_error from None
                raise crew_error from exc

    acall._crewai_rate_limit_wrapped = True  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ steps

    def _scope(self, task: Task | None, agent: BaseAgent | None) -> AbstractContextManager[None]:
        """Who this call is for: the LLM's defaults under the caller's scope, then the
        crew, agent role and task this call was made for, in the run's trace
        (``_scope.run_scope``)."""
        defaults = Attribution.of(
            org=self.org, project=self.project, user=self.user, tags=self.tags
        )
        return run_scope(task, agent, defaults)

    def _params(self, tools: list[dict[str, Any]] | None, response_model: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if tools:
            params["tools"] = list(tools)
        fmt = response_model or self.response_format
        if fmt is not None:
            params["response_format"] = fmt
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.top_p is not None:
            params["top_p"] = self.top_p
        if self.max_tokens is not None:
            params["max_tokens"] = int(self.max_tokens)
        if self.seed is not None:
            params["seed"] = self.seed
        stop = self.stop_sequences
        if stop and not self._stop_rejected:
            params["stop"] = list(stop)
        if self.reasoning_effort:
            params["reasoning"] = self.reasoning_effort
        extra = dict(self.additional_params)
        if self.frequency_penalty is not None:
            extra["frequency_penalty"] = self.frequency_penalty
        if self.presence_penalty is not None:
            extra["presence_penalty"] = self.presence_penalty
        if extra:
            params["extra"] = extra
        return params

    def _send(
        self, messages: list[LLMMessage], tools: Any, response_model: Any, task: Any, agent: Any
    ) -> Response:
        params = self._params(tools, response_model)
        try:
            return self._request(messages, params, task, agent)
        except TollwayError as exc:
            if not self._drop_stop(params, exc):
                raise
            return self._request(messages, params, task, agent)

    async def _asend(
        self, messages: list[LLMMessage], tools: Any, response_model: Any, task: Any, agent: Any
    ) -> Response:
        params = self._params(tools, response_model)
        try:
            return await self._arequest(messages, params, task, agent)
        except TollwayError as exc:
            if not self._drop_stop(params, exc):
                raise
            return await self._arequest(messages, params, task, agent)

    def _drop_stop(self, params: dict[str, Any], exc: TollwayError) -> bool:
        """After the provider refused ``stop``: remember it, say so once, and take the
        stop words out of ``params`` (they are then applied to the answer locally)."""
        if "stop" not in params or not rejects_stop(exc):
            return False
        self._stop_rejected = True
        del params["stop"]
        log.warning(
            "tollway: %s rejects stop sequences; sending its calls without them and "
            "cutting the answers at the stop words locally", self.model,
        )
        return True

    def _request(self, messages: Any, params: dict[str, Any], task: Any, agent: Any) -> Response:
        """CrewAI's history carries tool calls as plain OpenAI dicts: a turn whose
        reasoning the provider needs back (Responses' encrypted items, Anthropic's
        signed thinking) is put back whole (``tollway.adapters._turns``)."""
        client: Model = self.client
        messages = self._turns.restore_openai(messages)
        if self._effective_stream():
            response = relay_stream(
                client.stream(messages, **params), ChunkRelay(self, task, agent)
            )
        else:
            response = client.complete(messages, **params)
        self._turns.remember(response)
        return response

    async def _arequest(
        self, messages: Any, params: dict[str, Any], task: Any, agent: Any
    ) -> Response:
        client: Model = self.client
        messages = self._turns.restore_openai(messages)
        if self._effective_stream():
            response = await arelay_stream(
                client.astream(messages, **params), ChunkRelay(self, task, agent)
            )
        else:
            response = await client.acomplete(messages, **params)
        self._turns.remember(response)
        return response

    def _answer(
        self,
        response: Response,
        messages: list[LLMMessage],
        available_functions: dict[str, Any] | None,
        task: Any,
        agent: Any,
        response_model: type[BaseModel] | None,
    ) -> Any:
        """What CrewAI expects back from ``call`` (module docstring, step 4)."""
        usage = usage_for_crewai(response.usage)
        self._track_token_usage_internal(usage)
        completed = partial(
            self._emit_call_completed_event, from_task=task, from_agent=agent,
            messages=messages, usage=usage, finish_reason=response.finish_reason,
            response_id=response.id or None,
        )
        if response.tool_calls:
            if not available_functions:
                calls = tool_calls_for_crewai(response)
                completed(response=calls, call_type=LLMCallType.TOOL_CALL)
                return calls
            result = self._run_tool(response.tool_calls, available_functions, task, agent)
            if result is not None:
                return result
        fmt = response_model
        if fmt is None and isinstance(self.response_format, type):
            fmt = self.response_format
        if fmt is not None:
            try:
                parsed = self._validate_structured_output(response.text, fmt)
            except ValueError:
                if response_model is not None:
                    raise
                log.warning("tollway: the answer did not match %s; returning it as text",
                            fmt.__name__)
            else:
                completed(response=parsed.model_dump_json(), call_type=LLMCallType.LLM_CALL)  # type: ignore[union-attr]
                return parsed
        content = self._apply_stop_words(response.text)
        completed(response=content, call_type=LLMCallType.LLM_CALL)
        return self._invoke_after_llm_call_hooks(messages, content, agent)

    def _run_tool(
        self, calls: list[ToolCall], functions: dict[str, Any], task: Any, agent: Any
    ) -> Any:
        """Run the first call CrewAI can run, as its native providers do: a call to a
        function it did not hand over, or with arguments that are not a JSON object,
        is skipped; the first result that is not None is the answer."""
        for call in calls:
            try:
                arguments = call.parse_arguments()
            except ToolArgumentsError as exc:
                log.error("tollway: %s", exc)
                continue
            result = self._handle_tool_execution(
                function_name=call.name, function_args=arguments,
                available_functions=functions, from_task=task, from_agent=agent,
            )
            if result is not None:
                return result
        return None

    def _report_failure(self, exc: Exception, task: Any, agent: Any) -> Exception | None:
        """Emit the failed (or denied) event; the error CrewAI should see instead of
        ``exc``, if any (see ``_errors.translate``)."""
        crew_error = translate(exc)
        if isinstance(crew_error, HookAborted) and is_denial(exc):
            self._emit_call_denied_event(crew_error, task, agent)
        else:
            self._emit_call_failed_event(
                error=f"tollway call failed: {type(exc).__name__}: {exc}"[:1000],
                from_task=task, from_agent=agent,
            )
        return crew_error


_CLIENT_OPTIONS = ("api_key", "api_base", "base_url", "timeout", "ledger", "prices", "config")


def _no_client_options(data: dict[str, Any]) -> None:
    """Options that build a ``tollway.Model`` mean nothing next to a given one: say so
    rather than ignore them."""
    given = [name for name in _CLIENT_OPTIONS if data.get(name) is not None]
    if data.get("guards"):
        given.append("guards")
    if given:
        raise ConfigError(
            f"TollwayLLM wraps the tollway.Model it was given, so {', '.join(given)} would "
            f"be ignored: pass them to tollway.Model(...) instead"
        )
