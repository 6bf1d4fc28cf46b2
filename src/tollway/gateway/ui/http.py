"""The dashboard's request and reply values (shared by the app and its pages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tollway.gateway.ui.session import Session

__all__ = ["UIReply", "UIRequest", "redirect"]


@dataclass(slots=True)
class UIRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    session: Session | None = None
    secure: bool = False

    def arg(self, name: str, default: str = "") -> str:
        """One query or form value, stripped ('' when absent)."""
        values = self.form.get(name) or self.query.get(name)
        return values[-1].strip() if values else default


@dataclass(slots=True)
class UIReply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"


def redirect(location: str, *headers: tuple[str, str]) -> UIReply:
    return UIReply(303, b"", [("location", location), *headers])
