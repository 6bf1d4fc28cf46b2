"""Dashboard sessions: a signed cookie after one login, and CSRF tokens for its forms.

The login secret is the gateway's admin key (``tollway gateway``) or the token
``tollway dashboard`` prints at start. A successful login sets ``tollway_ui``:
``<expiry>.<nonce>.<HMAC>``, signed with a key derived from the login secret, HttpOnly
(no script reads it), SameSite=Strict (no other site's page sends it), Path=/ui, and
Secure when the request came over HTTPS. Nothing is stored on the server, so every
gateway worker and machine accepts the same cookie; changing the admin key (or
restarting ``tollway dashboard`` with a new token) ends every session at once.

Every POST form carries ``csrf``, an HMAC of the session's nonce: a page from another
origin cannot read it, so it cannot forge a form, even where a browser would send the
cookie. Secrets are compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

__all__ = ["COOKIE", "SESSION_SECONDS", "Session", "Sessions"]

COOKIE = "tollway_ui"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires: int
    csrf: str


class Sessions:
    """Issues and checks session cookies and CSRF tokens for one login secret."""

    def __init__(self, login_secret: str, *, lifetime: int = SESSION_SECONDS) -> None:
        self._login = login_secret.encode()
        self._key = hmac.new(self._login, b"tollway-ui-session-v1", hashlib.sha256).digest()
        self.lifetime = lifetime

    def login(self, presented: str | None) -> bool:
        """Is ``presented`` the login secret (constant time)?"""
        return bool(presented) and hmac.compare_digest(presented.strip().encode(), self._login)  # type: ignore[union-attr]

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> tuple[str, Session]:
        """A new cookie value and the session it stands for."""
        expires = int(now if now is not None else time.time()) + self.lifetime
        nonce = secrets.token_urlsafe(16)
        body = f"{expires}.{nonce}"
        return f"{body}.{self._sign(body)}", self._session(nonce, expires)

    def _session(self, nonce: str, expires: int) -> Session:
        return Session(nonce, expires, self._sign(f"csrf.{nonce}")[:32])

    def check(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a valid, unexpired cookie; None otherwise."""
        if not cookie:
            return None
        expires_text, _, rest = cookie.partition(".")
        nonce, _, signature = rest.rpartition(".")
        if not (expires_text.isdigit() and nonce and signature):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{expires_text}.{nonce}")):
            return None
        expires = int(expires_text)
        if expires <= (now if now is not None else time.time()):
            return None
        return self._session(nonce, expires)

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


def cookie_header(value: str, *, secure: bool, max_age: int) -> str:
    flags = f"; Path=/ui; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}{flags}" + ("; Secure" if secure else "")
