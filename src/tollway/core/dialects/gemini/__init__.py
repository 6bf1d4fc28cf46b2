"""The Google Gemini ``generateContent`` dialect (Gemini API and Vertex AI), sans-I/O.

Gemini API and Vertex AI speak the same JSON; the provider table supplies the base URL
(``.../v1beta`` or ``.../projects/{p}/locations/{loc}/publishers/google``) and the auth
(``x-goog-api-key`` or a bearer token). The one wire difference is a constructor option:
Vertex AI's v1 API rejects ``id`` on ``functionCall`` / ``functionResponse``, so Vertex
deployments use ``GeminiDialect(send_call_ids=False)`` (:data:`VERTEX_DIALECT`).

Decisions worth knowing (details in the helper modules):

- Tool parameters and structured-output schemas are converted to Gemini's OpenAPI
  subset (``parameters`` / ``responseSchema``) rather than sent as
  ``parametersJsonSchema`` / ``responseJsonSchema``: the converted form works on every
  Gemini model (2.0 included) and on Vertex v1, and the conversion keeps the meaning
  (``_gemini_schema``). ``response_schema_field="responseJsonSchema"`` sends the JSON
  schema itself (refs inlined) for models that take it.
- ``thoughtSignature`` travels in each part's ``provider_data["gemini"]`` and goes back
  on the same part; foreign signatures are never sent (``_gemini_request``).
- A prompt Gemini blocks outright (``promptFeedback.blockReason`` and no candidates) is
  raised as ContentFilterError, streamed or not: there is no answer to return.
- Reasoning: ``budget_tokens`` -> ``thinkingBudget``; an effort -> ``thinkingLevel`` on
  Gemini 3+ and a budget on Gemini 2.x (tables in ``_gemini_request``).
- ``parallel_tool_calls`` has no Gemini equivalent and is ignored; only the first
  candidate is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tollway.core.dialects.base import HttpRequest
from tollway.core.dialects.gemini.errors import parse_error as _parse_error
from tollway.core.dialects.gemini.request import (
    DIALECT_NAME,
    SKIP_SIGNATURE_VALIDATOR,
    BuildOptions,
    build_body,
)
from tollway.core.dialects.gemini.response import GeminiStreamParser, parse_body
from tollway.core.errors import BadRequestError, ProviderError
from tollway.core.types import Request, Response, requested_service_tier

__all__ = ["DIALECT", "VERTEX_DIALECT", "GeminiDialect", "GeminiStreamParser"]


class GeminiDialect:
    """Gemini ``generateContent`` / ``streamGenerateContent``.

    Options:

    - ``send_call_ids``: send ``functionCall.id`` / ``functionResponse.id`` (the Gemini
      API accepts them and Gemini 3 matches results by them; Vertex v1 rejects them).
    - ``signature_fallback``: the stand-in ``thoughtSignature`` put on the first call of
      a Gemini 3 model turn that has function calls but no signature (None: never).
    - ``multimodal_function_responses``: put a tool result's images / files inside the
      ``functionResponse`` (Gemini 3) instead of after it as separate parts; None
      decides by the model's generation.
    - ``response_schema_field``: ``"responseSchema"`` (converted, default) or
      ``"responseJsonSchema"``.
    """

    name = DIALECT_NAME

    __slots__ = ("_options",)

    def __init__(
        self,
        *,
        send_call_ids: bool = True,
        signature_fallback: str | None = SKIP_SIGNATURE_VALIDATOR,
        multimodal_function_responses: bool | None = None,
        response_schema_field: str = "responseSchema",
    ) -> None:
        if response_schema_field not in ("responseSchema", "responseJsonSchema"):
            raise BadRequestError(
                "response_schema_field must be 'responseSchema' or 'responseJsonSchema', "
                f"got {response_schema_field!r}"
            )
        self._options = BuildOptions(
            send_call_ids=send_call_ids,
            signature_fallback=signature_fallback,
            multimodal_function_responses=multimodal_function_responses,
            response_schema_field=response_schema_field,
        )

    def build_request(self, request: Request, model: str, *, stream: bool) -> HttpRequest:
        name = model.removeprefix("models/")
        if not name:
            raise BadRequestError("a Gemini request needs a model name (e.g. 'gemini-2.5-flash')")
        path = (
            f"/models/{name}:streamGenerateContent?alt=sse"
            if stream
            else f"/models/{name}:generateContent"
        )
        body = build_body(request, name, self._options)
        return HttpRequest(path, body, dict(request.extra_headers))

    def parse_response(
        self, body: Mapping[str, Any], request: Request | None, model: str
    ) -> Response:
        return parse_body(body, model, requested_service_tier(request))

    def stream_parser(self, request: Request | None, model: str) -> GeminiStreamParser:
        return GeminiStreamParser(model, requested_service_tier(request))

    def parse_error(
        self, status: int, body: bytes | str, headers: Mapping[str, str]
    ) -> ProviderError:
        return _parse_error(status, body, headers)


DIALECT = GeminiDialect()
VERTEX_DIALECT = GeminiDialect(send_call_ids=False)
