"""A model that uses MCP tools: ``mcp-server-time`` (PyPI) and a small FastMCP notes
server (examples/mcp_servers/notes.py), driven by tollway's tool loop.

    python examples/mcp_agent.py --model openai/gpt-4o-mini   # a real provider (its key in env)
    python examples/mcp_agent.py --fake                        # offline: a loopback fake provider

The loop offers both servers' tools to the model (``time__get_current_time``,
``notes__add_note``...), runs every call the model asks for on the servers (one session
each, kept open for the whole run), and repeats until the model answers. It prints the
transcript, the cost of every round, and the ledger rows of the run: one per model round
and one per tool call, all under one trace id.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tollway import Model
from tollway.core.reports import spend
from tollway.core.stores.open import open_ledger
from tollway.core.types import Text, ToolCall, ToolResult
from tollway.mcp import MCPClient, StdioServer, ToolLoopResult, arun_tools

HERE = Path(__file__).resolve().parent
PROMPT = "What time is it in Tokyo? Save it as a note titled 'tokyo', then list my notes."


def servers() -> list[StdioServer]:
    """mcp-server-time (from PyPI) and the notes server, both as stdio child processes.
    The PATH handed to them holds only this Python's bin directory (no node)."""
    path = str(Path(sys.executable).parent)
    return [
        StdioServer(name="time", command=sys.executable,
                    args=["-m", "mcp_server_time", "--local-timezone", "UTC"], env={"PATH": path}),
        StdioServer(name="notes", command=sys.executable,
                    args=[str(HERE / "mcp_servers" / "notes.py")],
                    env={"PATH": path, "FASTMCP_LOG_LEVEL": "WARNING"},
                    price_per_call="0.0001"),
    ]


def fake_answer(turn: Any) -> Any:
    """The fake provider's side: the calls a model would make, then an answer built from
    what the real servers returned."""
    from _fake_llm_server import Answer

    result = turn.tool_result
    if result is None:
        return Answer(tool=("time__get_current_time", {"timezone": "Asia/Tokyo"}))
    if '"timezone": "Asia/Tokyo"' in result:
        now = json.loads(result)["datetime"]
        return Answer(tool=("notes__add_note", {"title": "tokyo", "text": now}))
    if result.startswith("saved note"):
        return Answer(tool=("notes__list_notes", {}))
    return Answer(text=f"Saved. Your notes: {result}")


def show(result: ToolLoopResult) -> None:
    print("transcript:")
    for message in result.messages:
        for part in message.parts:
            if isinstance(part, Text) and part.text:
                print(f"  {message.role:>9}: {part.text}")
            elif isinstance(part, ToolCall):
                print(f"  {message.role:>9}: call {part.name}({part.arguments_json})")
            elif isinstance(part, ToolResult):
                flag = " (error)" if part.is_error else ""
                print(f"  {'result':>9}: {part.text[:200]}{flag}")
    print("\nrounds:")
    for number, response in enumerate(result.responses, 1):
        cost = "unknown" if response.cost is None else f"${response.cost:.6f}"
        print(f"  {number}: {response.usage.input_tokens} in / {response.usage.output_tokens} "
              f"out tokens, {cost}")
    usage, total = result.usage, result.cost
    print(f"\ntotal: {usage.requests} model calls, {len(result.tool_runs)} tool calls, "
          f"{usage.input_tokens} in / {usage.output_tokens} out tokens, "
          f"cost {'unknown' if total is None else f'${total:.6f}'} "
          f"(tools ${result.tool_cost_nanos / 1e9:.6f})")


async def run(model: Model) -> ToolLoopResult:
    async with MCPClient(servers()) as mcp:
        print("tools:", ", ".join(sorted(t.name for t in await mcp.tools())), "\n")
        return await arun_tools(model, PROMPT, mcp=mcp, max_rounds=6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openai/gpt-4o-mini", help="provider/model or alias")
    parser.add_argument("--fake", action="store_true", help="run offline on a loopback fake")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        ledger_path = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "ledger.db"
        ledger = open_ledger(ledger_path)
        stack.callback(ledger.close)
        options: dict[str, Any] = {"ledger": ledger}
        if args.fake:
            sys.path.insert(0, str(HERE))
            from _fake_llm_server import FakeLLMServer

            fake = stack.enter_context(FakeLLMServer(fake_answer))
            options.update(api_base=fake.url, api_key="sk-fake-example-key")
        model = Model(args.model, **options)
        result = asyncio.run(run(model))
        show(result)
        print(f"\nledger of this run (trace id {result.trace_id}):")
        for row in spend(ledger, group_by=["kind", "model"]):
            print(f"  {row.group['kind']:>5} {row.group['model']}: {row.calls} calls, "
                  f"${row.cost:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
