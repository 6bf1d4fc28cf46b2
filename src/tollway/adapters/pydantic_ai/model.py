"""TollwayModel: a Pydantic AI model whose requests go through a tollway Model.

``Agent(TollwayModel("smart"))`` routes, prices, budget-checks and records every request
of the agent, with the agent's name and run id in the ledger. Function tools, output
tools and the native / prompted / tool output modes map onto tollway's canonical
request; every dialect (OpenAI, Anthropic, Gemini) then speaks its own wire format.

Provider failures are raised as Pydantic AI's ``ModelAPIError`` family (so
``FallbackModel`` and retries work), with tollway's error as ``__cause__``;
``BudgetExceededError`` and ``OutsideAllowedHoursError`` surface unchanged (see
:mod:`.errors`). MCP toolsets plug in through Pydantic AI's own ``toolsets=``: their
tools arrive here as function tools like any other.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic_ai.messages import InstructionPart, ModelMessage, ModelResponse
from pydantic_ai.models import (
    Model,
    ModelRequestParameters,
    StreamedResponse,
    check_allow_model_requests,
)
from pydantic_ai.profiles import ModelProfile, ModelProfileSpec
from pydantic_ai.settings import ModelSettingName, ModelSettings
from pydantic_ai.tools import RunContext

import tollway.core.model as core_model
from tollway.adapters.pydantic_ai.client import TollwayClient
from tollway.adapters.pydantic_ai.convert import build, to_messages, to_model_response
from tollway.adapters.pydantic_ai.errors import mapped_errors
from tollway.adapters.pydantic_ai.run import run_scope
from tollway.adapters.pydantic_ai.stream import TollwayStreamedResponse
from tollway.core.cost.attribution import Attribution
from tollway.core.types import Request


@dataclass(init=False)
class TollwayModel(TollwayClient, Model):
    """``TollwayModel("smart")`` (an alias from tollway.yaml), ``TollwayModel(
    "anthropic/claude-sonnet-4-5", api_key=..., org="acme")``, or
    ``TollwayModel(client=tollway.Model(...))`` to share one configured Model.

    ``org`` / ``project`` / ``user`` / ``tags`` / ``attribution`` are recorded with every
    request (an enclosing ``tollway.attribute(...)`` scope overrides them); the agent name
    and run id are added automatically.
    """

    _unsupported_file_inputs = frozenset({"video"})
    _relocates_tool_files = True
    """Tool results go out as text; files a tool returned follow as user content."""
    unsupported_settings: ClassVar[frozenset[ModelSettingName]] = frozenset({
        "top_k", "presence_penalty", "frequency_penalty", "logit_bias", "service_tier",
        "timeout", "max_retries",
    })
    """Not portable across dialects (use ``extra_body``); timeouts and retries are
    tollway's (tollway.yaml / the Model's ``timeout``)."""

    _target: str = field(repr=False)
    _client: core_model.Model = field(repr=False)
    _defaults: Attribution = field(repr=False)

    def __init__(
        self,
        model: str | None = None,
        *,
        client: core_model.Model | None = None,
        api_base: str | None = None,
        api_key: Any = None,
        timeout: Any = None,
        ledger: Any = None,
        guards: Sequence[Any] = (),
        org: str | None = None,
        project: str | None = None,
        user: str | None = None,
        tags: Mapping[str, str] | Sequence[str] | None = None,
        attribution: Mapping[str, Any] | None = None,
        settings: ModelSettings | None = None,
        profile: ModelProfileSpec | None = None,
        **client_options: Any,
    ) -> None:
        self._connect("TollwayModel", model, client, {
            **client_options, "api_base": api_base, "api_key": api_key, "timeout": timeout,
            "ledger": ledger, "guards": guards, "org": org, "project": project, "user": user,
            "tags": tags, "attribution": attribution,
        })
        super().__init__(settings=settings, profile=profile)

    # ------------------------------------------------------------------ identity

    def _provider_model_profile(self) -> ModelProfile:
        """What every tollway dialect supports: tools, forced tool choice, JSON-schema
        structured output and JSON mode (Anthropic without native support gets a synthetic
        tool from its dialect), and thinking. Image output (``output_type=BinaryImage``)
        is declared too: the Gemini dialect asks an image model for IMAGE, the Responses
        dialect adds its image_generation tool; a deployment that cannot draw answers
        with text, which Pydantic AI then retries or rejects as for any wrong output."""
        return ModelProfile(
            supports_tools=True,
            supports_json_schema_output=True,
            supports_json_object_output=True,
            default_structured_output_mode="tool",
            supports_thinking=True,
            supports_forced_tool_choice=True,
            supports_image_output=True,
        )

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        check_allow_model_requests()
        request = self._request(messages, model_settings, model_request_parameters)
        with self._scope(None), mapped_errors(self._target):
            response = await self._client.acomplete(request)
        return to_model_response(response, self._url_of(response.deployment))

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncGenerator[StreamedResponse]:
        check_allow_model_requests()
        request = self._request(messages, model_settings, model_request_parameters)
        with self._scope(run_context):
            stream = self._client.astream(request)
        with mapped_errors(self._target):
            await stream.__aenter__()  # routes and primes the stream up to its first token
        try:
            deployments = self._client.deployments
            yield TollwayStreamedResponse(
                model_request_parameters=model_request_parameters,
                _model_name=deployments[0].model if deployments else self._target,
                _provider_name=self.system,
                _provider_url=self.base_url,
                _stream=stream,
            )
        finally:
            await stream.aclose()

    def _request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        params: ModelRequestParameters,
    ) -> Request:
        model_settings, params = self.prepare_request(model_settings, params)
        parts = self._get_instruction_parts(messages, params)
        instructions = InstructionPart.join(parts) if parts else None
        return build(to_messages(messages, instructions), model_settings, params)

    def _scope(self, run_context: RunContext[Any] | None) -> AbstractContextManager[None]:
        """Attribution and trace id for one request (:func:`.run.run_scope`: this
        model's defaults under the caller's scope under the agent run)."""
        return run_scope(run_context, self._defaults)

    def _url_of(self, deployment: str | None) -> str | None:
        for dep in self._client.deployments:
            if dep.name == deployment:
                return dep.api_base
        return self.base_url

