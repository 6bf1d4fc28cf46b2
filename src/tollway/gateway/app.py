"""The gateway's ASGI app: a route table, authentication, errors in the client's dialect.

    app = create_app("tollway.yaml")            # any ASGI server can serve it
    uvicorn.run(app, port=4000)                 # or: tollway gateway --config tollway.yaml

Every route names its dialect (which error JSON its clients parse) and who may call it
(a virtual key, the admin, anyone). Adding an endpoint (embeddings, images, responses as
the core gains them) is one row in :data:`ROUTES` and one handler.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tollway.core.logs import logger
from tollway.core.telemetry import switch as _telemetry
from tollway.gateway import (
    admin_routes,
    anthropic_routes,
    files,
    health,
    mcp_endpoint,
    media_routes,
    openai_routes,
    responses_routes,
    vector_files,
    vector_routes,
)
from tollway.gateway.auth import authenticate, check_admin
from tollway.gateway.errors import Dialect, GatewayError, error_response
from tollway.gateway.http import HttpRequest, JSONReply, Receive, Reply, Send, read_body, send_reply

if TYPE_CHECKING:
    from tollway.core.config import TollwaySettings
    from tollway.gateway.runtime import Gateway

__all__ = ["ROUTES", "GatewayApp", "Route", "create_app"]

log = logger("tollway.gateway")

Handler = Callable[["Gateway", HttpRequest], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    """A literal path, or one with ``{name}`` (one segment) / ``{name:path}`` (the rest)."""
    handler: Handler
    dialect: Dialect = "openai"
    auth: Literal["key", "admin", "none"] = "key"


async def _metrics(gw: Gateway, req: HttpRequest) -> JSONReply:
    return JSONReply(200, gw.metrics_totals().render(), content_type="text/plain; version=0.0.4")


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/chat/completions", openai_routes.chat_completions),
    Route("POST", "/v1/completions", openai_routes.completions),
    Route("POST", "/v1/responses", responses_routes.responses),
    Route("POST", "/v1/embeddings", media_routes.embeddings),
    Route("POST", "/v1/images/generations", media_routes.images_generations),
    Route("POST", "/v1/images/edits", media_routes.images_edits),
    Route("POST", "/v1/files", files.create_file),
    Route("GET", "/v1/files", files.list_files),
    Route("GET", "/v1/files/{id}", files.get_file),
    Route("GET", "/v1/files/{id}/content", files.file_content),
    Route("DELETE", "/v1/files/{id}", vector_files.delete_file),
    Route("GET", "/v1/vector_stores", vector_routes.list_stores),
    Route("POST", "/v1/vector_stores", vector_files.create_store),
    Route("GET", "/v1/vector_stores/{id}", vector_routes.get_store),
    Route("GET", "/v1/vector_stores/{id}/files", vector_routes.list_files),
    Route("POST", "/v1/vector_stores/{id}/files", vector_files.attach_file),
    Route("GET", "/v1/vector_stores/{id}/files/{file_id}", vector_files.get_store_file),
    Route("DELETE", "/v1/vector_stores/{id}/files/{file_id}", vector_files.delete_store_file),
    Route("POST", "/v1/vector_stores/{id}/file_batches", vector_files.create_batch),
    Route("GET", "/v1/vector_stores/{id}/file_batches/{batch_id}", vector_files.get_batch),
    Route("GET", "/v1/vector_stores/{id}/file_batches/{batch_id}/files",
          vector_files.list_batch_files),
    Route("POST", "/v1/vector_stores/{id}/search", vector_routes.search),
    Route("GET", "/v1/models", openai_routes.list_models),
    Route("GET", "/v1/models/{id:path}", openai_routes.get_model),
    Route("POST", "/v1/messages", anthropic_routes.messages, "anthropic"),
    Route("POST", "/v1/messages/count_tokens", anthropic_routes.count_tokens, "anthropic"),
    Route("POST", "/mcp", mcp_endpoint.mcp_endpoint),
    Route("GET", "/health/live", health.live, auth="none"),
    Route("GET", "/health/ready", health.ready, auth="none"),
    Route("GET", "/metrics", _metrics, auth="none"),
    Route("GET", "/admin/keys", admin_routes.list_keys, auth="admin"),
    Route("POST", "/admin/keys", admin_routes.create_key, auth="admin"),
    Route("POST", "/admin/keys/{id}/revoke", admin_routes.revoke_key, auth="admin"),
    Route("POST", "/admin/keys/{id}/rotate", admin_routes.rotate_key, auth="admin"),
)


class _Router:
    """Literal paths by dict lookup (the hot routes); patterns by regex after that."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.literal: dict[tuple[str, str], Route] = {}
        self.paths: set[str] = set()
        self.patterns: list[tuple[re.Pattern[str], Route]] = []
        for route in routes:
            if "{" in route.path:
                regex = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", route.path)
                regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
                self.patterns.append((re.compile(f"^{regex}$"), route))
            else:
                self.literal[(route.method, route.path)] = route
                self.paths.add(route.path)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """``(route, params, path_exists)``."""
        route = self.literal.get((method, path))
        if route is not None:
            return route, {}, True
        exists = path in self.paths
        for regex, candidate in self.patterns:
            found = regex.match(path)
            if found is not None:
                if candidate.method == method:
                    return candidate, found.groupdict(), True
                exists = True
        return None, {}, exists


