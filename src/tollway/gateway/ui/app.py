"""The dashboard's ASGI app: its route table, login, sessions, CSRF, static files.

    app = Dashboard(source, login_secret="...")   # serves /ui and everything under it

``tollway gateway`` mounts it at ``/ui`` when the admin key is set (the admin key is the
login secret; without one the dashboard does not exist: 404), and ``tollway dashboard``
serves it alone over a ledger. Pages need a session (:mod:`.session`): without one a
GET is sent to the login page and a POST is refused (403). Every answer carries a
strict Content-Security-Policy (same-origin assets only, no inline script), no-store
caching and ``X-Frame-Options: DENY``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tollway.core.errors import TollwayError
from tollway.core.logs import logger
from tollway.gateway.http import Receive, Send, read_body
from tollway.gateway.ui import pages
from tollway.gateway.ui.html import layout
from tollway.gateway.ui.http import UIReply, UIRequest, redirect
from tollway.gateway.ui.session import COOKIE, Session, Sessions, cookie_header
from tollway.gateway.ui.source import DashboardSource

__all__ = ["Dashboard", "UIReply", "UIRequest"]

log = logger("tollway.gateway")

MAX_FORM_BYTES = 64 * 1024
STATIC_FILES = {"dashboard.css": "text/css; charset=utf-8",
                "dashboard.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = (
    ("content-security-policy", "default-src 'none'; style-src 'self'; script-src 'self'; "
                                "img-src 'self'; connect-src 'self'; form-action 'self'; "
                                "base-uri 'none'; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),  # "no-referrer" makes a form's Origin "null"
)


Handler = Callable[["Dashboard", UIRequest], Awaitable[UIReply]]


@dataclass(frozen=True, slots=True)
class UIRoute:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool = False
    needs_keys: bool = False


def _route(method: str, path: str, handler: Handler, **kw: Any) -> UIRoute:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return UIRoute(method, re.compile(f"^{regex}$"), handler, **kw)


ROUTES: tuple[UIRoute, ...] = (
    _route("GET", "/ui", pages.home),
    _route("GET", "/ui/", pages.home),
    _route("GET", "/ui/login", pages.login_form, public=True),
    _route("POST", "/ui/login", pages.login, public=True),
    _route("POST", "/ui/logout", pages.logout),
    _route("GET", "/ui/spend", pages.spend),
    _route("GET", "/ui/budgets", pages.budgets),
    _route("GET", "/ui/keys", pages.keys, needs_keys=True),
    _route("POST", "/ui/keys", pages.create_key, needs_keys=True),
    _route("POST", "/ui/keys/{id}/revoke", pages.revoke_key, needs_keys=True),
    _route("GET", "/ui/calls", pages.calls),
    _route("GET", "/ui/trace", pages.trace),
)


class Dashboard:
    """The dashboard over ``source``, behind ``login_secret``.

    ``link_login``: ``GET /ui/login?token=...`` logs in too (``tollway dashboard``
    prints such a link; the gateway never accepts its admin key in a URL)."""

    def __init__(self, source: DashboardSource, login_secret: str, *,
                 link_login: bool = False) -> None:
        self.source = source
        self.sessions = Sessions(login_secret)
        self.link_login = link_login
        self._static = {name: resources.files("tollway.gateway.ui").joinpath("static", name)
                        .read_bytes() for name in STATIC_FILES}

    @property
    def has_keys(self) -> bool:
        return self.source.keys is not None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await self.send(send, await self.handle(scope, receive))

    async def send(self, send: Send, reply: UIReply) -> None:
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": self._headers(reply)})
        await send({"type": "http.response.body", "body": reply.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.source.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _headers(self, reply: UIReply) -> list[tuple[bytes, bytes]]:
        out = [(b"content-type", reply.content_type.encode()),
               (b"content-length", str(len(reply.body)).encode())]
        out += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS]
        if not any(k == "cache-control" for k, _ in reply.headers):
            out.append((b"cache-control", b"no-store"))
        out += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers]
        return out

    async def handle(self, scope: dict[str, Any], receive: Receive) -> UIReply:
        """The reply to one request (status, page, headers)."""
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if method == "GET" and path.startswith("/ui/static/"):
            return self._static_file(path.removeprefix("/ui/static/"))
        route, params, exists = self._match(method, path)
        if route is None:
            status = 405 if exists else 404
            return self.error_page(status, "no such page" if status == 404 else
                                   f"{method} is not allowed here", None)
        request = UIRequest(method, path, parse_qs(scope.get("query_string", b"").decode("latin-1")),
                            headers, params=params, secure=_is_https(scope, headers))
        request.session = self.sessions.check(_cookie(headers))
        try:
            if method == "POST":
                if not _same_origin(headers):
                    return self.error_page(403, "cross-origin form posts are refused", None)
                body = await read_body(receive, headers, MAX_FORM_BYTES)
                request.form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            if not route.public:
                if request.session is None:
                    if method == "GET":
                        return redirect("/ui/login")
                    return self.error_page(403, "log in first (your session has expired)", None)
                if method == "POST" and not Sessions.csrf_ok(request.session, request.arg("csrf")):
                    return self.error_page(403, "this form has expired: reload the page and "
                                                "try again", request.session)
            return await route.handler(self, request)
        except TollwayError as exc:
            return self.error_page(getattr(exc, "status", 400), str(exc), request.session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("tollway dashboard: unexpected %s on %s %s", type(exc).__name__, method, path)
            return self.error_page(500, "internal error in the dashboard (logged)", request.session)

    def _match(self, method: str, path: str) -> tuple[UIRoute | None, dict[str, str], bool]:
        exists = False
        for route in ROUTES:
            if route.needs_keys and not self.has_keys:
                continue  # no key store: the keys pages do not exist
            found = route.pattern.match(path)
            if found is not None:
                if route.method == method:
                    return route, found.groupdict(), True
                exists = True
        return None, {}, exists

    def _static_file(self, name: str) -> UIReply:
        body = self._static.get(name)
        if body is None:
            return self.error_page(404, "no such file", None)
        return UIReply(200, body, [("cache-control", "public, max-age=3600")], STATIC_FILES[name])

    def page(self, title: str, body: str, request: UIRequest, *, active: str | None = None,
             status: int = 200, message: str | None = None, error: str | None = None,
             headers: list[tuple[str, str]] | None = None) -> UIReply:
        csrf = request.session.csrf if request.session is not None else None
        text = layout(title, body, active=active, csrf=csrf, show_keys=self.has_keys,
                      message=message, error=error)
        return UIReply(status, text.encode(), headers or [])

    def error_page(self, status: int, message: str, session: Session | None) -> UIReply:
        text = layout(f"Error {status}", '<p><a href="/ui/spend">Back to the dashboard</a></p>',
                      active=None, csrf=session.csrf if session else None,
                      show_keys=self.has_keys, error=message)
        return UIReply(status, text.encode())

    def session_cookie(self, request: UIRequest) -> tuple[str, str]:
        value, _session = self.sessions.issue()
        return ("set-cookie", cookie_header(value, secure=request.secure,
                                            max_age=self.sessions.lifetime))

    @staticmethod
    def clear_cookie(request: UIRequest) -> tuple[str, str]:
        return ("set-cookie", cookie_header("", secure=request.secure, max_age=0))


def _cookie(headers: dict[str, str]) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def _is_https(scope: dict[str, Any], headers: dict[str, str]) -> bool:
    return scope.get("scheme") == "https" or headers.get("x-forwarded-proto") == "https"


def _same_origin(headers: dict[str, str]) -> bool:
    """A browser's POST carries ``Origin``; it must name this host. (No Origin: not a
    browser form, and the CSRF token still has to match.)"""
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc == headers.get("host", "")

