"""How the demo talks to the terminal: steps with a spinner, quotes, tables (rich)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table


class Show:
    def __init__(self, console: Console | None = None) -> None:
        if console is None:
            console = Console(highlight=False)
            if not console.is_terminal:  # piped / captured: wide enough for the tables
                console = Console(highlight=False, width=140)
        self.console = console
        self._status: Any = None
        self._number = 0

    def banner(self, title: str, body: str) -> None:
        self.console.print(Panel(body, title=title, expand=False))

    def step(self, title: str) -> None:
        self._number += 1
        self.console.print(f"\n[bold cyan]{self._number}. {title}[/]")
        self._status = self.console.status("working...", spinner="dots")
        self._status.start()

    def done(self, seconds: float) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        self.console.print(f"   [dim]({seconds:.1f} s)[/]")

    def line(self, text: str) -> None:
        self.console.print(f"   {text}", markup=False)

    def quote(self, label: str, text: str, width: int = 90) -> None:
        flat = " ".join(text.split())
        if len(flat) > 400:
            flat = flat[:399] + "…"
        wrapped = textwrap.fill(flat, width=width, initial_indent="     ", subsequent_indent="     ")
        self.console.print(f"   {label}:")
        self.console.print(wrapped, markup=False)

    def stop(self, text: str) -> None:
        self.console.print(f"   [bold yellow]STOP[/] {text}")

    def error(self, text: str) -> None:
        self.console.print(f"   [bold red]FAILED[/] {text}", markup=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              right: Sequence[str] = ()) -> None:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, justify="right" if column in right else "left")
        for row in rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        self.console.print()
        self.console.print(table)