def _dialect_of(path: str) -> Dialect:
    return "anthropic" if path.startswith("/v1/messages") else "openai"


def _is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


class GatewayApp:
    """The ASGI callable. Lifespan starts the key refresher and closes stores.

    ``/ui`` is the dashboard (:mod:`tollway.gateway.ui`), behind the admin key: it is
    looked at only after the API routes missed, so API requests pay nothing for it, and
    without an admin key it does not exist (404)."""

    def __init__(self, gateway: Gateway, routes: tuple[Route, ...] = ROUTES) -> None:
        self.gateway = gateway
        self.router = _Router(routes)
        self.ui: Any = None
        if gateway.admin_key is not None:
            from tollway.gateway.ui.app import Dashboard
            from tollway.gateway.ui.source import gateway_source

            self.ui = Dashboard(gateway_source(gateway), gateway.admin_key)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.gateway.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.stop()
                if self.ui is not None:
                    self.ui.source.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        gw = self.gateway
        method: str = scope["method"]
        path: str = scope["path"]
        route, params, exists = self.router.match(method, path)
        if route is None and self.ui is not None and _is_ui(path):
            reply = await self.ui.handle(scope, receive)
            await self.ui.send(send, reply)
            gw.metrics.request("/ui", reply.status, time.perf_counter() - started)
            return
        dialect = route.dialect if route is not None else _dialect_of(path)
        label = route.path if route is not None else "unmatched"
        status = 500
        try:
            if route is None:
                if exists:
                    raise GatewayError(405, f"{method} is not allowed on {path}")
                if _is_ui(path):
                    raise GatewayError(404, "the dashboard is off: set the admin key's "
                                            f"environment variable ({gw.spec.admin_key_env}) "
                                            "to turn it on", code="dashboard_off")
                raise GatewayError(404, f"no endpoint {method} {path} on this gateway",
                                   code="unknown_url")
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            body = await read_body(receive, headers, gw.spec.max_body_bytes) if method == "POST" else b""
            request = HttpRequest(method, path, headers, body, params,
                                  query=scope.get("query_string", b"").decode("latin-1"))
            if route.auth == "key":
                request.key = await authenticate(gw, headers)
            elif route.auth == "admin":
                check_admin(gw, headers)
            telemetry = _telemetry.current
            if telemetry is None:
                reply = await route.handler(gw, request)
            else:  # the client's traceparent is the parent of the call's span
                token = telemetry.extract(headers)
                try:
                    reply = await route.handler(gw, request)
                finally:
                    telemetry.detach(token)
        except Exception as exc:
            status, err_headers, payload = error_response(dialect, exc)
            reply = JSONReply(status, payload, err_headers)
        status = reply.status
        try:
            await send_reply(send, receive, reply)
        finally:
            gw.metrics.request(label, status, time.perf_counter() - started)


def create_app(
    config: str | TollwaySettings | None = None, *, gateway: Gateway | None = None, **options: Any
) -> GatewayApp:
    """The ASGI app for a config (a path, TollwaySettings, or None for
    ``$TOLLWAY_CONFIG`` / ``./tollway.yaml``); ``options`` go to :class:`Gateway`."""
    if gateway is None:
        from tollway.core.config import TollwaySettings, load_config
        from tollway.core.errors import ConfigError
        from tollway.gateway.runtime import Gateway

        settings = config if isinstance(config, TollwaySettings) else load_config(config)
        if settings is None:
            raise ConfigError("the gateway needs a tollway.yaml: pass --config PATH or set "
                              "$TOLLWAY_CONFIG")
        gateway = Gateway(settings, **options)
    return GatewayApp(gateway)


def app_from_environment() -> GatewayApp:
    """The factory ``tollway gateway`` hands uvicorn (one app per worker process):
    the config path travels in ``$TOLLWAY_CONFIG``."""
    logging.getLogger("tollway").setLevel(logging.INFO)
    return create_app()
