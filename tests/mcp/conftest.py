"""Real MCP servers for the tests: the FastMCP toolbox over stdio / HTTP / SSE, the
JSON-RPC-error server, and mcp-server-time from PyPI; plus one fake provider per dialect.

HTTP servers are child processes on a free 127.0.0.1 port, started by the fixture and
killed at the end of the module (they are slow to start, so modules share them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fakes import replies_openai
from tests.fakes.server import FakeProvider
from tollway.core.types import Message, ToolResult
from tollway.mcp.config import HTTPServer, SSEServer, StdioServer

SERVERS = Path(__file__).resolve().parent / "servers"
TOOLBOX = SERVERS / "toolbox.py"
RPC_ERRORS = SERVERS / "rpc_errors.py"
BIN = Path(sys.executable).parent
KEY = "sk-test-secret-key-0123456789"


def toolbox(name: str = "toolbox", *, page_size: int | None = None, **options: Any) -> StdioServer:
    """The FastMCP toolbox as a stdio server; its tools answer with ``[name]`` tags."""
    args = [str(TOOLBOX), "--name", name]
    if page_size:
        args += ["--page-size", str(page_size)]
    return StdioServer(name=name, command=sys.executable, args=args, **options)


def rpc_errors(name: str = "rpc", **options: Any) -> StdioServer:
    return StdioServer(name=name, command=sys.executable, args=[str(RPC_ERRORS)], **options)


def time_server(name: str = "time", **options: Any) -> StdioServer:
    """mcp-server-time (PyPI) with a PATH holding only the venv (no node on it)."""
    return StdioServer(
        name=name, command=str(BIN / "mcp-server-time"), args=["--local-timezone", "UTC"],
        env={"PATH": str(BIN)}, **options,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A toolbox served over HTTP or SSE by a child process."""

    process: subprocess.Popen[bytes]
    port: int
    transport: str
    name: str

    @property
    def url(self) -> str:
        path = "/sse" if self.transport == "sse" else "/mcp"
        return f"http://127.0.0.1:{self.port}{path}"

    def config(self, **options: Any) -> HTTPServer | SSEServer:
        cls = SSEServer if self.transport == "sse" else HTTPServer
        options.setdefault("name", self.name)
        return cls(url=self.url, **options)

    def start(self) -> RunningServer:
        self.process = spawn_toolbox(self.transport, self.port, self.name)
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def spawn_toolbox(transport: str, port: int, name: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, str(TOOLBOX), "--transport", transport, "--port", str(port),
         "--name", name],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {transport} toolbox exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the {transport} toolbox did not listen on port {port} within 30 s")


def serve_toolbox(transport: str, name: str = "web") -> Iterator[RunningServer]:
    port = free_port()
    server = RunningServer(spawn_toolbox(transport, port, name), port, transport, name)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def http_toolbox() -> Iterator[RunningServer]:
    yield from serve_toolbox("http")


@pytest.fixture(scope="module")
def sse_toolbox() -> Iterator[RunningServer]:
    yield from serve_toolbox("sse", name="legacy")


# --------------------------------------------------------------------------- dialects


@dataclass(frozen=True)
class Dialect:
    """How to talk to the fake provider in one dialect: the model target and the
    module of reply builders (``text_reply``, ``tool_call_reply``, ...)."""

    name: str
    target: str
    replies: ModuleType

    def model(self, fake: FakeProvider, **options: Any) -> Any:
        import tollway

        options.setdefault("ledger", False)
        return tollway.Model(self.target, api_key=KEY, api_base=fake.url, **options)


def _dialects() -> list[Any]:
    out = [pytest.param(Dialect("openai", "openai/gpt-4o-mini", replies_openai), id="openai")]
    for name, target, module in (
        ("anthropic", "anthropic/claude-sonnet-4-5", "tests.fakes.replies_anthropic"),
        ("gemini", "gemini/gemini-2.5-flash", "tests.fakes.replies_gemini"),
    ):
        try:
            replies = __import__(module, fromlist=["text_reply"])
        except ImportError:
            out.append(pytest.param(None, id=name, marks=pytest.mark.skip(f"{module} missing")))
            continue
        out.append(pytest.param(Dialect(name, target, replies), id=name))
    return out


DIALECTS = _dialects()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> Dialect:
    return request.param


def results(messages: list[Message]) -> list[ToolResult]:
    """Every tool result of a transcript, in order."""
    return [p for m in messages if m.role == "tool" for p in m.parts if isinstance(p, ToolResult)]


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True
