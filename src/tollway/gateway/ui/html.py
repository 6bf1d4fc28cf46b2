"""HTML building blocks for the dashboard: escaping, the page layout, numbers.

No template engine: pages are small, and plain functions keep one rule easy to check:
every value that comes from the ledger, the key store or the request goes through
:func:`esc` (attribute and text alike), so an org named ``<script>...`` is shown as
text. The layout links only same-origin assets (the Content-Security-Policy the app
sends forbids anything else, inline scripts included).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from tollway.core.types import NANOS_PER_USD

__all__ = ["attrs", "esc", "form_token", "layout", "nanos_usd", "number", "table", "when"]

NAV = (("spend", "Spend"), ("budgets", "Budgets"), ("keys", "Keys"), ("calls", "Calls"))


def esc(value: object) -> str:
    """Text or attribute value, escaped (quotes too); None is an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def attrs(**values: object) -> str:
    """`` name="value"`` pairs, escaped; ``data_x`` becomes ``data-x``; None and False
    are left out, True is a bare attribute."""
    out = []
    for name, value in values.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(out)


def nanos_usd(nanos: int | None) -> str:
    """``$1,234.567891`` (six decimals, as ``tollway spend`` prints); None: unknown."""
    if nanos is None:
        return "unknown"
    return f"${Decimal(nanos) / NANOS_PER_USD:,.6f}"


def number(value: int | float | Decimal) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def when(value: datetime | None) -> str:
    """A UTC time to the second, as the ledger keeps it."""
    if value is None:
        return "never"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def form_token(csrf: str) -> str:
    return f'<input type="hidden" name="csrf"{attrs(value=csrf)}>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, id_: str | None = None,
          numeric: Iterable[int] = (), foot: Sequence[str] | None = None) -> str:
    """A table of already-escaped cells (callers escape; cells may hold markup)."""
    right = set(numeric)

    def cells(tag: str, line: Sequence[str]) -> str:
        return "".join(
            f'<{tag}{" class=num" if i in right else ""}>{cell}</{tag}>'
            for i, cell in enumerate(line)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    head = f"<thead><tr>{cells('th', [esc(h) for h in headers])}</tr></thead>"
    tail = f"<tfoot><tr>{cells('td', foot)}</tr></tfoot>" if foot is not None else ""
    return f"<table{attrs(id=id_)}>{head}<tbody>{body}</tbody>{tail}</table>"


def layout(title: str, body: str, *, active: str | None, csrf: str | None,
           show_keys: bool = True, message: str | None = None, error: str | None = None) -> str:
    """The page around ``body``: navigation, a log-out form (when logged in), a notice."""
    nav = "".join(
        f'<a{attrs(href=f"/ui/{name}", aria_current="page" if name == active else None)}>'
        f"{esc(label)}</a>"
        for name, label in NAV if show_keys or name != "keys"
    ) if csrf is not None else ""
    logout = (
        f'<form method="post" action="/ui/logout" class="logout">{form_token(csrf)}'
        '<button type="submit">Log out</button></form>'
    ) if csrf is not None else ""
    notice = ""
    if message:
        notice += f'<p class="notice" role="status">{esc(message)}</p>'
    if error:
        notice += f'<p class="error" role="alert">{esc(error)}</p>'
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · tollway</title>"
        '<link rel="stylesheet" href="/ui/static/dashboard.css">'
        '<script src="/ui/static/dashboard.js" defer></script></head>'
        f'<body><header><a class="brand" href="/ui/spend">tollway</a><nav>{nav}</nav>{logout}'
        f"</header><main><h1>{esc(title)}</h1>{notice}{body}</main></body></html>"
    )
